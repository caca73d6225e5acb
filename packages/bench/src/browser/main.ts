/**
 * The browser suite's page (served by Vite with COOP/COEP, so it is
 * cross-origin isolated): measures, in Chromium and in the same run, the
 * raw baselines and `@agent-runtime/engine-browser` through the runtime.
 * The Node driver (`BrowserSuite.ts`, playwright-core) calls
 * `window.agentRuntimeBench(input)` and gets the raw samples back.
 *
 * Rows (every sample is the mean of `batch` operations, ms per operation):
 * - raw direct export call (no-op, `add`) on an in-page instance;
 * - `runtime.invoke` on the browser engine in mode `"inPage"` (its fibers yield through
 *   `BrowserScheduler`, as every runtime here), and its no-op once more on Effect's default
 *   scheduler (`setTimeout(0)` yields, clamped to 4 ms by the page);
 * - a raw `postMessage` round trip to a plain Web Worker, and a raw
 *   `SharedArrayBuffer` + `Atomics` round trip (the worker sleeps in
 *   `Atomics.wait`; the page, which may not block, waits with
 *   `Atomics.waitAsync` — the same primitives as the engine's `"shared"`
 *   channel), hot (back to back) and idle (after a pause);
 * - `runtime.invoke` on the browser engine in mode `"workers"` with
 *   channel `"shared"`, hot and idle.
 *
 * @since 0.1.0
 */
import {
  AgentRuntime,
  type AgentRuntimeShape,
  AgentRuntimes,
  agentId,
  makeMetadata,
  type WasmValue
} from "@agent-runtime/domain"
import { BrowserEngine, BrowserScheduler } from "@agent-runtime/engine-browser"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"

/** What the driver passes: the module bytes and the counts of the mode. */
export interface BrowserBenchInput {
  /** A module exporting `noop: () -> ()` (bytes as numbers: structured through `page.evaluate`). */
  readonly noopModule: ReadonlyArray<number>
  /** The signed `no-memory` agent, exporting `add: (i32, i32) -> i32`. */
  readonly addModule: ReadonlyArray<number>
  /** Samples per hot row. */
  readonly samples: number
  /** Samples per idle row. */
  readonly idleSamples: number
  /** Pause before an idle call, ms. */
  readonly idlePauseMs: number
  /** Operations per sample: direct calls, in-page invokes, round trips / worker invokes. */
  readonly rawBatch: number
  readonly invokeBatch: number
  readonly roundTripBatch: number
  /** Which rows to run (default: all): `"inPage"` — direct calls and the in-page engine; `"workers"` — round trips and the worker engine. */
  readonly groups?: ReadonlyArray<"inPage" | "workers"> | undefined
}

/** One measured row: per-operation samples in ms. */
export interface BrowserBenchRow {
  readonly name: string
  readonly batch: number
  readonly samples: ReadonlyArray<number>
  readonly baseline?: string | undefined
  /** Which target of issue 7 applies (the driver attaches it). */
  readonly target?: "invoke-1us" | "worker-idle" | "worker-hot" | undefined
}

export interface BrowserBenchOutput {
  readonly userAgent: string
  readonly crossOriginIsolated: boolean
  readonly rows: ReadonlyArray<BrowserBenchRow>
  readonly notes: ReadonlyArray<string>
}

const MiB = 1024 * 1024
let sink: unknown
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Runs `body(batch)` (which returns elapsed ms) once to warm up, then `samples` times. */
const sample = async (
  samples: number,
  batch: number,
  body: (batch: number) => number | Promise<number>
): Promise<Array<number>> => {
  await body(batch)
  const out: Array<number> = []
  for (let i = 0; i < samples; i++) out.push((await body(batch)) / batch)
  return out
}

const timeSync = (batch: number, f: () => void): number => {
  const start = performance.now()
  for (let i = 0; i < batch; i++) f()
  return performance.now() - start
}

type WaitAsync = (i32: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string }

/** Two plain workers of `raw-worker.ts`: one echoing messages, one answering `Atomics` requests. */
const startRawWorkers = async () => {
  const url = new URL("./raw-worker.ts", import.meta.url)
  const messenger = new Worker(url, { type: "module" })
  const atomic = new Worker(url, { type: "module" })
  const sab = new SharedArrayBuffer(8)
  const i32 = new Int32Array(sab)
  await new Promise<void>((resolve) => {
    atomic.onmessage = () => resolve()
    atomic.postMessage(sab)
  })
  const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync
  let seq = 0
  const atomicsRoundTrip = async (): Promise<void> => {
    const n = ++seq
    Atomics.store(i32, 0, n)
    Atomics.notify(i32, 0)
    while (Atomics.load(i32, 1) !== n) {
      const r = waitAsync(i32, 1, n - 1)
      if (r.async) await r.value
    }
  }
  const messageRoundTrip = () =>
    new Promise<void>((resolve) => {
      messenger.onmessage = () => resolve()
      messenger.postMessage(1)
    })
  const stop = () => {
    Atomics.store(i32, 0, -1)
    Atomics.notify(i32, 0)
    messenger.terminate()
    atomic.terminate()
  }
  return { atomicsRoundTrip, messageRoundTrip, stop }
}

/** A plain worker of `raw-worker.ts` busy-polling a buffer, and a round trip where this thread polls too (the limit). */
const startSpinningWorker = async () => {
  const worker = new Worker(new URL("./raw-worker.ts", import.meta.url), { type: "module" })
  const i32 = new Int32Array(new SharedArrayBuffer(8))
  await new Promise<void>((resolve) => {
    worker.onmessage = () => resolve()
    worker.postMessage(["spin", i32.buffer])
  })
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
  const stop = () => {
    Atomics.store(i32, 0, -1)
    worker.terminate()
  }
  return { roundTrip, stop }
}

/**
 * The runtime over the browser engine with `options`; fails when the engine cannot run as asked. Its
 * fibers yield through `BrowserScheduler` (a `MessageChannel`: what a page should run Effect with),
 * unless `defaultScheduler` (Effect's default: `setTimeout(0)`, clamped to 4 ms when nested).
 */
const makeRuntime = async (options: BrowserEngine.BrowserEngineOptions, defaultScheduler = false) => {
  const verifier = Signing.layer({ trustStore: testOnlyTrustStore(), allowUnsigned: true })
  const agents = AgentRuntimes.layerMemory({ pool: { totalMemory: 1024 * MiB, maxHandles: 1_000_000 } }).pipe(
    Layer.provideMerge(BrowserEngine.layerWith(options)),
    Layer.provide(verifier)
  )
  const layer = defaultScheduler ? agents : Layer.merge(agents, BrowserScheduler.layer)
  const managed = ManagedRuntime.make(layer)
  const { runtime, engine } = await managed.runPromise(
    Effect.gen(function* () {
      return { runtime: yield* AgentRuntime, engine: yield* BrowserEngine.BrowserEngine }
    })
  )
  const run = <A, E>(effect: Effect.Effect<A, E, never>): Promise<A> => managed.runPromise(effect)
  return { runtime, engine, run, dispose: () => managed.dispose() }
}

const spawn = async (bench: Awaited<ReturnType<typeof makeRuntime>>, name: string, bytes: Uint8Array) => {
  const moduleId = await bench.run(bench.runtime.loadModule(bytes, makeMetadata({ name, version: "1.0.0" })))
  const id = agentId(`bench-${name}`)
  await bench.run(bench.runtime.spawnAgent(id, moduleId, { memoryLimit: MiB }))
  return id
}

/** `batch` calls of `runtime.invoke` in one `Effect.gen`; returns the elapsed ms. */
const invokeLoop =
  (
    bench: { runtime: AgentRuntimeShape; run: <A, E>(e: Effect.Effect<A, E, never>) => Promise<A> },
    id: ReturnType<typeof agentId>,
    fn: string,
    args: ReadonlyArray<WasmValue>
  ) =>
  async (batch: number): Promise<number> => {
    const start = performance.now()
    await bench.run(
      Effect.gen(function* () {
        for (let i = 0; i < batch; i++) sink = yield* bench.runtime.invoke(id, fn, args)
      })
    )
    return performance.now() - start
  }

export const runBench = async (input: BrowserBenchInput): Promise<BrowserBenchOutput> => {
  const rows: Array<BrowserBenchRow> = []
  const notes: Array<string> = []
  const noopBytes = new Uint8Array(input.noopModule)
  const addBytes = new Uint8Array(input.addModule)
  const { samples, idleSamples, rawBatch, invokeBatch, roundTripBatch } = input

  const want = (group: "inPage" | "workers") => input.groups === undefined || input.groups.includes(group)

  if (want("inPage")) {
    // raw direct export calls (baselines of the in-page rows)
    const noop = new WebAssembly.Instance(await WebAssembly.compile(noopBytes), {}).exports["noop"] as () => void
    const add = new WebAssembly.Instance(await WebAssembly.compile(addBytes), {}).exports["add"] as (
      a: number,
      b: number
    ) => number
    const rawNoop = "direct export call: no-op"
    const rawAdd = "direct export call: add(i32,i32)"
    rows.push({
      name: rawNoop,
      batch: rawBatch,
      samples: await sample(samples, rawBatch, (b) => timeSync(b, () => (sink = noop())))
    })
    rows.push({
      name: rawAdd,
      batch: rawBatch,
      samples: await sample(samples, rawBatch, (b) => timeSync(b, () => (sink = add(20, 22))))
    })

    // in-page engine
    const inPage = await makeRuntime({ mode: "inPage" })
    try {
      if (inPage.engine.transport !== "inPage")
        throw new Error(`in-page engine runs with transport ${inPage.engine.transport}`)
      const noopId = await spawn(inPage, "noop", noopBytes)
      const addId = await spawn(inPage, "no-memory", addBytes)
      if ((await inPage.run(inPage.runtime.invoke(addId, "add", [20, 22])))[0] !== 42)
        throw new Error("in-page add(20, 22) is not 42")
      rows.push({
        name: "in-page runtime.invoke: no-op",
        baseline: rawNoop,
        target: "invoke-1us",
        batch: invokeBatch,
        samples: await sample(samples, invokeBatch, invokeLoop(inPage, noopId, "noop", []))
      })
      rows.push({
        name: "in-page runtime.invoke: add(i32,i32)",
        baseline: rawAdd,
        target: "invoke-1us",
        batch: invokeBatch,
        samples: await sample(samples, invokeBatch, invokeLoop(inPage, addId, "add", [20, 22]))
      })
    } finally {
      await inPage.dispose()
    }
    // the same no-op row on Effect's default scheduler: its fibers yield every 2048 operations through
    // `setTimeout(0)`, which the page clamps to 4 ms (what `BrowserScheduler` avoids)
    const clamped = await makeRuntime({ mode: "inPage" }, true)
    try {
      const noopId = await spawn(clamped, "noop", noopBytes)
      rows.push({
        name: "in-page runtime.invoke: no-op (Effect's default scheduler)",
        baseline: rawNoop,
        batch: invokeBatch,
        samples: await sample(samples, invokeBatch, invokeLoop(clamped, noopId, "noop", []))
      })
    } finally {
      await clamped.dispose()
    }
  }

  if (want("workers")) {
    // raw round trips to a plain Web Worker (baselines of the worker rows)
    const raw = await startRawWorkers()
    const rawMessage = "raw postMessage round trip (hot)"
    const rawAtomicsHot = "raw SAB+Atomics round trip (hot)"
    const rawAtomicsIdle = "raw SAB+Atomics round trip (idle)"
    try {
      rows.push({
        name: rawMessage,
        batch: roundTripBatch,
        samples: await sample(samples, roundTripBatch, async (b) => {
          const start = performance.now()
          for (let i = 0; i < b; i++) await raw.messageRoundTrip()
          return performance.now() - start
        })
      })
      rows.push({
        name: rawAtomicsHot,
        batch: roundTripBatch,
        samples: await sample(samples, roundTripBatch, async (b) => {
          const start = performance.now()
          for (let i = 0; i < b; i++) await raw.atomicsRoundTrip()
          return performance.now() - start
        })
      })
      rows.push({
        name: rawAtomicsIdle,
        batch: 1,
        samples: await sample(idleSamples, 1, async () => {
          await sleep(input.idlePauseMs)
          const start = performance.now()
          await raw.atomicsRoundTrip()
          return performance.now() - start
        })
      })
    } finally {
      raw.stop()
    }
    const rawSpinning = "raw SAB round trip, both sides spinning (the limit)"
    if (crossOriginIsolated) {
      const spinning = await startSpinningWorker()
      try {
        spinning.roundTrip()
        rows.push({
          name: rawSpinning,
          batch: roundTripBatch * 10,
          samples: await sample(samples, roundTripBatch * 10, (b) => timeSync(b, () => spinning.roundTrip()))
        })
      } finally {
        spinning.stop()
      }
    }

    // worker engine, shared channel
    if (!crossOriginIsolated) {
      notes.push("the page is not cross-origin isolated (COOP/COEP missing): engine-browser worker mode not measurable")
    } else {
      const workers = await makeRuntime({ mode: "workers", channel: "shared", workers: 1 })
      try {
        if (workers.engine.transport !== "shared")
          throw new Error(`worker engine runs with transport ${workers.engine.transport}`)
        const noopId = await spawn(workers, "noop", noopBytes)
        const addId = await spawn(workers, "no-memory", addBytes)
        if ((await workers.run(workers.runtime.invoke(addId, "add", [20, 22])))[0] !== 42)
          throw new Error("worker add(20, 22) is not 42")
        rows.push({
          name: "worker (shared channel) runtime.invoke no-op (hot agent)",
          baseline: rawSpinning,
          target: "worker-hot",
          batch: roundTripBatch,
          samples: await sample(samples, roundTripBatch, invokeLoop(workers, noopId, "noop", []))
        })
        rows.push({
          name: "worker (shared channel) runtime.invoke no-op (hot agent) vs sleeping raw",
          baseline: rawAtomicsHot,
          batch: roundTripBatch,
          samples: await sample(samples, roundTripBatch, invokeLoop(workers, noopId, "noop", []))
        })
        rows.push({
          name: "worker (shared channel) runtime.invoke add(i32,i32) (hot agent)",
          baseline: rawAtomicsHot,
          batch: roundTripBatch,
          samples: await sample(samples, roundTripBatch, invokeLoop(workers, addId, "add", [20, 22]))
        })
        const once = invokeLoop(workers, noopId, "noop", [])
        rows.push({
          name: "worker (shared channel) runtime.invoke no-op (idle agent)",
          baseline: rawAtomicsIdle,
          target: "worker-idle",
          batch: 1,
          samples: await sample(idleSamples, 1, async () => {
            await sleep(input.idlePauseMs)
            return once(1)
          })
        })
      } finally {
        await workers.dispose()
      }
    }
  }
  return { userAgent: navigator.userAgent, crossOriginIsolated, rows, notes }
}

declare global {
  interface Window {
    agentRuntimeBench?: typeof runBench
  }
}

window.agentRuntimeBench = runBench
const status = document.getElementById("status")
if (status !== null) status.textContent = `ready (crossOriginIsolated: ${String(crossOriginIsolated)})`
