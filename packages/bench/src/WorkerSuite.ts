/**
 * Suite 4, worker round trip: invoke latency of an idle agent (the call
 * comes after a pause) and a hot agent (calls back to back) through the
 * worker engine (`@agent-runtime/engine-node`, when it exists), against two
 * raw baselines measured in the same run on a plain `worker_threads`
 * Worker: a `postMessage` round trip and a `SharedArrayBuffer` + `Atomics`
 * round trip (the worker sleeps in `Atomics.wait`, the caller waits for the
 * reply the same way).
 *
 * @since 0.1.0
 */
import { agentId, makeMetadata } from "@agent-runtime/domain"
import type * as Layer from "effect/Layer"
import { Worker } from "node:worker_threads"
import { makeRuntime, MiB } from "./BenchRuntime.js"
import { consume, measure, type Row, type RunOptions, type SuiteResult, size } from "./Measure.js"
import { assemble, callsWat } from "./Modules.js"

const SUITE = "worker"
/** Pause before an "idle" call, ms: long enough for a spinning waiter to fall asleep. */
export const IDLE_PAUSE_MS = 20

/** Echoes every message back on its port. */
const messengerSource = `
const { parentPort } = require("node:worker_threads")
parentPort.on("message", (m) => parentPort.postMessage(m))
`

/** Sleeps in Atomics.wait on slot 0; answers request n by storing n in slot 1 and notifying; -1 stops it. */
const atomicSource = `
const { workerData } = require("node:worker_threads")
const i32 = new Int32Array(workerData)
let seen = 0
for (;;) {
  Atomics.wait(i32, 0, seen)
  seen = Atomics.load(i32, 0)
  if (seen < 0) break
  Atomics.store(i32, 1, seen)
  Atomics.notify(i32, 1)
}
`

/** Raw workers answering both round trips: messages on a port, `Atomics` on a shared buffer. */
const startRawWorkers = () => {
  const sab = new SharedArrayBuffer(8)
  const i32 = new Int32Array(sab)
  const messenger = new Worker(messengerSource, { eval: true })
  const atomic = new Worker(atomicSource, { eval: true, workerData: sab })
  let seq = 0
  const atomicsRoundTrip = (): void => {
    const n = ++seq
    Atomics.store(i32, 0, n)
    Atomics.notify(i32, 0)
    while (Atomics.load(i32, 1) !== n) Atomics.wait(i32, 1, n - 1, 1000)
  }
  const messageRoundTrip = (): Promise<void> =>
    new Promise((resolve) => {
      messenger.once("message", () => resolve())
      messenger.postMessage(1)
    })
  const stop = async () => {
    Atomics.store(i32, 0, -1)
    Atomics.notify(i32, 0)
    await Promise.all([messenger.terminate(), atomic.terminate()])
  }
  return { atomicsRoundTrip, messageRoundTrip, stop }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** The worker engine's layer, when `@agent-runtime/engine-node` exists and exports one. */
export const findNodeEngine = async (): Promise<{ layer: Layer.Layer<any> } | { missing: string }> => {
  const name = "@agent-runtime/engine-node"
  let mod: Record<string, unknown>
  try {
    mod = (await import(name)) as Record<string, unknown>
  } catch (e) {
    return { missing: `${name} cannot be imported (${e instanceof Error ? e.message.split("\n")[0] : String(e)})` }
  }
  const ns = (mod.NodeEngine ?? mod) as Record<string, unknown>
  const layer = ns.layer
  if (layer !== undefined && typeof layer === "object") return { layer: layer as Layer.Layer<any> }
  if (typeof layer === "function") return { layer: (layer as (o?: unknown) => Layer.Layer<any>)() }
  return { missing: `${name} exports no NodeEngine.layer / layer` }
}

export const workerSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const rows: Array<Row> = []
  const notes: Array<string> = []
  const raw = startRawWorkers()
  const hotBatch = size(options, 2_000, 200)
  const idleSamples = { minSamples: size(options, 30, 5), timeMs: size(options, 1_000, 100) }
  try {
    const rawAtomicsHot = "raw SAB+Atomics round trip (hot)"
    const rawAtomicsIdle = "raw SAB+Atomics round trip (idle)"
    rows.push(await measure({ suite: SUITE, name: "raw postMessage round trip (hot)", batch: hotBatch, run: async (b) => {
      const start = performance.now()
      for (let i = 0; i < b; i++) await raw.messageRoundTrip()
      return performance.now() - start
    } }, options))
    rows.push(await measure({ suite: SUITE, name: rawAtomicsHot, batch: hotBatch, run: (b) => {
      const start = performance.now()
      for (let i = 0; i < b; i++) raw.atomicsRoundTrip()
      return performance.now() - start
    } }, options))
    rows.push(await measure({ suite: SUITE, name: rawAtomicsIdle, ...idleSamples, run: async () => {
      await sleep(IDLE_PAUSE_MS)
      const start = performance.now()
      raw.atomicsRoundTrip()
      return performance.now() - start
    } }, options))
    const engine = await findNodeEngine()
    if ("missing" in engine) {
      notes.push(`worker engine not yet measurable: ${engine.missing}`)
    } else {
      const bench = await makeRuntime(undefined, engine.layer)
      const { runtime, run } = bench
      try {
        const bytes = await assemble(callsWat(1))
        const moduleId = await run(runtime.loadModule(bytes, makeMetadata({ name: "worker-calls", version: "1.0.0" })))
        const id = agentId("worker-noop")
        await run(runtime.spawnAgent(id, moduleId, { memoryLimit: MiB }))
        rows.push(await measure({
          suite: SUITE,
          name: "engine-node invoke no-op (idle agent)",
          baseline: rawAtomicsIdle,
          ...idleSamples,
          target: { text: "≤ 1.3× raw Atomics round trip", met: (r) => r <= 1.3 },
          run: async () => {
            await sleep(IDLE_PAUSE_MS)
            const start = performance.now()
            consume(await run(runtime.invoke(id, "noop", [])))
            return performance.now() - start
          }
        }, options))
        rows.push(await measure({
          suite: SUITE,
          name: "engine-node invoke no-op (hot agent)",
          baseline: rawAtomicsHot,
          batch: hotBatch,
          note: "peer target (≥ 5× faster than Extism runInWorker) in the peer suite",
          run: async (b) => {
            const start = performance.now()
            for (let i = 0; i < b; i++) consume(await run(runtime.invoke(id, "noop", [])))
            return performance.now() - start
          }
        }, options))
      } finally {
        await bench.dispose()
      }
    }
  } finally {
    await raw.stop()
  }
  return { suite: SUITE, rows, notes }
}
