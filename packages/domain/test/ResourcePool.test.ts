/**
 * Spec invariant 1 ("total allocated never exceeds the pool") under churn
 * (issue 12 item 9). A `--tamper counter` swarm run reported a pool peak of
 * 105.9 %: its leaky agents were admitted against a 1 MiB `memoryReservation`
 * with a 64 MiB `memoryLimit` and grew together past the pool. The pool
 * counted that growth correctly (the figure was right; usage escaped the
 * reservations). Now an agent is admitted against its limit unless the pool
 * over-commits explicitly (`pool.overcommit: true`).
 */
import { AgentConfig, AgentRuntime, agentId, ResourcePool } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { config, loadWith, makeTestEngine, MiB, runtimeLayer } from "./support/TestEngine.js"

const LIMIT = 8 * MiB
const AGENTS = 10
/** The swarm's sizing (apps/swarm Plan.poolFor): reservations fill about 62 % of the pool. */
const POOL = Math.ceil((AGENTS * MiB) / 0.62 / MiB) * MiB

const pool = (overcommit?: boolean) =>
  new ResourcePool({
    totalMemory: 4 * MiB,
    maxThreads: 0,
    maxHandles: 0,
    thresholds: { warning: 0.7, high: 0.85, critical: 0.95 },
    ...(overcommit === undefined ? {} : { overcommit })
  })

describe("ResourcePool admission (issue 12 item 9)", () => {
  it("admission: the limit by default, the reservation only when the pool over-commits", () => {
    const c = { memoryLimit: 2 * MiB, memoryReservation: MiB }
    expect(AgentConfig.admission(c, false)).toBe(2 * MiB)
    expect(AgentConfig.admission(c, true)).toBe(MiB)
    expect(AgentConfig.admission({ memoryLimit: 2 * MiB }, true)).toBe(2 * MiB)
    expect(pool().overcommit).toBe(false)
    expect(pool(true).overcommit).toBe(true)
  })

  it("a resident size within the admitted bytes never raises the usage; one above it does (over-commit)", () => {
    const p = pool()
    expect(p.allocateMemory(agentId("a"), 2 * MiB, 0)).toMatchObject({ reserved: 2 * MiB })
    p.recordResident(agentId("a"), 2 * MiB)
    expect(p.usedMemory()).toBe(2 * MiB)
    expect(p.allocateMemory(agentId("b"), 3 * MiB, 0)).toMatchObject({ _tag: "InsufficientMemory", available: 2 * MiB })
    p.recordResident(agentId("a"), 5 * MiB) // only possible with memory caps off or an over-committed reservation
    expect(p.usedMemory()).toBe(5 * MiB)
    // a new record (not changed in place) with the fields of the admitted one, in the same order
    const recorded = p.allocation(agentId("a"))!
    expect(Object.entries(recorded)).toEqual([
      ["owner", "a"],
      ["reserved", 2 * MiB],
      ["resident", 5 * MiB],
      ["allocatedAt", 0]
    ])
    p.recordResident(agentId("a"), 4 * MiB)
    expect(recorded.resident).toBe(5 * MiB)
    expect(p.allocation(agentId("a"))?.resident).toBe(4 * MiB)
    p.recordResident(agentId("a"), 5 * MiB)
    expect(p.releaseMemory(agentId("a"))).toBe(5 * MiB)
    expect(p.usedMemory()).toBe(0)
  })

  for (const overcommit of [true, false]) {
    it.effect(
      `leaky agents (reservation 1 MiB, limit 8 MiB) growing together to their caps: ${
        overcommit
          ? "over-committed, the pool overshoots (the swarm's 105.9 %)"
          : "by default, used ≤ total after every step"
      }`,
      () => {
        const t = makeTestEngine()
        return Effect.gen(function* () {
          const runtime = yield* AgentRuntime
          // the engine's cap: memory.grow past the budget returns -1, so growth stops at the limit
          const m = yield* loadWith(
            t,
            "leaky",
            { leak: { params: ["i32"], results: ["i32"] } },
            {
              leak: (ctx, [mib]) => (
                (ctx.memoryBytes = Math.min(LIMIT, ctx.memoryBytes + (mib as number) * MiB)), [ctx.memoryBytes]
              )
            }
          )
          const peaks: Array<number> = []
          const sample = Effect.tap(runtime.stats, (s) => Effect.sync(() => peaks.push(s.memory.used)))
          const admitted: Array<string> = []
          const refused: Array<string> = []
          for (let i = 0; i < AGENTS; i++) {
            const r = yield* Effect.result(
              runtime.spawnAgent(agentId(`leaky-${i}`), m, config(LIMIT, { memoryReservation: MiB }))
            )
            if (r._tag === "Success") admitted.push(r.success.agentId)
            else refused.push(r.failure._tag)
            yield* sample
          }
          // every admitted agent leaks concurrently, a MiB at a time, until its cap
          for (let step = 0; step < LIMIT / MiB; step++) {
            yield* Effect.forEach(admitted, (id) => runtime.invoke(agentId(id), "leak", [1]), {
              concurrency: "unbounded"
            })
            yield* sample
          }
          const stats = yield* runtime.stats
          const peak = Math.max(...peaks)
          if (overcommit) {
            expect(admitted).toHaveLength(AGENTS)
            expect(stats.memory.reserved).toBe(AGENTS * MiB)
            expect(peak).toBe(AGENTS * LIMIT)
            expect(peak).toBeGreaterThan(POOL) // usage escaped the reservations: the overshoot is real
          } else {
            expect(admitted).toHaveLength(Math.floor(POOL / LIMIT))
            expect(refused.every((tag) => tag === "InsufficientMemory")).toBe(true)
            expect(stats.memory.reserved).toBe(admitted.length * LIMIT) // the reservation is ignored: admitted at the limit
            for (const used of peaks) expect(used).toBeLessThanOrEqual(POOL)
            expect(peak).toBe(admitted.length * LIMIT)
          }
          for (const id of admitted) yield* runtime.evictAgent(agentId(id), "Manual")
          expect((yield* runtime.stats).memory).toMatchObject({ used: 0, reserved: 0 })
        }).pipe(Effect.provide(runtimeLayer(t, { pool: { totalMemory: POOL, overcommit }, autoPressure: false })))
      }
    )
  }
})
