/**
 * Tables in the memory budget, on every engine (issue 12 item 1): the table
 * bomb — `(table 1 funcref)` and an export running `table.grow(ref.null
 * func, n)` — gets -1 for n = 9 999 999 instead of growing the host by
 * ~270 MiB; its table grows up to the agent's budget (32 bytes an entry,
 * `TABLE_ENTRY_BYTES`) and no further; the agent's reported memory includes
 * its table; the pool counts each agent at its limit and never more than
 * its total (spec invariant 1), and returns to zero after eviction.
 */
import { agentId, makeMetadata, type ModuleId } from "@agent-runtime/domain"
import { signModule } from "@agent-runtime/signing"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { MiB } from "../Harness.js"
import { tableBombModule } from "../internal/binary.js"
import type { SuiteContext } from "./Context.js"

/** Host bytes charged per table entry (`@agent-runtime/wasm-binary` `TABLE_ENTRY_BYTES`). */
const ENTRY = 32
/** Entries a table-only module can hold within a 1 MiB budget. */
const CAP = MiB / ENTRY

export const tableCases = ({ run }: SuiteContext) =>
  describe("tables in the memory budget (issue 12 item 1)", () => {
    it.effect(
      "table.grow(9 999 999) returns -1; the table grows to the budget and no further; memory reports include it; the pool stays exact",
      () =>
        Effect.gen(function* () {
          const bytes = yield* Effect.orDie(
            signModule(tableBombModule(), { name: "table-bomb", version: "1.0.0" }, testOnlyKeyPair.secretKey)
          )
          yield* run(
            (t) =>
              Effect.gen(function* () {
                const { rt } = t
                const m: ModuleId = yield* rt.loadModule(bytes, makeMetadata({ name: "table-bomb", version: "1.0.0" }))
                for (const id of ["b0", "b1"]) {
                  yield* rt.spawnAgent(agentId(id), m, { memoryLimit: MiB })
                  expect(yield* t.call(id, "grow", [9_999_999])).toEqual([-1])
                  expect(yield* t.call(id, "size")).toEqual([1])
                  expect((yield* t.info(id)).budget.used).toBe(ENTRY) // one entry: the table is in the agent's memory
                  expect(yield* t.call(id, "grow", [99])).toEqual([1])
                  expect((yield* t.info(id)).budget.used).toBe(100 * ENTRY)
                }
                // b0 fills its budget exactly with table entries, then is refused inside the guest
                expect(yield* t.call("b0", "grow", [CAP - 100])).toEqual([100])
                expect(yield* t.call("b0", "grow", [1])).toEqual([-1])
                expect(yield* t.call("b0", "size")).toEqual([CAP])
                expect((yield* t.info("b0")).budget.used).toBe(MiB)
                const stats = yield* rt.stats
                expect(stats.memory).toMatchObject({ total: 2 * MiB, used: 2 * MiB, reserved: 2 * MiB })
                // the pool is full: a third agent is refused before it can grow anything
                expect(yield* Effect.flip(rt.spawnAgent(agentId("b2"), m, { memoryLimit: MiB }))).toMatchObject({
                  _tag: "InsufficientMemory"
                })
                // the pool is right, and health sees the real usage: b0 at 100 % of its budget is Degraded, b1 Healthy
                const health = new Map((yield* rt.checkHealth).map((h) => [h.agentId as string, h.status]))
                expect(Object.fromEntries(health)).toEqual({ b0: "Degraded", b1: "Healthy" })
                for (const id of ["b0", "b1"]) yield* rt.evictAgent(agentId(id), "Manual")
                expect((yield* rt.stats).memory).toMatchObject({ used: 0, reserved: 0 })
              }),
            { settings: { pool: { totalMemory: 2 * MiB }, autoPressure: false } }
          )
        })
    )
  })
