/**
 * An agent whose running call was interrupted by its caller (or passed its
 * deadline with `evictOnTimeout: false`) on real Node workers: the engine
 * terminates the call's worker and leaves the instance terminated
 * (`WasmInstance.isLive`), and the runtime replaces the instance before the
 * agent's next call whatever its `onTrap` policy — that call answers, no
 * `Trap` "instance terminated" first, and `AgentRecovered` says why.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  agentId,
  AgentRuntime,
  AgentRuntimes,
  makeMetadata,
  MemoryBudget,
  type RuntimeEvent,
  type SettingsInput
} from "@agent-runtime/domain"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { NodeEngine } from "../src/index.js"

/** A runtime on `maxThreads` Node workers with in-memory ports, its engine, and the events it published so far. */
const runtimeWith = (settings: SettingsInput, maxThreads = 2) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      AgentRuntimes.layerMemory(settings).pipe(
        Layer.provideMerge(
          Layer.mergeAll(NodeEngine.layerWith({ maxThreads }), Signing.layer({ trustStore: testOnlyTrustStore() }))
        )
      )
    )
    const runtime = Context.get(context, AgentRuntime)
    const engine = Context.get(context, NodeEngine.NodeEngine)
    const events: Array<RuntimeEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(yield* runtime.events, (e) => Effect.sync(() => events.push(e))))
    const looper = yield* runtime.loadModule(readAgent("looper"), makeMetadata({ name: "looper", version: "1.0.0" }))
    return { runtime, engine, events, looper }
  })

/** Waits (real time) until `done` holds, at most ≈ 5 s. */
const eventually = (done: () => boolean) =>
  Effect.promise(async () => {
    for (let i = 0; i < 500 && !done(); i++) await new Promise((r) => setTimeout(r, 10))
  })

const recovered = (events: ReadonlyArray<RuntimeEvent>) =>
  events.flatMap((e) => (e._tag === "AgentRecovered" ? [{ agentId: e.agentId, from: e.from, cause: e.cause }] : []))

describe("an interrupted call's agent is replaced before its next call (worker engine)", () => {
  for (const onTrap of ["restore", "keep"] as const) {
    it.live(
      `onTrap "${onTrap}": Effect.timeout around a spinning call, then the next call answers`,
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { engine, events, looper, runtime } = yield* runtimeWith({ onTrap })
            const id = agentId(`looper-${onTrap}`)
            yield* runtime.spawnAgent(id, looper, { memoryLimit: 4 * MemoryBudget.MiB })
            expect(yield* runtime.invoke(id, "spin_n", [3])).toEqual([3])
            const threadBefore = engine.stats().workers.filter((w) => w.agents > 0).length
            expect(threadBefore).toBe(1)
            // the caller gives up after 20 ms: the spinning call's worker is terminated
            const timedOut = yield* Effect.exit(Effect.timeout(runtime.invoke(id, "spin", []), "20 millis"))
            expect(Exit.isFailure(timedOut)).toBe(true)
            // the next call answers (the old code failed it with Trap "instance terminated")
            expect(yield* runtime.invoke(id, "spin_n", [1])).toEqual([1])
            expect(yield* runtime.invoke(id, "spin_n", [2])).toEqual([2])
            const agent = yield* runtime.agent(id)
            expect(agent.state).toBe("Running")
            expect(agent.errorCount).toBe(0)
            yield* eventually(() => recovered(events).length > 0)
            const [event, ...more] = recovered(events)
            expect(more).toEqual([])
            expect(event).toMatchObject({ agentId: id, from: "Fresh" })
            expect(event!.cause).toContain("no longer live")
            expect(events.filter((e) => e._tag === "AgentEvicted")).toEqual([])
          })
        ),
      30_000
    )
  }

  it.live(
    "an interrupted fiber still sees its interruption; a second agent on the same worker is unaffected",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { engine, events, looper, runtime } = yield* runtimeWith({ onTrap: "keep" }, 1)
          const a = agentId("spinner")
          const b = agentId("neighbour")
          yield* runtime.spawnAgent(a, looper, { memoryLimit: 4 * MemoryBudget.MiB })
          yield* runtime.spawnAgent(b, looper, { memoryLimit: 4 * MemoryBudget.MiB })
          expect(engine.stats().workers.map((w) => w.agents)).toEqual([2])
          const fiber = yield* Effect.forkChild(runtime.invoke(a, "spin", []))
          yield* Effect.sleep("30 millis")
          yield* Fiber.interrupt(fiber)
          const exit = yield* Fiber.await(fiber)
          expect(Exit.hasInterrupts(exit)).toBe(true)
          for (let n = 1; n <= 3; n++) {
            expect(yield* runtime.invoke(b, "spin_n", [n])).toEqual([n])
            expect(yield* runtime.invoke(a, "spin_n", [n])).toEqual([n])
          }
          yield* eventually(() => recovered(events).length > 0)
          expect(recovered(events).map((e) => e.agentId)).toEqual([a])
        })
      ),
    30_000
  )

  it.live(
    "a call interrupted while it waits behind another agent's call ends at once and leaves its agent as it was",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { engine, events, looper, runtime } = yield* runtimeWith({}, 1)
          const counter = yield* runtime.loadModule(
            readAgent("counter"),
            makeMetadata({ name: "counter", version: "1.0.0" })
          )
          const a = agentId("hog")
          const b = agentId("queued")
          yield* runtime.spawnAgent(a, looper, { memoryLimit: 4 * MemoryBudget.MiB })
          yield* runtime.spawnAgent(b, counter, { memoryLimit: 4 * MemoryBudget.MiB })
          expect(engine.stats().workers.map((w) => w.agents)).toEqual([2])
          expect(yield* runtime.invoke(b, "add", [5])).toEqual([5])
          const hog = yield* Effect.forkChild(runtime.invoke(a, "spin", []))
          yield* Effect.sleep("30 millis")
          // b's call queues behind the spinning one on the only worker; its caller gives up: it never ran
          const gaveUp = yield* Effect.exit(Effect.timeout(runtime.invoke(b, "add", [1]), "50 millis"))
          expect(Exit.isFailure(gaveUp)).toBe(true)
          yield* Fiber.interrupt(hog)
          // b kept its state (the pool brought it to a fresh worker); a was replaced
          expect(yield* runtime.invoke(b, "add", [1])).toEqual([6])
          expect(yield* runtime.invoke(a, "spin_n", [2])).toEqual([2])
          yield* eventually(() => recovered(events).length > 0)
          expect(recovered(events).map((e) => e.agentId)).toEqual([a])
        })
      ),
    30_000
  )

  for (const onTrap of ["restore", "keep"] as const) {
    it.live(
      `onTrap "${onTrap}", evictOnTimeout false: a call past its timeoutMs fails with Timeout, the next answers`,
      () =>
        Effect.scoped(
          Effect.gen(function* () {
            const { events, looper, runtime } = yield* runtimeWith({ onTrap, evictOnTimeout: false })
            const id = agentId(`deadline-${onTrap}`)
            yield* runtime.spawnAgent(id, looper, { memoryLimit: 4 * MemoryBudget.MiB, timeoutMs: 50 })
            const error = yield* Effect.flip(runtime.invoke(id, "spin", []))
            expect(error._tag).toBe("Timeout")
            expect(yield* runtime.invoke(id, "spin_n", [4])).toEqual([4])
            const agent = yield* runtime.agent(id)
            expect(agent.state).toBe("Running")
            expect(agent.errorCount).toBe(1) // the Timeout only
            yield* eventually(() => recovered(events).length > 0)
            expect(recovered(events).map((e) => [e.agentId, e.from])).toEqual([[id, "Fresh"]])
          })
        ),
      30_000
    )
  }

  it.live(
    "evictOnTimeout (default): a call past its timeoutMs evicts the agent; no replacement is attached to it",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const { engine, events, looper, runtime } = yield* runtimeWith({})
          const id = agentId("evicted")
          yield* runtime.spawnAgent(id, looper, { memoryLimit: 4 * MemoryBudget.MiB, timeoutMs: 50 })
          expect((yield* Effect.flip(runtime.invoke(id, "spin", [])))._tag).toBe("Timeout")
          yield* eventually(() => events.some((e) => e._tag === "AgentEvicted"))
          expect(events.flatMap((e) => (e._tag === "AgentEvicted" ? [[e.agentId, e.reason]] : []))).toEqual([
            [id, "Timeout"]
          ])
          expect(recovered(events)).toEqual([])
          expect(engine.stats().workers.reduce((n, w) => n + w.agents, 0)).toBe(0)
        })
      ),
    30_000
  )
})
