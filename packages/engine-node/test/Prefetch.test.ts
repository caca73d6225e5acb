/**
 * `WasmInstance.prefetch` on engine-node (the "a request is coming" hint, `CallChannel.prefetch`): hints
 * before calls, at every distance and with no call after them, change no result; a call after a hint still
 * times out and terminates its worker. On the message transport the hint does nothing.
 */
import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { NodeEngine } from "../src/index.js"
import { call, instantiateWat } from "./helpers.js"

const MODULE = `(module
  (memory (export "memory") 1)
  (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)
  (func (export "store") (param i32 i32) local.get 0 local.get 1 i32.store)
  (func (export "load") (param i32) (result i32) local.get 0 i32.load)
  (func (export "forever") (loop br 0)))`

const pause = (ms: number) => Effect.promise(() => new Promise((resolve) => setTimeout(resolve, ms)))

for (const channel of ["shared", "message"] as const) {
  describe(`prefetch (${channel} channel)`, () => {
    const engine = NodeEngine.make({ workers: 1, channel })
    afterAll(() => Effect.runPromise(engine.shutdown))

    it.effect("hints before calls after every kind of pause, and hints with no call: every call answers", () =>
      Effect.gen(function* () {
        const instance = yield* instantiateWat(engine, MODULE)
        const other = yield* instantiateWat(engine, MODULE) // same worker: its hints and calls interleave
        expect(typeof instance.prefetch).toBe("function")
        let seed = 5
        for (let i = 0; i < 120; i++) {
          seed = (seed * 1103515245 + 12345) % 2147483648
          const r = seed % 100
          if (r % 4 === 0) yield* pause(r % 7) // the worker falls asleep (or not)
          instance.prefetch!()
          if (r % 5 === 0) other.prefetch!() // a hint for the other agent of the worker
          if (r % 9 === 0) continue // a hint with no call after it
          if (r % 3 === 0) yield* pause(1)
          yield* call(instance, "store", 8, i)
          expect(yield* call(instance, "load", 8)).toEqual([i])
          expect(yield* call(other, "add", i, 1)).toEqual([i + 1])
        }
      })
    )

    it.effect("a call after a hint still times out: its worker is terminated, the instance too", () =>
      Effect.gen(function* () {
        const instance = yield* instantiateWat(engine, MODULE)
        expect(yield* call(instance, "add", 1, 2)).toEqual([3])
        yield* pause(5)
        instance.prefetch!()
        const exit = yield* Effect.exit(instance.invoke("forever", [], { timeoutMs: 100 }))
        expect(Exit.isFailure(exit) && JSON.stringify(exit.cause)).toContain("Timeout")
        const after = yield* Effect.exit(instance.invoke("add", [1, 2]))
        expect(Exit.isFailure(after) && JSON.stringify(after.cause)).toContain("instance terminated")
        // a fresh instance on the replaced worker answers after a hint
        const fresh = yield* instantiateWat(engine, MODULE)
        yield* pause(5)
        fresh.prefetch!()
        expect(yield* call(fresh, "add", 2, 3)).toEqual([5])
      })
    )
  })
}
