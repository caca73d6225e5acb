/**
 * Suite 5, peer: the same no-op and 4 KiB echo calls through
 * `@extism/extism` (the peer users would otherwise pick), in-thread and
 * with `runInWorker: true`, with our runtime measured against them in the
 * same run: the Effect `invoke` (in-thread) and, when it exists, the worker
 * engine (against `runInWorker`). Ratios below 1 mean we are faster.
 *
 * @since 0.1.0
 */
import { agentId, makeMetadata } from "@agent-runtime/domain"
import createPlugin from "@extism/extism"
import * as Effect from "effect/Effect"
import { makeRuntime, MiB } from "./BenchRuntime.js"
import { ExtismEcho } from "./ExtismEcho.js"
import { extismPlugin } from "./ExtismPlugin.js"
import { consume, measure, type Row, type RunOptions, type SuiteResult, size } from "./Measure.js"
import { assemble, callsWat } from "./Modules.js"
import { findNodeEngine } from "./WorkerSuite.js"

const SUITE = "peer"
const ECHO_BYTES = 4096
export { ExtismEcho }

export const peerSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const batch = size(options, 2_000, 200)
  const workerBatch = size(options, 1_000, 100)
  const input = new Uint8Array(ECHO_BYTES).map((_, i) => (i * 7) & 0xff)
  const wasm = await extismPlugin()
  const timed = async (b: number, call: () => Promise<unknown>) => {
    const start = performance.now()
    for (let i = 0; i < b; i++) consume(await call())
    return performance.now() - start
  }
  // every contender's call path is warmed (JIT, worker spin budgets) before its rows, the same way for each:
  // unwarmed, the first calls through a worker cost ~1 ms each on their own
  const warmCalls = size(options, 3_000, 1_000, 10)
  const warm = (call: () => Promise<unknown>) => timed(warmCalls, call)
  const names = {
    noop: "Extism in-thread: noop",
    echo: `Extism in-thread: echo ${ECHO_BYTES / 1024} KiB`,
    wNoop: "Extism runInWorker: noop",
    wEcho: `Extism runInWorker: echo ${ECHO_BYTES / 1024} KiB`
  }
  for (const runInWorker of [false, true]) {
    const plugin = await createPlugin({ wasm: [{ data: wasm }] }, { useWasi: false, runInWorker })
    try {
      const echoed = await plugin.call("echo", input)
      ExtismEcho.check(input, echoed?.bytes())
      await warm(() => plugin.call("noop"))
      await plugin.reset() // Extism keeps each call's blocks until reset (see the echo row)
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: runInWorker ? names.wNoop : names.noop,
            batch: runInWorker ? workerBatch : batch,
            run: (b) => timed(b, () => plugin.call("noop"))
          },
          options
        )
      )
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: runInWorker ? names.wEcho : names.echo,
            batch: runInWorker ? workerBatch : batch,
            run: async (b) => {
              const elapsed = await timed(b, () => plugin.call("echo", input))
              // Extism 1.0.3 keeps every call's input/output block until reset(); past 32 768 blocks the
              // block index overflows its i64 address and output_set throws: reset outside the window.
              await plugin.reset()
              return elapsed
            }
          },
          options
        )
      )
    } finally {
      await plugin.close()
    }
  }

  const bytes = await assemble(callsWat(1))
  const ours = async (
    label: string,
    engineLayer: Parameters<typeof makeRuntime>[1],
    baselines: { noop: string; echo: string },
    worker: boolean
  ) => {
    const bench = await makeRuntime(undefined, engineLayer)
    const { runtime, run } = bench
    try {
      const moduleId = await run(runtime.loadModule(bytes, makeMetadata({ name: "peer-calls", version: "1.0.0" })))
      const id = agentId("peer")
      await run(runtime.spawnAgent(id, moduleId, { memoryLimit: MiB }))
      const echo = Effect.gen(function* () {
        yield* runtime.writeMemory(id, 0, input)
        yield* runtime.invoke(id, "last_byte", [0, ECHO_BYTES])
        return yield* runtime.readMemory(id, 0, ECHO_BYTES)
      })
      ExtismEcho.check(input, await run(echo))
      await warm(() => run(runtime.invoke(id, "noop", [])))
      await warm(() => run(echo))
      const b = worker ? workerBatch : batch
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `${label} invoke: noop`,
            baseline: baselines.noop,
            batch: b,
            ...(worker
              ? {
                  target: {
                    text: "hot: ≥ 10× faster than Extism runInWorker (ratio ≤ 0.1)",
                    met: (r: number) => r <= 0.1
                  }
                }
              : {}),
            run: (n) => timed(n, () => run(runtime.invoke(id, "noop", [])))
          },
          options
        )
      )
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: `${label}: write + invoke + read ${ECHO_BYTES / 1024} KiB`,
            baseline: baselines.echo,
            batch: b,
            run: (n) => timed(n, () => run(echo))
          },
          options
        )
      )
    } finally {
      await bench.dispose()
    }
  }
  await ours("Effect runtime (native)", undefined, { noop: names.noop, echo: names.echo }, false)
  const engine = await findNodeEngine()
  if ("missing" in engine) notes.push(`worker engine vs Extism runInWorker not yet measurable: ${engine.missing}`)
  else await ours("Effect runtime (engine-node)", engine.layer, { noop: names.wNoop, echo: names.wEcho }, true)
  notes.push(
    "our rows here run each call as its own runPromise (like a caller awaiting one call), unlike the invoke suite's batched Effect loop"
  )
  return { suite: SUITE, rows, notes }
}
