/**
 * `WasmInstance.invokeStart` on engine-node (the call started in the caller's step: a reply caught within
 * the channel's spin budgets is written to the caller's `CallSlot`, else an effect awaits the running call):
 * for every kind of outcome it answers exactly as `invoke` does — results (none, one, multi-value, i64),
 * memory size, fuel left, typed errors (trap, missing export, an argument that cannot cross, fuel, timeout)
 * — on both transports, in hot loops and after pauses (both the synchronous and the awaited branch).
 */
import { callResults, type InvokeOptions, makeCallSlot, type WasmInstance } from "@agent-runtime/domain"
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { NodeEngine } from "../src/index.js"
import { instantiateWat } from "./helpers.js"

const MODULE = `(module
  (memory (export "memory") 1)
  (func (export "noop"))
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "pair") (param i64) (result i32 i64) i32.const 7 local.get 0)
  (func (export "grow") (result i32) i32.const 1 memory.grow)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "trap") unreachable)
  (func (export "forever") (loop br 0)))`

/** What a call ended with, comparable between the two paths: results and memory, or the typed error. */
const outcomeOf = (
  exit: Exit.Exit<{ results: ReadonlyArray<unknown>; memoryBytes: number; fuelRemaining?: number | undefined }, unknown>
) =>
  Exit.isSuccess(exit)
    ? { ok: exit.value.results, memoryBytes: exit.value.memoryBytes, fuel: exit.value.fuelRemaining }
    : errorOf(Cause.squash(exit.cause))

const errorOf = (e: unknown) => {
  const error = e as { _tag?: string; message?: string }
  return { error: error._tag, message: error.message }
}

/** `invokeStart` as an effect: how the runtime reads its three answers. */
const started = (instance: WasmInstance, fn: string, args: ReadonlyArray<unknown>, options?: InvokeOptions) =>
  Effect.suspend(() => {
    const slot = makeCallSlot()
    const answer = instance.invokeStart!(fn, args as never, options, slot)
    if (answer === undefined) {
      return Effect.succeed({
        results: callResults(slot.result),
        memoryBytes: slot.memoryBytes,
        fuelRemaining: slot.fuelRemaining
      })
    }
    return answer instanceof Error ? Effect.fail(answer) : answer
  })

const pause = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

const CASES: ReadonlyArray<readonly [string, ReadonlyArray<unknown>]> = [
  ["noop", []],
  ["add", [2, 40]],
  ["pair", [-5n]],
  ["load", [8]],
  ["trap", []],
  ["missing", []],
  ["add", ["two", 1]]
]

for (const channel of ["shared", "message"] as const) {
  describe(`invokeStart (${channel} channel)`, () => {
    const engine = NodeEngine.make({ workers: 1, channel })
    afterAll(() => Effect.runPromise(engine.shutdown))

    it.effect(
      "answers as invoke does, hot and after pauses (synchronous and awaited answers)",
      () =>
        Effect.gen(function* () {
          const a = yield* instantiateWat(engine, MODULE)
          const b = yield* instantiateWat(engine, MODULE)
          expect(typeof a.invokeStart).toBe("function")
          for (let round = 0; round < 60; round++) {
            if (round % 10 === 9) yield* pause(5) // the worker falls asleep: the next answer is awaited
            yield* started(a, "store", [8, round])
            yield* Effect.orDie(b.invoke("store", [8, round]))
            for (const [fn, args] of CASES) {
              const viaStart = outcomeOf(yield* Effect.exit(started(a, fn, args)))
              const viaInvoke = outcomeOf(yield* Effect.exit(b.invoke(fn, args as never)))
              expect(viaStart).toEqual(viaInvoke)
            }
          }
          expect(outcomeOf(yield* Effect.exit(started(a, "pair", [-5n])))).toMatchObject({ ok: [7, -5n] })
          expect(outcomeOf(yield* Effect.exit(started(a, "load", [8])))).toMatchObject({ ok: [59] })
          // memory growth is reported by the call that grew it
          const grown = outcomeOf(yield* Effect.exit(started(a, "grow", [])))
          expect(grown).toMatchObject({ ok: [1], memoryBytes: 2 * 65536 })
        }),
      120_000
    )

    it.effect(
      "a deadline still ends a started call with Timeout; the instance is terminated, a fresh one answers",
      () =>
        Effect.gen(function* () {
          const instance = yield* instantiateWat(engine, MODULE)
          const exit = yield* Effect.exit(started(instance, "forever", [], { timeoutMs: 100 }))
          expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("Timeout")
          expect(instance.isLive?.()).toBe(false)
          const after = yield* Effect.exit(started(instance, "add", [1, 2]))
          expect(Exit.isFailure(after) && JSON.stringify(after.cause)).toContain("instance terminated")
          const fresh = yield* instantiateWat(engine, MODULE)
          expect(outcomeOf(yield* Effect.exit(started(fresh, "add", [2, 3])))).toMatchObject({ ok: [5] })
        }),
      120_000
    )

    it.live(
      "a host function that starts a call on the same worker while the guest waits for it: queued, both answer",
      () =>
        Effect.gen(function* () {
          const neighbour = yield* instantiateWat(engine, MODULE)
          const inner: Array<Promise<unknown>> = []
          const caller = yield* instantiateWat(
            engine,
            `(module
            (import "env" "cb" (func $cb (param i32) (result i32)))
            (func (export "outer") (param i32) (result i32) local.get 0 call $cb i32.const 1 i32.add))`,
            {
              imports: {
                env: {
                  cb: (x: number) => {
                    // the slot's request is in flight synchronously: this one must queue, not enter the channel
                    inner.push(Effect.runPromise(Effect.exit(started(neighbour, "add", [x, 100]))).then(outcomeOf))
                    return x * 2
                  }
                }
              }
            }
          )
          for (let i = 0; i < 20; i++) {
            if (i % 5 === 4) yield* pause(3)
            // a deadline only so that a hang fails the test instead of stalling it (generous: loaded CI machines)
            const outer = outcomeOf(yield* Effect.exit(started(caller, "outer", [i], { timeoutMs: 60_000 })))
            expect(outer).toMatchObject({ ok: [i * 2 + 1] })
          }
          const answers = yield* Effect.promise(() => Promise.all(inner))
          expect(answers.map((a) => (a as { ok?: ReadonlyArray<unknown> }).ok)).toEqual(
            Array.from({ length: 20 }, (_, i) => [i + 100])
          )
        }),
      180_000
    )

    it.live(
      "the same, when the outer call goes on past the host's synchronous window after its host call: the queued call waits for it",
      () =>
        Effect.gen(function* () {
          const neighbour = yield* instantiateWat(engine, MODULE)
          const inner: Array<Promise<unknown>> = []
          // after the host call the guest loops for ≈ 10–50 ms: `begin` returns a pending call (its synchronous
          // window is 1 ms), while the call queued by the host function was chained to the queue before that
          const caller = yield* instantiateWat(
            engine,
            `(module
            (import "env" "cb" (func $cb (param i32) (result i32)))
            (func (export "outer") (param i32) (result i32) (local $n i32) (local $r i32)
              (local.set $r (call $cb (local.get 0)))
              (local.set $n (i32.const 20000000))
              (loop $l (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br_if $l (local.get $n)))
              (i32.add (local.get $r) (i32.const 1))))`,
            {
              imports: {
                env: {
                  cb: (x: number) => {
                    inner.push(Effect.runPromise(Effect.exit(started(neighbour, "add", [x, 100]))).then(outcomeOf))
                    return x * 2
                  }
                }
              }
            }
          )
          for (let i = 0; i < 5; i++) {
            const outer = outcomeOf(yield* Effect.exit(started(caller, "outer", [i], { timeoutMs: 60_000 })))
            expect(outer).toMatchObject({ ok: [i * 2 + 1] })
          }
          const answers = yield* Effect.promise(() => Promise.all(inner))
          expect(answers.map((a) => (a as { ok?: ReadonlyArray<unknown> }).ok)).toEqual(
            Array.from({ length: 5 }, (_, i) => [i + 100])
          )
        }),
      120_000
    )

    it.live(
      "interrupting the awaited part of a started call terminates it; the worker's other agent answers",
      () =>
        Effect.gen(function* () {
          const instance = yield* instantiateWat(engine, MODULE)
          const neighbour = yield* instantiateWat(engine, MODULE)
          const exit = yield* Effect.exit(Effect.timeout(started(instance, "forever", []), "50 millis"))
          expect(Exit.isFailure(exit)).toBe(true)
          expect(instance.isLive?.()).toBe(false)
          expect(outcomeOf(yield* Effect.exit(started(neighbour, "add", [20, 22])))).toMatchObject({ ok: [42] })
        }),
      120_000
    )
  })
}
