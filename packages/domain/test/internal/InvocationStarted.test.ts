/**
 * `invoke` on an engine whose instances start calls in the caller's step (`WasmInstance.invokeStart`, the
 * worker engines' path, `Invocation.invokeStarted`): the same results, errors and counts as the mailbox
 * path (`invokeQueued`) for synchronous and awaited answers alike; a call still running holds the agent's
 * mailbox (later calls queue behind it in FIFO order, one at a time, an interrupted queued call never
 * runs); interrupting the running call interrupts the engine's call and lets the next one in; a trap
 * answered synchronously is recovered as on the mailbox path; `Mailbox.holdFrom` releases however its
 * effect ends, and when the fiber never runs it.
 */
import {
  AgentRuntime,
  agentId,
  callResults,
  Trap,
  type WasmEngineShape,
  type WasmInstance
} from "@agent-runtime/domain"
import { Mailbox } from "../../src/internal/Mailbox.js"
import { describe, expect, it } from "@effect/vitest"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import { config, loadWith, makeTestEngine, runtimeLayer, type TestEngine } from "../support/TestEngine.js"

/**
 * `t`'s engine with `invokeStart` on every instance: the call is forked now; an answer already there is
 * given synchronously (into the slot, or the error as a value), else an effect joins the running call
 * (interrupting it interrupts the call) — as a worker engine does with a reply caught within its spin.
 */
const withStart = (t: TestEngine, counts: { sync: number; awaited: number }): TestEngine => {
  const engine: WasmEngineShape = {
    ...t.engine,
    instantiate: (compiled, options) =>
      Effect.map(
        t.engine.instantiate(compiled, options),
        (instance): WasmInstance => ({
          ...instance,
          invokeStart: (fn, args, invokeOptions, slot) => {
            const fiber = Effect.runFork(instance.invoke(fn, args, invokeOptions))
            const exit = fiber.pollUnsafe()
            if (exit === undefined) {
              counts.awaited++
              return Effect.onInterrupt(Fiber.join(fiber), () => Fiber.interrupt(fiber))
            }
            counts.sync++
            if (Exit.isFailure(exit)) return Effect.runSync(Effect.flip(exit))
            slot.result = exit.value.results.length === 0 ? undefined : [...exit.value.results]
            slot.memoryBytes = exit.value.memoryBytes
            slot.fuelRemaining = exit.value.fuelRemaining
            return undefined
          }
        })
      )
  }
  return { ...t, engine }
}

const fns = {
  add: { params: ["i32", "i32"], results: ["i32"] },
  big: { params: ["i64"], results: ["i64"] },
  later: { params: ["i32"], results: ["i32"] },
  boom: { results: ["i32"] }
}

/** Every kind of argument the checks decide on, a missing export, an awaited answer, a trap. */
const calls: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> = [
  ["add", [1, 2]],
  ["add", [1]],
  ["add", ["1", 2]],
  ["add", [1, 2n]],
  ["big", [1n]],
  ["big", [2n ** 64n]],
  ["nope", []],
  ["later", [7]],
  ["add", { length: 2, 0: 1, 1: 2 } as unknown as ReadonlyArray<unknown>],
  ["boom", []],
  ["add", [40, 2]],
  ["later", [8]]
]

const outcomes = (t: TestEngine) =>
  Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const m = yield* loadWith(t, "checks", fns, {
      add: (_ctx, args) => [(args[0] as number) + (args[1] as number)],
      big: (_ctx, args) => [args[0]!],
      later: (_ctx, args) => Effect.as(Effect.yieldNow, [args[0]!]),
      boom: () => Effect.fail(new Trap({ function: "boom", reason: "unreachable" }))
    })
    yield* runtime.spawnAgent(agentId("a"), m, config(undefined, { onTrap: "restore" }))
    const seen: Array<unknown> = []
    for (const [fn, args] of calls) seen.push(yield* Effect.exit(runtime.invoke(agentId("a"), fn, args as never)))
    const info = yield* runtime.agent(agentId("a"))
    return { seen, invocations: info.invocationCount, errors: info.errorCount }
  })

describe("invoke through invokeStart (worker engines)", () => {
  it.effect("the same results, errors and counts as the mailbox path; synchronous and awaited answers", () =>
    Effect.gen(function* () {
      const counts = { sync: 0, awaited: 0 }
      const t1 = withStart(makeTestEngine(), counts)
      const t2 = makeTestEngine()
      const started = yield* outcomes(t1).pipe(Effect.provide(runtimeLayer(t1)))
      const queued = yield* outcomes(t2).pipe(Effect.provide(runtimeLayer(t2)))
      expect(started).toEqual(queued)
      expect(started.seen[0]).toEqual(Exit.succeed([3]))
      expect(started.seen[7]).toEqual(Exit.succeed([7]))
      expect(started.seen[10]).toEqual(Exit.succeed([42])) // after the trap's recovery
      expect(counts.sync).toBeGreaterThan(0)
      expect(counts.awaited).toBeGreaterThan(0)
    })
  )

  it.effect(
    "a running call holds the mailbox: later calls run one at a time in FIFO order; an interrupted one never runs",
    () => {
      const t = withStart(makeTestEngine(), { sync: 0, awaited: 0 })
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
        expect(order).toEqual([]) // all queued behind the running call
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
    }
  )

  it.effect("interrupting a running call interrupts the engine's call and lets the next call in", () => {
    const t = withStart(makeTestEngine(), { sync: 0, awaited: 0 })
    return Effect.gen(function* () {
      const runtime = yield* AgentRuntime
      let interrupted = 0
      const m = yield* loadWith(
        t,
        "stuck",
        { stuck: { results: ["i32"] }, add: { params: ["i32", "i32"], results: ["i32"] } },
        {
          stuck: () => Effect.onInterrupt(Effect.never, () => Effect.sync(() => interrupted++)),
          add: (_ctx, args) => [(args[0] as number) + (args[1] as number)]
        }
      )
      const id = agentId("a")
      yield* runtime.spawnAgent(id, m, config())
      const stuck = yield* Effect.forkChild(runtime.invoke(id, "stuck"), { startImmediately: true })
      const next = yield* Effect.forkChild(runtime.invoke(id, "add", [1, 2]), { startImmediately: true })
      yield* Fiber.interrupt(stuck)
      expect(interrupted).toBe(1)
      expect(yield* Fiber.join(next)).toEqual([3])
      expect(yield* runtime.invoke(id, "add", [2, 2])).toEqual([4])
    }).pipe(Effect.provide(runtimeLayer(t)))
  })
})

describe("Mailbox.holdFrom", () => {
  it.effect("holds the permit until its effect ends — success, failure, interruption — and refuses a held permit", () =>
    Effect.gen(function* () {
      const mailbox = new Mailbox()
      const ok = yield* Effect.withFiber(() => mailbox.holdFrom(Effect.sync(() => mailbox.held)))
      expect(ok).toBe(true)
      expect(mailbox.held).toBe(false)
      const failed = yield* Effect.exit(Effect.withFiber(() => mailbox.holdFrom(Effect.fail("no"))))
      expect(Exit.isFailure(failed)).toBe(true)
      expect(mailbox.held).toBe(false)
      const gate = yield* Deferred.make<void>()
      const fiber = yield* Effect.forkChild(
        Effect.withFiber(() => mailbox.holdFrom(Deferred.await(gate))),
        { startImmediately: true }
      )
      expect(mailbox.held).toBe(true)
      // a queued run waits for it
      const queued = yield* Effect.forkChild(mailbox.withPermit(Effect.succeed(1)), { startImmediately: true })
      expect(mailbox.waiting).toBe(1)
      expect(() => mailbox.holdFrom(Effect.void)).toThrow()
      yield* Fiber.interrupt(fiber)
      expect(yield* Fiber.join(queued)).toBe(1)
      expect(mailbox.held).toBe(false)
    })
  )

  it.effect("released when the fiber that took it ends without running the effect", () =>
    Effect.gen(function* () {
      const mailbox = new Mailbox()
      const exit = yield* Effect.exit(
        Effect.withFiber(() => {
          mailbox.holdFrom(Effect.void) // taken, its effect dropped (as when interrupted at a yield before it)
          return Effect.interrupt
        }).pipe(Effect.forkChild({ startImmediately: true }), Effect.flatMap(Fiber.join))
      )
      expect(Exit.hasInterrupts(exit)).toBe(true)
      expect(mailbox.held).toBe(false)
      expect(yield* mailbox.withPermit(Effect.succeed(2))).toBe(2)
    })
  )
})
