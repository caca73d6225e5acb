/**
 * Hostile modules and churn, on every engine (issue 12 items 2, 6, 9):
 *
 * - item 2: the fuel escapes — invalid modules whose `local.set` / `global.set`
 *   / `global.get` names the index one past the function's locals or the
 *   module's globals, which a fuel rewrite without its own checks turned into
 *   a valid module refilling its own fuel — are refused by `loadModule` with a
 *   typed `CompileError` (`kind: "invalid"`, the instruction's byte offset),
 *   with the runtime's default fuel on and off; the valid twin (the same loop
 *   over a declared local) is metered and stops with `FuelExhausted`;
 * - item 6: `assert_malformed` shapes of the spec test suite (an illegal
 *   opcode in a body, `memory.init` without a data count section, an
 *   overlong LEB128) and memory64 limits are refused by `loadModule` with a
 *   typed `CompileError` carrying the reader's reason, kind and byte offset,
 *   and the runtime stays healthy (a real agent loads, spawns and runs after);
 * - item 9: churn — spawn / invoke / grow / evict / pressure / health in a
 *   loop driven by a seeded PRNG — checks after every step that the pool's
 *   reserved and used bytes never exceed its total, that reserved is the sum
 *   of the live agents' limits (strict admission), and that both return to
 *   zero at the end (spec invariant 1);
 * - item 1, imported tables: a caller-supplied `WebAssembly.Table` without a
 *   maximum, or with one past the agent's budget, or already larger than it,
 *   is refused at spawn with a typed error (the guest could otherwise grow it
 *   outside any budget); one with a maximum inside the budget works, and
 *   `table.grow` past its maximum returns -1 inside the guest.
 *
 * The modules are built in memory (`internal/binary.ts`), never read from
 * files, so the browser and workerd run the same cases.
 */
import { agentId, CompileError, makeMetadata, type ModuleId } from "@agent-runtime/domain"
import { signModule } from "@agent-runtime/signing"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { AgentName } from "../Fixtures.js"
import { MiB, type TestRuntime } from "../Harness.js"
import { fuelEscapeModules, fuelLoopModule, importedTableModule, malformedModules } from "../internal/binary.js"
import type { SuiteContext } from "./Context.js"

const sign = (bytes: Uint8Array, name: string) =>
  Effect.orDie(signModule(bytes, { name, version: "1.0.0" }, testOnlyKeyPair.secretKey))

/**
 * The runtime is healthy: a real agent loads, spawns, runs; nothing is left reserved by the refusals. The agent gets
 * explicit fuel where the runtime would require it (`limits.defaultFuel: false` on an engine that cannot preempt).
 */
const healthyAfter = (t: TestRuntime, id: string) =>
  Effect.gen(function* () {
    expect((yield* t.rt.stats).memory).toMatchObject({ used: 0, reserved: 0 })
    const fuel = !t.caps.preemptiveTimeout && t.caps.fuel && t.caps.runtimeCompile ? { fuel: 1_000_000 } : {}
    yield* t.spawn(id, "counter", { memoryLimit: MiB, ...fuel })
    expect(yield* t.call(id, "increment")).toEqual([1])
    yield* t.rt.evictAgent(agentId(id), "Manual")
    expect((yield* t.rt.stats).memory).toMatchObject({ used: 0, reserved: 0 })
  })

/** Evicts `id`, then checks the runtime is healthy. */
const healthyAfterEvict = (t: TestRuntime, id: string) =>
  Effect.andThen(t.rt.evictAgent(agentId(id), "Manual"), healthyAfter(t, `${id}-after`))

/** mulberry32: a small seeded PRNG, the same sequence on every platform. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return (n: number): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4_294_967_296) * n)
  }
}

/** Churn: seed, steps, pool size. Agents are 1, 2 or 4 MiB (variants every engine has, the edge bundle too). */
const CHURN = { seed: 0x12_0009, steps: 120, pool: 12 * MiB }

export const hostileModuleCases = ({ caps, run }: SuiteContext) =>
  describe("hostile modules and churn (issue 12 items 2, 6, 9)", () => {
    for (const defaultFuel of [1_000_000, false] as const) {
      it.effect(
        `the fuel escapes (an index one past the locals / globals) are refused by loadModule with a typed CompileError (limits.defaultFuel ${defaultFuel})`,
        () =>
          run(
            (t) =>
              Effect.gen(function* () {
                for (const m of fuelEscapeModules()) {
                  const bytes = yield* sign(m.bytes, "fuel-escape")
                  const e = yield* Effect.flip(
                    t.rt.loadModule(bytes, makeMetadata({ name: "fuel-escape", version: "1.0.0" }))
                  )
                  expect(e, m.name).toBeInstanceOf(CompileError)
                  if (!(e instanceof CompileError)) continue
                  expect({ kind: e.kind, offset: e.offset }, m.name).toEqual({ kind: "invalid", offset: m.offset })
                  expect(e.reason, m.name).toMatch(m.reason)
                }
                yield* healthyAfter(t, "after-escapes")
              }),
            { settings: { limits: { defaultFuel } } }
          )
      )
    }

    it.effect.skipIf(!caps.fuel || !caps.runtimeCompile)(
      "the valid twin of the escape (the same loop over a declared local) is metered: FuelExhausted, the host goes on",
      () =>
        Effect.gen(function* () {
          const bytes = yield* sign(fuelLoopModule(), "fuel-loop")
          yield* run((t) =>
            Effect.gen(function* () {
              const m: ModuleId = yield* t.rt.loadModule(bytes, makeMetadata({ name: "fuel-loop", version: "1.0.0" }))
              yield* t.rt.spawnAgent(agentId("loop"), m, { memoryLimit: MiB, fuel: 100_000 })
              expect(yield* Effect.flip(t.rt.invoke(agentId("loop"), "run", []))).toMatchObject({
                _tag: "FuelExhausted",
                function: "run",
                fuel: 100_000
              })
              // the fuel is per call: the next call is metered the same way, not refilled by the guest
              expect(yield* Effect.flip(t.rt.invoke(agentId("loop"), "run", []))).toMatchObject({
                _tag: "FuelExhausted",
                function: "run"
              })
              yield* healthyAfterEvict(t, "loop")
            })
          )
        })
    )

    it.effect(
      "spec-suite assert_malformed shapes and memory64 limits are refused by loadModule with a typed CompileError (reason, kind, offset); the runtime stays healthy",
      () =>
        run((t) =>
          Effect.gen(function* () {
            for (const m of malformedModules()) {
              const bytes = yield* sign(m.bytes, "malformed")
              const e = yield* Effect.flip(
                t.rt.loadModule(bytes, makeMetadata({ name: "malformed", version: "1.0.0" }))
              )
              expect(e, m.name).toBeInstanceOf(CompileError)
              if (!(e instanceof CompileError)) continue
              expect({ kind: e.kind, offset: e.offset }, m.name).toEqual({ kind: m.kind, offset: m.offset })
              expect(e.reason, m.name).toMatch(m.reason)
              if (m.kind === "unsupported") expect(e.feature).toBe("memory64")
            }
            yield* healthyAfter(t, "after-malformed")
          })
        )
    )

    it.effect.skipIf(!caps.runtimeCompile)(
      "a caller-supplied table is checked against the budget at spawn (no maximum / past the budget → refused, typed)",
      () =>
        Effect.gen(function* () {
          const bytes = yield* sign(importedTableModule(), "imported-table")
          yield* run(
            (t) =>
              Effect.gen(function* () {
                const m = yield* t.rt.loadModule(bytes, makeMetadata({ name: "imported-table", version: "1.0.0" }))
                const spawn = (id: string, table: WebAssembly.Table) =>
                  Effect.result(
                    t.rt.spawnAgent(agentId(id), m, { memoryLimit: MiB, fuel: 1_000_000, imports: { env: { table } } })
                  )
                const refused = [
                  ["no-max", new WebAssembly.Table({ element: "anyfunc", initial: 1 })],
                  ["max-past-budget", new WebAssembly.Table({ element: "anyfunc", initial: 1, maximum: 10_000_000 })],
                  [
                    "larger-than-budget",
                    new WebAssembly.Table({ element: "anyfunc", initial: 40_000, maximum: 40_000 })
                  ]
                ] as const
                for (const [id, table] of refused) {
                  const r = yield* spawn(id, table)
                  expect(r._tag, id).toBe("Failure")
                  if (r._tag === "Failure")
                    expect(["InstantiationError", "MemoryExceeded"], id).toContain(r.failure._tag)
                  expect(table.length, `${id}: nothing grew`).toBeLessThanOrEqual(40_000)
                }
                expect(yield* t.rt.agents).toHaveLength(0)
                expect((yield* t.rt.stats).memory.reserved).toBe(0)
                const table = new WebAssembly.Table({ element: "anyfunc", initial: 1, maximum: 1000 })
                const ok = yield* spawn("bounded", table)
                if (ok._tag === "Failure") {
                  // engines whose agents run in workers cannot share a caller's table at all: refused, typed
                  expect(caps.workers).toBe(true)
                  expect(ok.failure._tag).toBe("InstantiationError")
                  return
                }
                expect(yield* t.call("bounded", "grow", [9_999_999])).toEqual([-1])
                expect(yield* t.call("bounded", "grow", [99])).toEqual([1])
                expect(table.length).toBe(100)
                yield* t.rt.evictAgent(agentId("bounded"), "Manual")
                expect((yield* t.rt.stats).memory).toMatchObject({ used: 0, reserved: 0 })
              }),
            { settings: { limits: { defaultFuel: 1_000_000 } } }
          )
        })
    )

    it.effect(
      `churn (seed ${CHURN.seed}, ${CHURN.steps} steps): reserved and used never exceed the pool after any step, reserved is Σ of the live agents' limits, both return to zero`,
      () =>
        run(
          (t) =>
            Effect.gen(function* () {
              const random = prng(CHURN.seed)
              const kinds: ReadonlyArray<AgentName> = ["counter", "leaky", "leaky", "grower"]
              const live = new Map<string, AgentName>()
              let next = 0
              let refused = 0
              let traps = 0
              let pressureEvictions = 0
              const check = (step: number, op: string) =>
                Effect.gen(function* () {
                  const { memory } = yield* t.rt.stats
                  const agents = yield* t.rt.agents
                  const where = `step ${step} (${op}), seed ${CHURN.seed}`
                  expect(memory.total, where).toBe(CHURN.pool)
                  expect(memory.reserved, where).toBeLessThanOrEqual(memory.total)
                  expect(memory.used, where).toBeLessThanOrEqual(memory.total)
                  expect(memory.reserved, where).toBe(agents.reduce((n, a) => n + a.budget.limit, 0))
                  for (const a of agents)
                    expect(a.budget.used, `${where}: ${a.agentId}`).toBeLessThanOrEqual(a.budget.limit)
                  // agents leave only by eviction (here, pressure, health, a failed recovery): the model follows them
                  const now = new Set(agents.map((a) => a.agentId as string))
                  for (const id of now) expect(live.has(id), `${where}: ${id} is live but was never spawned`).toBe(true)
                  for (const id of [...live.keys()]) if (!now.has(id)) live.delete(id)
                })
              for (let step = 0; step < CHURN.steps; step++) {
                const ids = [...live.keys()]
                const pick = ids[random(Math.max(ids.length, 1))]
                const roll = random(100)
                let op: string
                if (pick === undefined || roll < 25) {
                  const id = `a${next++}`
                  const name = kinds[random(kinds.length)]!
                  const limit = [1, 2, 4][random(3)]! * MiB
                  op = `spawn ${id} ${name} ${limit}`
                  const r = yield* Effect.result(t.spawn(id, name, { memoryLimit: limit }))
                  if (r._tag === "Success") live.set(id, name)
                  else {
                    expect(r.failure._tag, op).toBe("InsufficientMemory")
                    refused++
                  }
                } else if (roll < 55) {
                  const name = live.get(pick)!
                  const [fn, args] =
                    name === "counter"
                      ? (["increment", []] as const)
                      : name === "leaky"
                        ? (["leak", [256 + random(768)]] as const)
                        : (["grow", [random(3)]] as const)
                  op = `invoke ${pick}.${fn}(${args.join(",")})`
                  const r = yield* Effect.result(t.call(pick, fn, args))
                  // a leak past the budget traps inside the guest (memory.grow refused at the cap): typed, never the host's
                  if (r._tag === "Failure") {
                    expect(r.failure._tag, op).toBe("Trap")
                    traps++
                  }
                } else if (roll < 75) {
                  op = `evict ${pick}`
                  yield* t.rt.evictAgent(agentId(pick), "Manual")
                  live.delete(pick)
                } else if (roll < 90) {
                  op = "pressure"
                  const evicted = yield* t.rt.handleMemoryPressure
                  for (const id of evicted) live.delete(id)
                  pressureEvictions += evicted.length
                } else {
                  op = "health"
                  yield* t.rt.checkHealth
                  yield* t.settle
                }
                yield* check(step, op)
              }
              for (const id of [...live.keys()]) yield* t.rt.evictAgent(agentId(id), "Manual")
              live.clear()
              yield* check(CHURN.steps, "evict all")
              expect((yield* t.rt.stats).memory).toMatchObject({ used: 0, reserved: 0 })
              expect(next, "the churn spawned agents").toBeGreaterThan(10)
              console.log(
                `churn ${CHURN.seed}: ${CHURN.steps} steps, ${next} spawn attempts (${refused} refused for memory), ${traps} guest traps, ${pressureEvictions} pressure evictions`
              )
            }),
          { settings: { pool: { totalMemory: CHURN.pool }, autoPressure: false } }
        )
    )
  })
