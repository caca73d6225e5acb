/**
 * What a host import's return value becomes inside the guest: the WebAssembly
 * JS API's rules (§"Exported Functions" / "run a host function":
 * ToWebAssemblyValue), the same on every engine — in-process, across a
 * worker boundary, or at the edge. Engines used to differ here (issue 16):
 *
 * - a void import's return value, whatever it is (`{}`, a string, an array),
 *   is ignored;
 * - a one-result import's value is converted as `ToWebAssemblyValue` does for
 *   its type: for an `f64`, `ToNumber` — `true` → 1, `"2.5"` → 2.5, a
 *   one-element array `[x]` → x;
 * - a value `ToNumber` refuses (a bigint for an `f64`) is a `TypeError` at the
 *   JS boundary: the invocation fails with `Trap`, and the agent keeps working
 *   (on a fresh instance: `onTrap` "restore", issue 12 item 7).
 */
import { Trap } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const hostResultCases = ({ run }: SuiteContext) =>
  describe("host results (WebAssembly JS API)", () => {
    it.effect(
      "a void import's return value is ignored; a one-result import's value is converted like ToWebAssemblyValue; a bigint for an f64 → Trap",
      () =>
        run(({ spawn, call }) =>
          Effect.gen(function* () {
            const logged: Array<number> = []
            let logReturns: unknown = {}
            let nowReturns: unknown = 0
            const env = {
              log: (x: number) => {
                logged.push(x)
                return logReturns
              },
              now: () => nowReturns
            }
            yield* spawn("hr", "host-caller", { memoryLimit: MiB, imports: { env } })

            // env.log is (param i32) with no result: what it returns is ignored
            expect(yield* call("hr", "call_log", [1])).toEqual([])
            logReturns = "ignored"
            expect(yield* call("hr", "call_log", [2])).toEqual([])
            logReturns = [7, 8]
            expect(yield* call("hr", "log_n", [2])).toEqual([2])
            expect(logged).toEqual([1, 2, 0, 1])

            // env.now is (result f64): ToNumber of what it returns
            nowReturns = true
            expect(yield* call("hr", "call_now")).toEqual([1])
            nowReturns = "2.5"
            expect(yield* call("hr", "call_now")).toEqual([2.5])
            nowReturns = [1234.5]
            expect(yield* call("hr", "elapsed_since", [1000])).toEqual([234.5])

            // a bigint cannot become an f64: TypeError at the boundary → Trap
            nowReturns = 5n
            const refused = yield* Effect.flip(call("hr", "call_now"))
            expect(refused).toBeInstanceOf(Trap)
            nowReturns = 3
            expect(yield* call("hr", "call_now")).toEqual([3])
            // the trap replaced the instance (onTrap "restore"): fresh state, no calls logged yet
            expect(yield* call("hr", "log_calls")).toEqual([0])
          })
        )
    )
  })
