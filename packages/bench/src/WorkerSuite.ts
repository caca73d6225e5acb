/**
 * Suite 4, worker round trip: invoke latency of an idle agent (the call
 * comes after a pause) and a hot agent (calls back to back) through the
 * worker engine (`@agent-runtime/engine-node`, when it exists), against raw
 * baselines measured in the same run on plain `worker_threads` Workers: a
 * `postMessage` round trip, a `SharedArrayBuffer` + `Atomics` round trip
 * (the worker sleeps in `Atomics.wait`, the caller waits for the reply the
 * same way) hot and idle, and the limit — a *spinning* SAB round trip (both
 * threads poll the buffer with `Atomics.load`, nobody sleeps: no futex
 * wake-up on either side). Plus the idle CPU of a runtime with warm workers
 * and no calls (`process.cpuUsage`, all threads of the process, as % of one
 * core): the adaptive channel must not spin while nothing is called.
 *
 * @since 0.1.0
 */
import { agentId, makeMetadata } from "@agent-runtime/domain"
import type * as Layer from "effect/Layer"
import { Worker } from "node:worker_threads"
import { makeRuntime, MiB } from "./BenchRuntime.js"
import { consume, measure, type Row, type RunOptions, type SuiteResult, size, valueRow } from "./Measure.js"
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

/** Busy-polls slot 0; answers request n by storing n in slot 1 (no notify: the caller polls too); -1 stops it. */
const spinningSource = `
const { workerData } = require("node:worker_threads")
const i32 = new Int32Array(workerData)
let seen = 0
for (;;) {
  let n = Atomics.load(i32, 0)
  while (n === seen) n = Atomics.load(i32, 0)
  seen = n
  if (seen < 0) break
  Atomics.store(i32, 1, seen)
}
`

/**
 * The limit: a round trip where both sides spin. The worker burns a core
 * while it runs, so it runs only for its own row (`stop` ends it).
 */
const startSpinningWorker = () => {
  const i32 = new Int32Array(new SharedArrayBuffer(8))
  const worker = new Worker(spinningSource, { eval: true, workerData: i32.buffer })
  let seq = 0
  const roundTrip = (): void => {
    const n = ++seq
    Atomics.store(i32, 0, n)
    const since = performance.now()
    for (let i = 1; Atomics.load(i32, 1) !== n; i++) {
      if ((i & 0xffff) === 0 && performance.now() - since > 10_000)
        throw new Error("the spinning worker does not answer")
    }
  }
  const stop = async () => {
    Atomics.store(i32, 0, -1)
    await worker.terminate()
  }
  return { roundTrip, stop }
}

/** Process CPU time (all threads: host and workers) over `ms` of wall time, as % of one core. */
const idleCpuPercent = async (ms: number): Promise<number> => {
  const before = process.cpuUsage()
  const start = performance.now()
  await sleep(ms)
  const used = process.cpuUsage(before)
  return ((used.user + used.system) / 1000 / (performance.now() - start)) * 100
}

/**
 * Idle CPU as consecutive windows of `windowMs`: the median is the steady
 * state; the largest window shows one-off work — after a burst of calls
 * V8's memory reducer runs a few full GCs (13–35 ms each) in every worker
 * isolate that allocated, which alone makes a 250 ms window read ≈ 10 %.
 */
const idleCpuWindows = async (windows: number, windowMs: number): Promise<ReadonlyArray<number>> => {
  const out: Array<number> = []
  for (let i = 0; i < windows; i++) out.push(await idleCpuPercent(windowMs))
  return out
}

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

const round2 = (x: number): number => Math.round(x * 100) / 100

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
    // a literal specifier, so that a bundle of the bench (bin/bundled.mjs) includes the engine
    mod = (await import("@agent-runtime/engine-node")) as Record<string, unknown>
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
    const rawSpinning = "raw SAB round trip, both sides spinning (the limit)"
    rows.push(
      await measure(
        {
          suite: SUITE,
          name: "raw postMessage round trip (hot)",
          batch: hotBatch,
          run: async (b) => {
            const start = performance.now()
            for (let i = 0; i < b; i++) await raw.messageRoundTrip()
            return performance.now() - start
          }
        },
        options
      )
    )
    rows.push(
      await measure(
        {
          suite: SUITE,
          name: rawAtomicsHot,
          batch: hotBatch,
          run: (b) => {
            const start = performance.now()
            for (let i = 0; i < b; i++) raw.atomicsRoundTrip()
            return performance.now() - start
          }
        },
        options
      )
    )
    rows.push(
      await measure(
        {
          suite: SUITE,
          name: rawAtomicsIdle,
          ...idleSamples,
          run: async () => {
            await sleep(IDLE_PAUSE_MS)
            const start = performance.now()
            raw.atomicsRoundTrip()
            return performance.now() - start
          }
        },
        options
      )
    )
    const spinning = startSpinningWorker()
    try {
      spinning.roundTrip() // waits for the worker to start
      rows.push(
        await measure(
          {
            suite: SUITE,
            name: rawSpinning,
            batch: hotBatch * 10,
            run: (b) => {
              const start = performance.now()
              for (let i = 0; i < b; i++) spinning.roundTrip()
              return performance.now() - start
            }
          },
          options
        )
      )
    } finally {
      await spinning.stop()
    }
    // the same windows before any runtime exists: what this process costs idle on its own
    const beforeRuntime = await idleCpuWindows(size(options, 4, 2, 1), size(options, 250, 250, 100))
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
        // warm the host's call path (JIT) first: "idle" is an agent not called for a while, not cold code —
        // unwarmed, the first calls through Effect + domain + pool + codec cost ~1 ms each on their own
        for (let i = 0; i < size(options, 5_000, 2_000, 10); i++) consume(await run(runtime.invoke(id, "noop", [])))
        rows.push(
          await measure(
            {
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
            },
            options
          )
        )
        const hot = {
          suite: SUITE,
          batch: hotBatch,
          run: async (b: number) => {
            const start = performance.now()
            for (let i = 0; i < b; i++) consume(await run(runtime.invoke(id, "noop", [])))
            return performance.now() - start
          }
        }
        rows.push(
          await measure(
            {
              ...hot,
              name: "engine-node invoke no-op (hot agent)",
              baseline: rawSpinning,
              target: { text: "≤ 5× raw spinning SAB round trip", met: (r) => r <= 5 },
              note: "peer target (≥ 10× faster than Extism runInWorker) in the peer suite"
            },
            options
          )
        )
        rows.push(
          await measure(
            {
              ...hot,
              name: "engine-node invoke no-op (hot agent) vs sleeping raw",
              baseline: rawAtomicsHot,
              note: "the same calls against the raw round trip that sleeps in Atomics.wait on both sides"
            },
            options
          )
        )
        // warm workers: one agent per worker of the pool, each called hot, then nothing for a while
        const warm = Array.from({ length: 4 }, (_, i) => agentId(`worker-warm-${i}`))
        for (const w of warm) await run(runtime.spawnAgent(w, moduleId, { memoryLimit: MiB }))
        for (let i = 0; i < 200; i++) for (const w of [id, ...warm]) consume(await run(runtime.invoke(w, "noop", [])))
        const windows = size(options, 8, 4, 2)
        const windowMs = size(options, 250, 250, 100)
        await sleep(5) // the workers' last spins end within WORKER_SPIN_MAX_MS
        const idle = await idleCpuWindows(windows, windowMs)
        rows.push(
          valueRow({
            suite: SUITE,
            name: `idle CPU, % of one core (runtime with ${warm.length + 1} warm agents on its workers, no calls; median of ${windows} × ${windowMs} ms)`,
            value: round2(median(idle)),
            max: round2(Math.max(...idle)),
            samples: idle.length,
            unit: "count",
            target: { text: "≈ 0 % of a core (≤ 1 %)", met: (_r, m) => m <= 1 },
            note:
              "process.cpuUsage: host and worker threads together, consecutive windows right after the calls; " +
              `p99 column = the largest window; windows: ${idle.map((x) => x.toFixed(2)).join(", ")}; ` +
              `before the runtime existed (this process, raw workers idle): ${beforeRuntime.map((x) => x.toFixed(2)).join(", ")}`
          })
        )
      } finally {
        await bench.dispose()
      }
    }
  } finally {
    await raw.stop()
  }
  return { suite: SUITE, rows, notes }
}
