/**
 * `invoke` on an engine without synchronous callers (the worker engines' path, `invokeQueued`): the same
 * errors as the general path (which runs when invocations are authorised per call), one call at a time in
 * FIFO order through the agent's mailbox, and a queued call that is interrupted never runs.
 */
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  EventBuses,
  ExecutionAuthorizer,
  InstanceRepositories,
  MetricsRepositories,
  ModuleRepositories,
  WasmEngine
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import {
  config,
  loadWith,
  makeTestEngine,
  runtimeLayer,
  type TestEngine,
  testVerifierFor
} from "../support/TestEngine.js"

/** The runtime with an authoriser that allows everything but checks every invocation (the general path). */
const authorisingLayer = (t: TestEngine) =>
  AgentRuntimes.layer({ id: "rt-test" }).pipe(
    Layer.provide(
      Layer.mergeAll(
        Layer.succeed(WasmEngine, t.engine),
        testVerifierFor(t),
        ModuleRepositories.layerMemory,
        InstanceRepositories.layerMemory,
        MetricsRepositories.layerMemory,
        EventBuses.layerMemory,
        Layer.succeed(ExecutionAuthorizer, { authorize: () => Effect.void, checksInvocations: true })
      )
    )
  )

const fns = { add: { params: ["i32", "i32"], results: ["i32"] }, big: { params: ["i64"], results: ["i64"] } }

/** Every kind of argument the checks decide on, and a missing export. */
const calls: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> = [
  ["add", [1, 2]],
  ["add", [1]],
  ["add", [1, 2, 3]],
  ["add", ["1", 2]],
  ["add", [1.5, 2]],
  ["add", [1, 2n]],
  ["add", [4_294_967_296, 0]],
  ["big", [1n]],
  ["big", [1]],
  ["big", [2n ** 64n]],
  ["nope", []],
  ["add", { length: 2, 0: 1, 1: 2 } as unknown as ReadonlyArray<unknown>]
]

const outcomes = (t: TestEngine) =>
  Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const m = yield* loadWith(t, "checks", fns, {
      add: (_ctx, args) => [(args[0] as number) + (args[1] as number)],
      big: (_ctx, args) => [args[0]!]
    })
    yield* runtime.spawnAgent(agentId("a"), m, config())
    const seen: Array<unknown> = []
    for (const [fn, args] of calls) seen.push(yield* Effect.exit(runtime.invoke(agentId("a"), fn, args as never)))
    const info = yield* runtime.agent(agentId("a"))
    return { seen, invocations: info.invocationCount }
  })

describe("invoke through the mailbox (engines without synchronous callers)", () => {
  it.effect("the same results and errors as the general path", () =>
    Effect.gen(function* () {
      const t1 = makeTestEngine()
      const t2 = makeTestEngine()
      const queued = yield* outcomes(t1).pipe(Effect.provide(runtimeLayer(t1)))
      const general = yield* outcomes(t2).pipe(Effect.provide(authorisingLayer(t2)))
      expect(queued).toEqual(general)
      expect(queued.seen[0]).toEqual(Exit.succeed([3]))
      expect(queued.invocations).toBe(general.invocations)
    })
  )

  it.effect("calls from many fibers run one at a time in the order they queued; an interrupted one never runs", () => {
    const t = makeTestEngine()
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      const gate = yield* Deferred.make<void>()
      const order: Array<number> = []
      const m = yield* loadWith(
        t,
        "fifo",
        { hold: { results: ["i32"] }, mark: { params: ["i32"], results: ["i32"] } },
        {
          hold: () => Effect.as(Deferred.await(gate), [0]),
          mark: (_ctx, args) => {
            order.push(args[0] as number)
            return [args[0]!]
          }
        }
      )
      const id = agentId("a")
      yield* runtime.spawnAgent(id, m, config())
      const holder = yield* Effect.forkChild(runtime.invoke(id, "hold"), { startImmediately: true })
      const fibers: Array<Fiber.Fiber<ReadonlyArray<unknown>, unknown>> = []
      for (let n = 1; n <= 12; n++)
        fibers.push(yield* Effect.forkChild(runtime.invoke(id, "mark", [n]), { startImmediately: true }))
      yield* Fiber.interrupt(fibers[4]!) // call 5, queued
      yield* Deferred.succeed(gate, undefined)
      expect(yield* Fiber.join(holder)).toEqual([0])
      for (const [k, f] of fibers.entries()) {
        const exit = yield* Fiber.await(f)
        if (k === 4) expect(Exit.hasInterrupts(exit)).toBe(true)
        else expect(exit).toEqual(Exit.succeed([k + 1]))
      }
      expect(order).toEqual([1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12])
      expect(t.maxConcurrency.get("a")).toBe(1)
      expect((yield* runtime.agent(id)).invocationCount).toBe(12)
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})
