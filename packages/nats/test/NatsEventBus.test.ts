/**
 * The JetStream bus on a real `nats-server -js`: subjects, de-duplication by
 * `eventId`, the durable consumer (ack / redelivery), and consumed
 * `AgentJoined` / `AgentLeft` driving a real runtime on another connection.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  AgentJoined,
  AgentLeft,
  AgentRuntime,
  AgentRuntimes,
  AgentSpawned,
  agentId,
  EventBus,
  ExecutionAuthorizers,
  makeMetadata,
  MemoryBudget,
  MetricsRepositories,
  moduleId,
  type EventId,
  type InstanceId,
  type RuntimeId
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { afterAll, beforeAll } from "vitest"
import { NatsEventBus, NatsInstanceRepository, NatsModuleRepository } from "../src/index.js"
import { connection, names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

type Names = ReturnType<typeof names>

/** A bus for `runtimeId` on its own connection. */
const busLayer = (n: Names, runtimeId: string) =>
  NatsEventBus.layer({ runtimeId, stream: n.stream, subjectPrefix: n.subjectPrefix }).pipe(
    Layer.provide(connection(server.url, runtimeId))
  )

const spawned = (runtimeId: string, eventId: string, agent: string) =>
  new AgentSpawned({
    eventId: eventId as EventId,
    timestamp: 1,
    runtimeId: runtimeId as RuntimeId,
    agentId: agentId(agent),
    moduleId: moduleId("m"),
    instanceId: "i" as InstanceId,
    memoryAllocated: 1024
  })

/** Takes `n` deliveries from a stream within `ms`. */
const take = <A, E>(stream: Stream.Stream<A, E>, n: number) =>
  Effect.map(Stream.runCollect(Stream.take(stream, n)), (c) => [...c])

/** Polls `check` every 50 ms (live clock) until it is true, at most `ms`. */
const until = (check: Effect.Effect<boolean>, ms = 10_000) =>
  Effect.gen(function* () {
    const deadline = Date.now() + ms
    while (!(yield* check)) {
      if (Date.now() > deadline) return false
      yield* Effect.sleep("50 millis")
    }
    return true
  })

describe("NatsEventBus", () => {
  it.live(
    "publishes on <prefix>.<runtimeId>.events.<tag>; a durable consumer gets each event once, duplicates of an eventId dropped",
    () =>
      Effect.gen(function* () {
        const n = names()
        const host = yield* Layer.build(busLayer(n, "host-a"))
        const bus = host.mapUnsafe.get(NatsEventBus.NatsEventBus.key) as NatsEventBus.NatsEventBusShape
        const coordination = yield* Layer.build(busLayer(n, "coordinator"))
        const coord = coordination.mapUnsafe.get(NatsEventBus.NatsEventBus.key) as NatsEventBus.NatsEventBusShape

        expect(bus.subjectOf(spawned("host-a", "e", "x"))).toBe(`${n.subjectPrefix}.host-a.events.AgentSpawned`)
        const first = spawned("host-a", "host-a:1", "one")
        yield* bus.publish(first)
        yield* bus.publish(first) // same eventId: the server drops it
        yield* bus.publish(spawned("host-a", "host-a:2", "two"))
        yield* bus.flush
        expect(bus.pending()).toBe(0)

        const deliveries = yield* coord.consume({ durable: "coordination" })
        const got = yield* take(deliveries, 2)
        expect(got.map((d) => d.event.eventId)).toEqual(["host-a:1", "host-a:2"])
        expect(got[0]!.event).toBeInstanceOf(AgentSpawned)
        expect(got[0]!.subject).toBe(`${n.subjectPrefix}.host-a.events.AgentSpawned`)
        for (const d of got) yield* d.ack
        // nothing else is delivered: the duplicate never reached the stream
        yield* bus.publish(spawned("host-a", "host-a:3", "three"))
        const [next] = yield* take(deliveries, 1)
        expect(next!.event.eventId).toBe("host-a:3")
        expect(next!.redelivered).toBe(false)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "an unacknowledged delivery is redelivered to the durable consumer after ackWait",
    () =>
      Effect.gen(function* () {
        const n = names()
        const ctx = yield* Layer.build(busLayer(n, "host-b"))
        const bus = ctx.mapUnsafe.get(NatsEventBus.NatsEventBus.key) as NatsEventBus.NatsEventBusShape
        yield* bus.publish(spawned("host-b", "host-b:1", "x"))
        yield* bus.flush
        const deliveries = yield* bus.consume({ durable: "slow", ackWaitMs: 1_000 })
        const [a, b] = yield* take(deliveries, 2)
        expect(a!.event.eventId).toBe("host-b:1")
        expect(b!.event.eventId).toBe("host-b:1")
        expect(b!.redelivered).toBe(true)
        yield* b!.ack
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "subscribe sees events published after it, for its own runtime only (events and coordination)",
    () =>
      Effect.gen(function* () {
        const n = names()
        const a = (yield* Layer.build(busLayer(n, "host-a"))).mapUnsafe.get(
          NatsEventBus.NatsEventBus.key
        ) as NatsEventBus.NatsEventBusShape
        const b = (yield* Layer.build(busLayer(n, "host-b"))).mapUnsafe.get(
          NatsEventBus.NatsEventBus.key
        ) as NatsEventBus.NatsEventBusShape
        yield* a.publish(spawned("host-a", "before", "x"))
        yield* a.flush
        const stream = yield* a.subscribe
        const collected = yield* Effect.forkChild(take(stream, 3))
        yield* a.publish(spawned("host-a", "after-1", "x"))
        yield* b.publish(spawned("host-b", "other-host", "x"))
        // the outbox publishes in the background: wait for it so the order below is the publishing order
        yield* a.flush
        yield* b.flush
        const joined = new AgentJoined({
          eventId: "c1" as EventId,
          timestamp: 2,
          runtimeId: "coordinator" as RuntimeId,
          agentId: agentId("j")
        })
        expect(yield* b.sendTo("host-a", joined)).toMatchObject({ duplicate: false })
        expect(yield* b.sendTo("host-a", joined)).toMatchObject({ duplicate: true })
        yield* a.publish(spawned("host-a", "after-2", "x"))
        const events = yield* Fiber.join(collected)
        expect(events.map((e) => e.eventId)).toEqual(["after-1", "c1", "after-2"])
        expect(events[1]).toBeInstanceOf(AgentJoined)
      }).pipe(Effect.scoped),
    60_000
  )

  it.live(
    "AgentJoined / AgentLeft sent by Coordination drive a runtime on another host (reserve, release); its events reach Coordination",
    () =>
      Effect.gen(function* () {
        const n = names()
        const runtimeId = "host-r"
        const ports = Layer.mergeAll(
          busLayer(n, runtimeId),
          NatsModuleRepository.layer({ bucket: n.modules, objectStore: n.modules }),
          NatsInstanceRepository.layer({ bucket: n.instances, objectStore: n.snapshots }),
          MetricsRepositories.layerMemory,
          ExecutionAuthorizers.layerAllowAll
        ).pipe(Layer.provide(connection(server.url, "host-r-repos")))
        const host = AgentRuntimes.layer({ id: runtimeId }).pipe(
          Layer.provideMerge(ports),
          Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
        )
        const ctx = yield* Layer.build(host)
        const runtime = ctx.mapUnsafe.get(AgentRuntime.key) as AgentRuntime["Service"]
        const coord = (yield* Layer.build(busLayer(n, "coordinator"))).mapUnsafe.get(
          NatsEventBus.NatsEventBus.key
        ) as NatsEventBus.NatsEventBusShape
        const deliveries = yield* coord.consume({
          durable: "coord",
          filterSubject: `${n.subjectPrefix}.${runtimeId}.events.>`
        })

        const m = yield* runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
        const [loaded] = yield* take(deliveries, 1)
        expect(loaded!.event._tag).toBe("ModuleLoaded")
        expect(loaded!.event.runtimeId).toBe(runtimeId)
        yield* loaded!.ack

        const envelope = { timestamp: 3, runtimeId: "coordinator" as RuntimeId }
        const limit = 3 * MemoryBudget.MiB
        yield* coord.sendTo(
          runtimeId,
          new AgentJoined({
            ...envelope,
            eventId: "j1" as EventId,
            agentId: agentId("j"),
            moduleId: m,
            memoryLimit: limit
          })
        )
        expect(yield* until(Effect.map(runtime.stats, (s) => s.memory.reserved === limit))).toBe(true)
        yield* coord.sendTo(runtimeId, new AgentLeft({ ...envelope, eventId: "l1" as EventId, agentId: agentId("j") }))
        expect(yield* until(Effect.map(runtime.stats, (s) => s.memory.reserved === 0))).toBe(true)

        yield* runtime.spawnAgent(agentId("c1"), m, { memoryLimit: 16 * MemoryBudget.MiB })
        const seen = yield* take(
          Stream.filter(deliveries, (d) => d.event._tag === "AgentSpawned"),
          1
        )
        expect(seen[0]!.event).toMatchObject({ _tag: "AgentSpawned", agentId: "c1", runtimeId })
        const bus = ctx.mapUnsafe.get(EventBus.key) as EventBus["Service"]
        expect(bus).toBeDefined()
      }).pipe(Effect.scoped),
    60_000
  )
})
