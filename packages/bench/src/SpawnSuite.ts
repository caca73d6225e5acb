/**
 * Suite 2, spawn: agents per second from a cached module with 1 page and
 * 16 pages of memory through `AgentRuntime.spawnAgent` (claim + reserve +
 * imports + instantiate + start), baseline `new WebAssembly.Instance` of the
 * same compiled module in a loop; and the time to spawn 593 agents. Agents
 * a sample spawned are evicted outside the timed window.
 *
 * @since 0.1.0
 */
import { agentId, type AgentId, makeMetadata } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { makeRuntime, MiB } from "./BenchRuntime.js"
import { consume, measure, type Row, type RunOptions, size, type SuiteResult } from "./Measure.js"
import { assemble, callsWat } from "./Modules.js"

const SUITE = "spawn"

/** The swarm's size (DESIGN.md apps/swarm): the "time to spawn 593 agents". */
export const SWARM = 593

export const spawnSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const swarm = size(options, SWARM, SWARM, 10)
  const batchSize = size(options, 100, 100, 5)
  const bench = await makeRuntime()
  const { runtime, run } = bench
  let seq = 0
  const spawnBatch = async (moduleId: Parameters<typeof runtime.spawnAgent>[1], n: number): Promise<number> => {
    const ids: Array<AgentId> = []
    for (let i = 0; i < n; i++) ids.push(agentId(`spawn-${++seq}`))
    const start = performance.now()
    await run(
      Effect.gen(function* () {
        for (const id of ids) yield* runtime.spawnAgent(id, moduleId, { memoryLimit: MiB })
      })
    )
    const elapsed = performance.now() - start
    await run(Effect.forEach(ids, (id) => runtime.evictAgent(id, "Manual"), { discard: true }))
    return elapsed
  }
  try {
    for (const pages of [1, 16]) {
      const bytes = await assemble(callsWat(pages))
      const compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
      const moduleId = await run(runtime.loadModule(bytes, makeMetadata({ name: `spawn-${pages}p`, version: "1.0.0" })))
      const raw = `raw new WebAssembly.Instance (${pages} page${pages > 1 ? "s" : ""})`
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: raw,
            batch: batchSize,
            run: (batch) => {
              const keep: Array<WebAssembly.Instance> = []
              const start = performance.now()
              for (let i = 0; i < batch; i++) keep.push(new WebAssembly.Instance(compiled, {}))
              const elapsed = performance.now() - start
              consume(keep)
              return elapsed
            }
          },
          options
        )
      )
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `spawnAgent (${pages} page${pages > 1 ? "s" : ""})`,
            baseline: raw,
            batch: batchSize,
            target: { text: "rate ≥ 50% of raw (ratio ≤ 2)", met: (r) => r <= 2 },
            run: (batch) => spawnBatch(moduleId, batch)
          },
          options
        )
      )
      if (pages === 1) {
        const rawSwarm = `raw ${swarm} × new WebAssembly.Instance`
        rows.push(
          await measure(
            {
              suite: SUITE,
              name: rawSwarm,
              run: () => {
                const keep: Array<WebAssembly.Instance> = []
                const start = performance.now()
                for (let i = 0; i < swarm; i++) keep.push(new WebAssembly.Instance(compiled, {}))
                const elapsed = performance.now() - start
                consume(keep)
                return elapsed
              }
            },
            options
          )
        )
        rows.push(
          await measure(
            {
              suite: SUITE,
              name: `spawn ${swarm} agents (1 page)`,
              baseline: rawSwarm,
              run: () => spawnBatch(moduleId, swarm)
            },
            options
          )
        )
      }
    }
  } finally {
    await bench.dispose()
  }
  return { suite: SUITE, rows, notes: ["agents per second = 1000 / median (ms per spawn)"] }
}
