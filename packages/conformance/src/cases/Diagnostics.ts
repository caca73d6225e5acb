/**
 * Inputs, CPU bounds and diagnostics (issue 12 items 3, 5, 8): an agent
 * without fuel on an engine that cannot preempt gets the runtime's
 * `limits.defaultFuel` (a `loop br 0` ends in `FuelExhausted`, other agents
 * keep running); every public entry point refuses untyped input with a
 * typed error; every missing or mismatched import is reported at once; a
 * trap at the memory budget says so; fuel running out in a start function is
 * `FuelExhausted`.
 */
import { agentId, InstantiationError, makeMetadata, type WasmValue } from "@agent-runtime/domain"
import { signModule } from "@agent-runtime/signing"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { MiB } from "../Harness.js"
import { importedMemoryModule } from "../internal/binary.js"
import type { SuiteContext } from "./Context.js"

const MEGA_ID = "x".repeat(1 << 20)

export const diagnosticCases = ({ caps, run }: SuiteContext) =>
  describe("inputs, CPU bounds and diagnostics (issue 12 items 3, 5, 8)", () => {
    // the default applies where a call cannot be preempted but fuel can be metered into a module compiled now
    const defaultFuelApplies = !caps.preemptiveTimeout && caps.fuel && caps.runtimeCompile

    it.effect(
      "an agent spawned without fuel nor timeoutMs: bounded on every engine (limits.defaultFuel where calls cannot be preempted)",
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              yield* t.spawn("l", "looper", { memoryLimit: MiB })
              yield* t.spawn("c", "counter")
              expect(yield* t.call("l", "spin_n", [1000])).toEqual([1000])
              if (defaultFuelApplies) {
                // `spin` is a `loop br 0`: the default fuel stops it, and the host and other agents go on
                expect(yield* Effect.flip(t.call("l", "spin"))).toMatchObject({
                  _tag: "FuelExhausted",
                  function: "spin",
                  fuel: 1_000_000
                })
                expect(yield* t.call("c", "increment")).toEqual([1])
                expect(yield* t.call("l", "spin_n", [10])).toEqual([10])
              }
              expect(yield* t.call("c", "increment")).toEqual([defaultFuelApplies ? 2 : 1])
            }),
          { settings: { limits: { defaultFuel: 1_000_000 } } }
        )
    )

    it.effect(
      "with limits.defaultFuel disabled, an engine that cannot preempt refuses such an agent (InvalidConfig)",
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              const r = yield* Effect.result(t.spawn("l", "looper", { memoryLimit: MiB }))
              if (defaultFuelApplies) {
                expect(r._tag).toBe("Failure")
                if (r._tag === "Failure") expect(r.failure).toMatchObject({ _tag: "InvalidConfig" })
                expect(yield* t.rt.agents).toHaveLength(0)
              } else {
                expect(r._tag).toBe("Success")
              }
            }),
          { settings: { limits: { defaultFuel: false } } }
        )
    )

    it.effect(
      "untyped input is refused with typed errors, never blamed on the guest; huge ids are not echoed whole",
      () =>
        run((t) =>
          Effect.gen(function* () {
            const { rt } = t
            yield* t.spawn("c", "counter")
            const inv = (fn: unknown, args: unknown) =>
              Effect.flip(rt.invoke(agentId("c"), fn as string, args as Array<WasmValue>))
            expect(yield* inv("add", null)).toMatchObject({ _tag: "SignatureMismatch", index: -1 })
            expect(yield* inv("add", { length: 1, 0: 5 })).toMatchObject({ _tag: "SignatureMismatch", index: -1 })
            const getter: Array<number> = []
            Object.defineProperty(getter, 0, {
              get: () => {
                throw new TypeError("no")
              },
              enumerable: true
            })
            expect(yield* inv("add", getter)).toMatchObject({ _tag: "SignatureMismatch" })
            expect(yield* inv(7, [1])).toMatchObject({ _tag: "FunctionNotFound" })
            const info = yield* t.info("c")
            expect(info.state).toBe("Running")
            expect(info.errorCount).toBe(0)
            expect(yield* t.call("c", "add", [5])).toEqual([5])

            expect(
              yield* Effect.flip(rt.loadModule(null as never, makeMetadata({ name: "x", version: "1.0.0" })))
            ).toMatchObject({
              _tag: "InvalidArgument",
              argument: "bytes"
            })
            const m = (yield* t.info("c")).moduleId
            expect(yield* Effect.flip(rt.spawnAgent(agentId("d"), m, null as never))).toMatchObject({
              _tag: "InvalidConfig"
            })
            expect(yield* Effect.flip(rt.spawnAgent(agentId(""), m, { memoryLimit: 16 * MiB }))).toMatchObject({
              _tag: "InvalidConfig"
            })
            const long = yield* Effect.flip(rt.spawnAgent(agentId(MEGA_ID), m, { memoryLimit: 16 * MiB }))
            expect(long._tag).toBe("InvalidConfig")
            expect(long.message.length).toBeLessThan(300)
            const notFound = yield* Effect.flip(rt.invoke(agentId(MEGA_ID), "increment", []))
            expect(notFound._tag).toBe("AgentNotFound")
            expect(notFound.message.length).toBeLessThan(300)
            expect(yield* Effect.flip(rt.evictAgent(agentId("c"), "NotAReason" as never))).toMatchObject({
              _tag: "InvalidArgument",
              argument: "reason"
            })
            expect(yield* rt.agents).toHaveLength(1)
          })
        )
    )

    it.effect(
      "every missing or mismatched import at once (module, name, kind, expected type), a supplied memory checked against the import's limits",
      () =>
        Effect.gen(function* () {
          const bytes = yield* Effect.orDie(
            signModule(importedMemoryModule(), { name: "imported-memory", version: "1.0.0" }, testOnlyKeyPair.secretKey)
          )
          yield* run((t) =>
            Effect.gen(function* () {
              const none = yield* Effect.flip(t.spawn("h", "host-caller"))
              expect(none).toBeInstanceOf(InstantiationError)
              if (!(none instanceof InstantiationError)) return
              expect(none.missing?.map((p) => [p.module, p.name, p.kind, p.expected, p.problem])).toEqual([
                ["env", "log", "function", "(i32) -> ()", "missing"],
                ["env", "now", "function", "() -> (f64)", "missing"]
              ])
              const wrong = yield* Effect.flip(t.spawn("h", "host-caller", { imports: { env: { log: 5 as never } } }))
              expect(wrong).toMatchObject({ _tag: "InstantiationError" })
              expect(wrong.message).toMatch(
                /"env"."log" \(function \(i32\) -> \(\)\): expected a function, got number 5/
              )
              expect(wrong.message).toMatch(/"env"."now" \(function \(\) -> \(f64\)\): missing/)

              const id = yield* t.rt.loadModule(bytes, makeMetadata({ name: "imported-memory", version: "1.0.0" }))
              const small = { buffer: new ArrayBuffer(0) } // a memory of 0 pages where the import needs 1
              const e = yield* Effect.flip(
                t.rt.spawnAgent(agentId("m"), id, { memoryLimit: 2 * MiB, imports: { env: { memory: small } } })
              )
              expect(e).toMatchObject({ _tag: "InstantiationError" })
              expect(e.message).toMatch(
                /"env"."memory" \(memory memory 1.. pages\): has 0 pages, below the import's minimum of 1/
              )
              expect(yield* t.rt.agents).toHaveLength(0)
              expect((yield* t.rt.stats).memory.reserved).toBe(0)
            })
          )
        })
    )

    it.effect("a trap when linear memory is at the agent's budget says so (reason and lastError)", () =>
      run((t) =>
        Effect.gen(function* () {
          yield* t.spawn("lk", "leaky", { memoryLimit: MiB })
          let e: { readonly _tag: string; readonly message: string } | undefined
          for (let i = 0; i < 64 && e === undefined; i++) {
            const r = yield* Effect.result(t.call("lk", "leak", [64]))
            if (r._tag === "Failure") e = r.failure
          }
          expect(e).toMatchObject({ _tag: "Trap", function: "leak" })
          expect(e?.message).toMatch(/linear memory is at the agent's budget of \d+ bytes \(cap\)/)
        })
      )
    )

    it.effect.skipIf(!caps.fuel)("fuel running out in a start function is FuelExhausted (start), not a trap", () =>
      run((t) =>
        Effect.gen(function* () {
          // the text agent's AssemblyScript runtime set-up runs in its start function: 10 fuel units are not enough
          const e = yield* Effect.flip(t.spawn("s", "text", { fuel: 10 }))
          expect(e).toMatchObject({ _tag: "FuelExhausted", function: "(start)", fuel: 10 })
          expect(yield* t.rt.agents).toHaveLength(0)
          expect((yield* t.rt.stats).memory.reserved).toBe(0)
        })
      )
    )
  })
