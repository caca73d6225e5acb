import {
  AgentJoined,
  AgentLeft,
  AgentRuntime,
  AgentRuntimes,
  agentId,
  AgentSpawned,
  AgentStateChanged,
  type DomainEvent,
  EventBus,
  EventBuses,
  ExecutionAuthorizers,
  InstanceRepositories,
  MetricsRepositories,
  ModuleRepositories,
  WasmEngine
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as PubSub from "effect/PubSub"
import * as Stream from "effect/Stream"
import { config, loadWith, makeTestEngine, MiB, testVerifierFor } from "./support/TestEngine.js"

const envelope = (n: number) => ({ eventId: `e${n}` as never, timestamp: n, runtimeId: "coord" as never })
const joined = (n: number) => new AgentJoined({ ...envelope(n), agentId: agentId(`j${n}`) })
const left = (n: number) => new AgentLeft({ ...envelope(n), agentId: agentId(`l${n}`) })
const spawned = (n: number) =>
  new AgentSpawned({
    ...envelope(n),
    agentId: agentId(`s${n}`),
    moduleId: "m@1.0.0#abc" as never,
    instanceId: `s${n}#1` as never,
    memoryAllocated: MiB
  })

/** A bus with only the required members (`publish`, `subscribe`) over one `PubSub`: what an older adapter offers. */
const minimalBus: Effect.Effect<EventBuses.EventBusShape> = Effect.map(PubSub.unbounded<DomainEvent>(), (pubsub) => ({
  publish: (event) => Effect.asVoid(PubSub.publish(pubsub, event)),
  subscribe: Effect.map(PubSub.subscribe(pubsub), Stream.fromSubscription)
}))

/** Takes `n` events from `stream` (in a child fiber started before `publish` runs). */
const firstEvents = <A, E>(
  stream: Stream.Stream<A>,
  n: number,
  publish: Effect.Effect<void, E>
): Effect.Effect<ReadonlyArray<A>, E> =>
  Effect.gen(function* () {
    const fiber = yield* Effect.forkChild(Stream.runCollect(Stream.take(stream, n)))
    yield* publish
    return yield* Fiber.join(fiber)
  })

const tags = (events: ReadonlyArray<DomainEvent>) => events.map((e) => `${e._tag}:${e.eventId}`)

describe("EventBus", () => {
  describe("the in-memory bus", () => {
    it.effect("subscribe sees every event published after it subscribed, in order", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* EventBuses.makeMemory
          yield* bus.publish(joined(0)) // before anyone subscribed: nobody sees it
          const all = yield* bus.subscribe
          const got = yield* firstEvents(
            all,
            3,
            Effect.andThen(bus.publish(joined(1)), EventBuses.publishAll(bus, [spawned(2), left(3)]))
          )
          expect(tags(got)).toEqual(["AgentJoined:e1", "AgentSpawned:e2", "AgentLeft:e3"])
        })
      )
    )

    it.effect("subscribeTo delivers only the given tags, in order; publishAll equals publish of each", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* EventBuses.makeMemory
          expect(bus.publishAll).toBeDefined()
          expect(bus.subscribeTo).toBeDefined()
          const coordination = yield* EventBuses.subscribeTo(bus, ["AgentJoined", "AgentLeft"])
          const all = yield* bus.subscribe
          const publishing = Effect.gen(function* () {
            yield* EventBuses.publishAll(bus, [spawned(1), joined(2), spawned(3)])
            yield* bus.publish(spawned(4))
            yield* EventBuses.publishAll(bus, [left(5)])
          })
          const [wanted, every] = yield* Effect.all(
            [firstEvents(coordination, 2, publishing), firstEvents(all, 5, Effect.void)],
            { concurrency: "unbounded" }
          )
          expect(tags(wanted)).toEqual(["AgentJoined:e2", "AgentLeft:e5"])
          expect(tags(every)).toEqual([
            "AgentSpawned:e1",
            "AgentJoined:e2",
            "AgentSpawned:e3",
            "AgentSpawned:e4",
            "AgentLeft:e5"
          ])
          // the stream's type is narrowed to the tags asked for
          const first = wanted[0]!
          expect(first._tag === "AgentJoined" || first._tag === "AgentLeft").toBe(true)
        })
      )
    )

    it.effect("a filtered subscriber receives nothing of what it did not ask for", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* EventBuses.makeMemory
          const coordination = yield* EventBuses.subscribeTo(bus, ["AgentJoined"])
          const received: Array<DomainEvent> = []
          const fiber = yield* Effect.forkChild(
            Stream.runForEach(coordination, (e) => Effect.sync(() => received.push(e)))
          )
          yield* EventBuses.publishAll(bus, [spawned(1), left(2), spawned(3)])
          for (let i = 0; i < 5; i++) yield* Effect.yieldNow
          expect(received).toEqual([])
          yield* bus.publish(joined(4))
          while (received.length === 0) yield* Effect.yieldNow
          expect(tags(received)).toEqual(["AgentJoined:e4"])
          yield* Fiber.interrupt(fiber)
        })
      )
    )

    it.effect("a subscription ends with its scope: its stream ends and later events go nowhere", () =>
      Effect.gen(function* () {
        const bus = yield* EventBuses.makeMemory
        const received: Array<DomainEvent> = []
        const fiber = yield* Effect.scoped(
          Effect.gen(function* () {
            const all = yield* bus.subscribe
            const f = yield* Effect.forkDetach(Stream.runForEach(all, (e) => Effect.sync(() => received.push(e))))
            yield* bus.publish(joined(1))
            while (received.length === 0) yield* Effect.yieldNow
            return f
          })
        )
        yield* Fiber.await(fiber) // the stream ended when the scope closed
        yield* bus.publish(joined(2))
        expect(tags(received)).toEqual(["AgentJoined:e1"])
      })
    )
  })

  describe("wants: whether an event of a _tag would reach a subscriber", () => {
    it.effect("the in-memory bus answers from its current subscribers, as its delivery does", () =>
      Effect.gen(function* () {
        const bus = yield* EventBuses.makeMemory
        const wanted = () => ["AgentSpawned", "AgentJoined"].map((t) => EventBuses.wants(bus, t as never))
        expect(wanted()).toEqual([false, false])
        const received: Array<DomainEvent> = []
        yield* Effect.scoped(
          Effect.gen(function* () {
            const some = yield* EventBuses.subscribeTo(bus, ["AgentJoined"])
            yield* Effect.forkScoped(Stream.runForEach(some, (e) => Effect.sync(() => received.push(e))))
            expect(wanted()).toEqual([false, true])
            yield* Effect.scoped(
              Effect.gen(function* () {
                yield* bus.subscribe
                expect(wanted()).toEqual([true, true])
              })
            )
            expect(wanted()).toEqual([false, true])
            // what `wants` says is what delivery does: the unwanted event reaches no one
            yield* bus.publishAll!([spawned(1), joined(2)])
            while (received.length === 0) yield* Effect.yieldNow
          })
        )
        expect(tags(received)).toEqual(["AgentJoined:e2"])
        expect(wanted()).toEqual([false, false])
      })
    )

    it.effect("any other bus — another adapter, or the in-memory bus with publish replaced — is always wanted", () =>
      Effect.gen(function* () {
        const minimal = yield* minimalBus
        const memory = yield* EventBuses.makeMemory
        const seen: Array<string> = []
        const wrapped: EventBuses.EventBusShape = {
          ...memory,
          publish: (event) =>
            Effect.andThen(
              Effect.sync(() => seen.push(event._tag)),
              memory.publish(event)
            )
        }
        expect(EventBuses.wants(minimal, "AgentSpawned")).toBe(true)
        expect(EventBuses.wants(wrapped, "AgentSpawned")).toBe(true)
        expect(EventBuses.wants(memory, "AgentSpawned")).toBe(false)
      })
    )
  })

  describe("publishAll / subscribeTo over a bus without them (fallbacks)", () => {
    it.effect("publishAll publishes each event in order; subscribeTo filters subscribe", () =>
      Effect.scoped(
        Effect.gen(function* () {
          const bus = yield* minimalBus
          expect(bus.publishAll).toBeUndefined()
          expect(bus.subscribeTo).toBeUndefined()
          const coordination = yield* EventBuses.subscribeTo(bus, ["AgentLeft"])
          const all = yield* bus.subscribe
          const [wanted, every] = yield* Effect.all(
            [
              firstEvents(coordination, 1, EventBuses.publishAll(bus, [joined(1), spawned(2), left(3)])),
              firstEvents(all, 3, Effect.void)
            ],
            { concurrency: "unbounded" }
          )
          expect(tags(wanted)).toEqual(["AgentLeft:e3"])
          expect(tags(every)).toEqual(["AgentJoined:e1", "AgentSpawned:e2", "AgentLeft:e3"])
        })
      )
    )

    it.effect("a runtime over such a bus publishes a spawn's events in order and consumes AgentJoined", () => {
      const t = makeTestEngine()
      const ports = Layer.mergeAll(
        ModuleRepositories.layerMemory,
        InstanceRepositories.layerMemory,
        MetricsRepositories.layerMemory,
        Layer.effect(EventBus, minimalBus),
        ExecutionAuthorizers.layerAllowAll,
        Layer.succeed(WasmEngine, t.engine),
        testVerifierFor(t)
      )
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const bus = yield* EventBus
        const m = yield* loadWith(t, "counter", { get: { results: ["i32"] } }, { get: () => [7] })
        yield* bus.publish(
          new AgentJoined({ ...envelope(1), agentId: agentId("k"), moduleId: m, memoryLimit: 3 * MiB })
        )
        while ((yield* runtime.stats).memory.reserved !== 3 * MiB) yield* Effect.yieldNow
        const events = yield* Effect.scoped(
          Effect.gen(function* () {
            const stream = yield* runtime.events
            return yield* firstEvents(stream, 2, Effect.asVoid(runtime.spawnAgent(agentId("k"), m, config(2 * MiB))))
          })
        )
        expect(events.map((e) => e._tag)).toEqual(["AgentSpawned", "AgentStateChanged"])
        const [s, c] = events
        expect(s).toBeInstanceOf(AgentSpawned)
        expect(c).toBeInstanceOf(AgentStateChanged)
        expect(s?._tag === "AgentSpawned" && [s.agentId, s.memoryAllocated]).toEqual(["k", 2 * MiB])
        expect(c?._tag === "AgentStateChanged" && [c.agentId, c.from, c.to]).toEqual(["k", "Starting", "Running"])
        // the spawn took the prepared reservation over
        expect((yield* runtime.stats).memory.reserved).toBe(2 * MiB)
      }).pipe(Effect.provide(Layer.provideMerge(AgentRuntimes.layer({ id: "rt-test" }), ports)))
    })
  })
})
