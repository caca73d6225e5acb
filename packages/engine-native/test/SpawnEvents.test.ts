/**
 * The events of a spawn in one synchronous step on a bus that delivers
 * synchronously (the in-memory bus, `EventBuses.publishNow`): delivered in
 * that step, each built only when a subscriber would receive it
 * (`EventBuses.wants`) — the same events, in the same order, as the Effect
 * path (engine without `instantiateSync`) for every kind of subscriber, and
 * through `publish` on a bus whose `publish` was replaced.
 */
import { verifierLayer } from "@agent-runtime/conformance"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  type DomainEvent,
  EventBus,
  EventBuses,
  ExecutionAuthorizers,
  InstanceRepositories,
  makeMetadata,
  MemoryBudget,
  MetricsRepositories,
  ModuleRepositories,
  WasmEngine,
  type WasmEngineShape
} from "@agent-runtime/domain"
import { wat } from "@agent-runtime/test-support"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { NativeEngine } from "../src/index.js"

const MiB = MemoryBudget.MiB

/** The native engine, counting its synchronous instantiations; or without `instantiateSync` (the Effect path). */
const engine = (withSync: boolean, counter: { calls: number }): WasmEngineShape => {
  const native = NativeEngine.make()
  const instantiateSync = native.instantiateSync!
  return withSync
    ? {
        ...native,
        instantiateSync: (compiled, options) => {
          counter.calls++
          return instantiateSync(compiled, options)
        }
      }
    : { ...native, instantiateSync: undefined }
}

type Subscriber = "none" | "all" | "AgentStateChanged only" | "AgentSpawned only"

/**
 * Spawns three agents (`autoStart: false` for the third) after one spawn
 * that compiles, with `subscriber` listening (it subscribes after the
 * first spawn), then subscribes to every event and spawns one more: returns
 * what the subscriber received (tags, agent ids, event ids), the last
 * spawn's events, and how many spawns took the synchronous step.
 */
const observe = (
  withSync: boolean,
  subscriber: Subscriber,
  wrap?: (bus: EventBuses.EventBusShape) => EventBuses.EventBusShape
) => {
  const counter = { calls: 0 }
  const bus = Layer.effect(
    EventBus,
    Effect.map(EventBuses.makeMemory, (b) => (wrap === undefined ? b : wrap(b)))
  )
  const layer = AgentRuntimes.layer({ id: "rt" }).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        ModuleRepositories.layerMemory,
        InstanceRepositories.layerMemory,
        MetricsRepositories.layerMemory,
        ExecutionAuthorizers.layerAllowAll,
        bus,
        Layer.sync(WasmEngine, () => engine(withSync, counter)),
        verifierLayer({ allowUnsigned: true })
      )
    )
  )
  return Effect.scoped(
    Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const events = yield* EventBus
      const bytes = yield* Effect.promise(() =>
        wat(`(module (memory 1) (func (export "ping") (result i32) (i32.const 1)))`)
      )
      const m = yield* runtime.loadModule(bytes, makeMetadata({ name: "m", version: "1.0.0" }))
      yield* runtime.spawnAgent(agentId("compiles"), m, { memoryLimit: MiB })
      const received: Array<DomainEvent> = []
      const listen = (stream: Stream.Stream<DomainEvent>, into: Array<DomainEvent>) =>
        Effect.forkScoped(Stream.runForEach(stream, (e) => Effect.sync(() => void into.push(e))))
      if (subscriber === "all") yield* listen(yield* events.subscribe, received)
      else if (subscriber !== "none") {
        yield* listen(yield* EventBuses.subscribeTo(events, [subscriber.split(" ")[0] as never]), received)
      }
      yield* runtime.spawnAgent(agentId("a"), m, { memoryLimit: MiB })
      yield* runtime.spawnAgent(agentId("b"), m, { memoryLimit: MiB })
      yield* runtime.spawnAgent(agentId("c"), m, { memoryLimit: MiB, autoStart: false })
      const later: Array<DomainEvent> = []
      yield* listen(yield* events.subscribe, later)
      yield* runtime.spawnAgent(agentId("d"), m, { memoryLimit: MiB })
      for (let k = 0; k < 20; k++) yield* Effect.yieldNow // delivered to the subscribers' fibers
      const show = (e: DomainEvent) => {
        const r = e as unknown as Record<string, unknown>
        return [e._tag, r.agentId, r.from, r.to, r.instanceId, r.memoryAllocated].join(" ")
      }
      return {
        received: received.map(show),
        receivedIds: received.map((e) => e.eventId),
        later: later.map(show),
        laterIds: later.map((e) => e.eventId),
        agents: (yield* runtime.agents).map((a) => `${a.agentId}:${a.state}`),
        syncCalls: counter.calls
      }
    }).pipe(Effect.provide(layer))
  )
}

/** The sequence number of an event id (`<runtime>:<nonce>:<n>`). */
const seq = (id: string) => Number(id.split(":").at(-1))

describe("spawn events on the synchronous step", () => {
  for (const subscriber of ["none", "all", "AgentStateChanged only", "AgentSpawned only"] as const) {
    it.effect(`subscriber: ${subscriber} — the same events, in the same order, as the Effect path`, () =>
      Effect.gen(function* () {
        const sync = yield* observe(true, subscriber)
        const effect = yield* observe(false, subscriber)
        expect(sync.syncCalls).toBe(4) // a, b, c, d took the synchronous step
        expect(effect.syncCalls).toBe(0)
        const { syncCalls: _, receivedIds: ids, laterIds, ...seen } = sync
        const { syncCalls: __, receivedIds: effectIds, laterIds: effectLaterIds, ...seenViaEffect } = effect
        expect(seen).toEqual(seenViaEffect)
        expect(seen.later).toEqual(["AgentSpawned d   d#5 1048576", "AgentStateChanged d Starting Running  "])
        const d = ["AgentSpawned d   d#5 1048576", "AgentStateChanged d Starting Running  "]
        const expected = {
          none: [],
          all: [
            "AgentSpawned a   a#2 1048576",
            "AgentStateChanged a Starting Running  ",
            "AgentSpawned b   b#3 1048576",
            "AgentStateChanged b Starting Running  ",
            "AgentSpawned c   c#4 1048576",
            ...d
          ],
          "AgentStateChanged only": [
            "AgentStateChanged a Starting Running  ",
            "AgentStateChanged b Starting Running  ",
            d[1]
          ],
          "AgentSpawned only": [
            "AgentSpawned a   a#2 1048576",
            "AgentSpawned b   b#3 1048576",
            "AgentSpawned c   c#4 1048576",
            d[0]
          ]
        }[subscriber]
        expect(seen.received).toEqual(expected)
        // ids stay unique and increasing; the Effect path numbers every event, the synchronous step only
        // those a subscriber receives (none built for nobody): its ids are never larger
        for (const all of [ids.map(seq), laterIds.map(seq)]) {
          expect(new Set(all).size).toBe(all.length)
          expect([...all].sort((x, y) => x - y)).toEqual(all)
        }
        expect(seq(laterIds[0]!)).toBeLessThanOrEqual(seq(effectLaterIds[0]!))
        expect(effectIds.length).toBe(ids.length)
        if (subscriber === "none") {
          // nothing was built for the three spawns nobody listened to: the last spawn's events follow the
          // ones before them (ModuleLoaded, and the first spawn's two, which the Effect path published)
          expect(seq(laterIds[0]!)).toBe(seq(effectLaterIds[0]!) - 5)
        }
      })
    )
  }

  it.effect("a bus whose publish was replaced gets every event through publish, on the synchronous step too", () =>
    Effect.gen(function* () {
      const published: Array<string> = []
      const counting = (bus: EventBuses.EventBusShape): EventBuses.EventBusShape => ({
        ...bus,
        publishAll: undefined, // every event through `publish`
        publish: (event) =>
          Effect.andThen(
            Effect.sync(() => void published.push(event._tag)),
            bus.publish(event)
          )
      })
      const seen = yield* observe(true, "none", counting)
      expect(seen.syncCalls).toBe(4)
      const spawns = published.filter((t) => t !== "ModuleLoaded")
      // compiles, a, b, c (not started), d: every event, none skipped although nobody subscribed at first
      // (then the shutdown's: state changes and evictions)
      expect(spawns.slice(0, 9)).toEqual([
        ...["AgentSpawned", "AgentStateChanged"],
        ...["AgentSpawned", "AgentStateChanged"],
        ...["AgentSpawned", "AgentStateChanged"],
        "AgentSpawned",
        ...["AgentSpawned", "AgentStateChanged"]
      ])
      expect(new Set(spawns.slice(9))).toEqual(new Set(["AgentStateChanged", "AgentEvicted"]))
      expect(seen.later).toHaveLength(2)
    })
  )
})
