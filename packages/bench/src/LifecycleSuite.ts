/**
 * Suite 6, lifecycle, each against the raw work it cannot avoid, measured in
 * the same run:
 * - health-check cycle over 593 agents (`runtime.checkHealth`: `_health_check`
 *   of every agent, the rules, the event) — baseline: calling
 *   `_health_check` on 593 raw instances;
 * - memory-pressure pass over 10 000 agents of 1 MiB limit with
 *   over-committed 64 KiB reservations on a pool sized so the agents fill
 *   90 % of it (`runtime.handleMemoryPressure` evicts down below the warning
 *   threshold) — baseline: ordering 10 000 records by (least recently
 *   active, largest) and dropping the same number from a `Map`;
 * - snapshot and restore of a 1 MiB and a 16 MiB agent whose every page is
 *   non-zero (`runtime.snapshot` / `runtime.restore`, in-memory repository)
 *   — baseline: copying the memory out (`slice`) / back in (`set`);
 * - passivate + rehydrate (settings `gc.passivateIdleMs`, `runtime.runGc`,
 *   then `invoke`) — baseline: slice of the memory + `new
 *   WebAssembly.Instance` + `set` of the memory.
 * Agents spawned for a sample are replaced outside the timed window.
 *
 * @since 0.1.0
 */
import { agentId, type AgentId, makeMetadata, type ModuleId } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { benchSettings, makeRuntime, MiB, PAGE } from "./BenchRuntime.js"
import { consume, measure, type Row, type RunOptions, size, type SuiteResult, timeSync } from "./Measure.js"
import { assemble, callsWat, stateWat } from "./Modules.js"
import { SWARM } from "./SpawnSuite.js"

const SUITE = "lifecycle"
export const PRESSURE_AGENTS = 10_000

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

export const lifecycleSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const swarm = size(options, SWARM, SWARM, 10)
  const pressureAgents = size(options, PRESSURE_AGENTS, PRESSURE_AGENTS, 200)
  const heavy = { minSamples: size(options, 10, 3) }
  const callsBytes = await assemble(callsWat(1))
  const callsModule = await WebAssembly.compile(callsBytes as Uint8Array<ArrayBuffer>)

  // -- health ------------------------------------------------------------------
  {
    const bench = await makeRuntime()
    const { runtime, run } = bench
    try {
      const moduleId = await run(runtime.loadModule(callsBytes, makeMetadata({ name: "health", version: "1.0.0" })))
      await run(
        Effect.forEach(
          Array.from({ length: swarm }, (_, i) => agentId(`h${i}`)),
          (id) => runtime.spawnAgent(id, moduleId, { memoryLimit: MiB }),
          { discard: true }
        )
      )
      const raws = Array.from(
        { length: swarm },
        () => new WebAssembly.Instance(callsModule, {}).exports._health_check as () => number
      )
      const raw = `raw _health_check × ${swarm}`
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: raw,
            run: () =>
              timeSync(1, () => {
                for (const f of raws) consume(f())
              })
          },
          options
        )
      )
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `checkHealth over ${swarm} agents`,
            baseline: raw,
            run: async () => {
              const start = performance.now()
              const checks = await run(runtime.checkHealth)
              const elapsed = performance.now() - start
              if (checks.length !== swarm)
                throw new Error(`checkHealth checked ${checks.length} agents, expected ${swarm}`)
              return elapsed
            }
          },
          options
        )
      )
    } finally {
      await bench.dispose()
    }
  }

  // -- memory pressure ---------------------------------------------------------
  {
    const reservation = PAGE
    const totalMemory = Math.ceil((pressureAgents * reservation) / 0.9)
    const bench = await makeRuntime(benchSettings({ pool: { totalMemory, overcommit: true }, autoPressure: false })) // 64 KiB reservations: over-committed explicitly
    const { runtime, run } = bench
    try {
      const moduleId = await run(runtime.loadModule(callsBytes, makeMetadata({ name: "pressure", version: "1.0.0" })))
      let seq = 0
      const live = new Set<AgentId>()
      const refill = () =>
        run(
          Effect.gen(function* () {
            while (live.size < pressureAgents) {
              const id = agentId(`p${++seq}`)
              yield* runtime.spawnAgent(id, moduleId, { memoryLimit: MiB, memoryReservation: reservation })
              live.add(id)
            }
          })
        )
      const raw = `raw order + drop over ${pressureAgents} records`
      let evictedLast = 0
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `handleMemoryPressure over ${pressureAgents} agents`,
            baseline: raw,
            ...heavy,
            run: async () => {
              await refill()
              const start = performance.now()
              const evicted = await run(runtime.handleMemoryPressure)
              const elapsed = performance.now() - start
              if (evicted.length === 0)
                throw new Error("the pressure pass evicted nobody: the pool is not under pressure")
              for (const id of evicted) live.delete(id)
              evictedLast = evicted.length
              return elapsed
            }
          },
          options
        )
      )
      const records = Array.from({ length: pressureAgents }, (_, i) => ({
        id: `r${i}`,
        lastActivity: (i * 7919) % pressureAgents,
        bytes: PAGE
      }))
      rows.unshift(
        await measure(
          {
            suite: SUITE,
            name: raw,
            ...heavy,
            run: () => {
              const map = new Map(records.map((r) => [r.id, r]))
              const start = performance.now()
              const order = [...map.values()].sort((a, b) => a.lastActivity - b.lastActivity || b.bytes - a.bytes)
              for (let i = 0; i < evictedLast; i++) map.delete(order[i]!.id)
              const elapsed = performance.now() - start
              consume(map)
              return elapsed
            }
          },
          options
        )
      )
      notes.push(
        `pressure pass: pool ${(totalMemory / MiB).toFixed(0)} MiB, ${pressureAgents} agents × 64 KiB reserved (90 %), each pass evicted ${evictedLast} agents`
      )
    } finally {
      await bench.dispose()
    }
  }

  // -- snapshot / restore --------------------------------------------------------
  {
    const bench = await makeRuntime()
    const { runtime, run } = bench
    try {
      for (const mib of [1, 16]) {
        const pages = (mib * MiB) / PAGE
        const bytes = await assemble(stateWat(pages))
        const moduleId = await run(runtime.loadModule(bytes, makeMetadata({ name: `state-${mib}`, version: "1.0.0" })))
        const id = agentId(`state-${mib}`)
        await run(runtime.spawnAgent(id, moduleId, { memoryLimit: mib * MiB }))
        await run(runtime.invoke(id, "fill", [12345]))
        const instance = new WebAssembly.Instance(await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>), {})
        ;(instance.exports.fill as (s: number) => void)(12345)
        const memory = instance.exports.memory as WebAssembly.Memory
        let copy = new Uint8Array(memory.buffer).slice()
        const rawSnap = `raw copy out ${mib} MiB (slice)`
        const rawRestore = `raw copy in ${mib} MiB (set)`
        rows.push(
          await measure(
            {
              suite: SUITE,
              name: rawSnap,
              ...heavy,
              run: () =>
                timeSync(1, () => {
                  copy = new Uint8Array(memory.buffer).slice()
                })
            },
            options
          )
        )
        rows.push(
          await measure(
            {
              suite: SUITE,
              name: `snapshot ${mib} MiB agent`,
              baseline: rawSnap,
              ...heavy,
              run: async () => {
                const start = performance.now()
                const snap = await run(runtime.snapshot(id))
                const elapsed = performance.now() - start
                if (snap.state.pages.length !== pages)
                  throw new Error(`snapshot saved ${snap.state.pages.length} pages, expected ${pages}`)
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
              name: rawRestore,
              ...heavy,
              run: () => timeSync(1, () => new Uint8Array(memory.buffer).set(copy))
            },
            options
          )
        )
        rows.push(
          await measure(
            {
              suite: SUITE,
              name: `restore ${mib} MiB agent`,
              baseline: rawRestore,
              ...heavy,
              run: async () => {
                const start = performance.now()
                await run(runtime.restore(id))
                return performance.now() - start
              }
            },
            options
          )
        )
        await run(runtime.evictAgent(id, "Manual"))
      }
    } finally {
      await bench.dispose()
    }
  }

  // -- passivate + rehydrate ------------------------------------------------------
  {
    const bench = await makeRuntime(benchSettings({ gc: { passivateIdleMs: 1 } }))
    const { runtime, run } = bench
    try {
      const bytes = await assemble(stateWat(16))
      const compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
      const moduleId: ModuleId = await run(
        runtime.loadModule(bytes, makeMetadata({ name: "passivate", version: "1.0.0" }))
      )
      const id = agentId("passivate")
      await run(runtime.spawnAgent(id, moduleId, { memoryLimit: MiB }))
      await run(runtime.invoke(id, "fill", [7]))
      let instance = new WebAssembly.Instance(compiled, {})
      ;(instance.exports.fill as (s: number) => void)(7)
      const raw = "raw slice + new Instance + set (1 MiB)"
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: raw,
            ...heavy,
            run: () =>
              timeSync(1, () => {
                const saved = new Uint8Array((instance.exports.memory as WebAssembly.Memory).buffer).slice()
                instance = new WebAssembly.Instance(compiled, {})
                new Uint8Array((instance.exports.memory as WebAssembly.Memory).buffer).set(saved)
              })
          },
          options
        )
      )
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: "passivate: runGc with 1 idle 1 MiB agent",
            baseline: raw,
            ...heavy,
            run: async () => {
              await sleep(3)
              const start = performance.now()
              const gc = await run(runtime.runGc)
              const elapsed = performance.now() - start
              if (gc.compactedInstances !== 1)
                throw new Error(`runGc passivated ${gc.compactedInstances} agents, expected 1`)
              consume(await run(runtime.invoke(id, "calls", []))) // rehydrates, outside the window
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
            name: "rehydrate: first invoke of a passivated 1 MiB agent",
            baseline: raw,
            ...heavy,
            run: async () => {
              await sleep(3)
              const gc = await run(runtime.runGc)
              if (gc.compactedInstances !== 1)
                throw new Error(`runGc passivated ${gc.compactedInstances} agents, expected 1`)
              const start = performance.now()
              consume(await run(runtime.invoke(id, "calls", [])))
              return performance.now() - start
            }
          },
          options
        )
      )
    } finally {
      await bench.dispose()
    }
  }
  return { suite: SUITE, rows, notes }
}
