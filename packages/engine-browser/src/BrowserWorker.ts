/**
 * The worker entry of the browser engine: the module-worker script every
 * pool worker runs (`new Worker(url, { type: "module" })`). Everything it
 * does is engine-kit's `WorkerExecutor.serve` (the executor over the call
 * channel); this file only gives it the worker's global scope and the WASI
 * shim (`BrowserWasi.ts`).
 *
 * With the shared channel the worker blocks in `Atomics.wait` between
 * requests and only returns to its event loop to take a request the page
 * had to post (a `WebAssembly.Module` for instantiation: posted, so Chromium
 * shares the compiled code instead of compiling again). Only the
 * fault-injection request `Crash` throws out of the worker on purpose (the
 * page sees an `error` event and recovers the worker's other agents).
 *
 * Bundlers pick this file up through `new URL("./BrowserWorker.js",
 * import.meta.url)` in `BrowserWorkerHost.ts`, or the package's `./worker`
 * export.
 *
 * @since 0.1.0
 */
import { WorkerExecutor } from "@agent-runtime/engine-kit"
import { executorPlatform, type WasiSpec } from "./BrowserWasi.js"

/** The structural part of a dedicated worker's global scope this script uses. */
interface WorkerGlobalScope {
  onmessage: ((event: { readonly data: unknown }) => void) | null
  postMessage: (message: unknown) => void
}

const scope = globalThis as unknown as WorkerGlobalScope

WorkerExecutor.serve<WasiSpec>(
  {
    post: (message) => scope.postMessage(message),
    listen: (handler) => {
      scope.onmessage = (event) => handler(event.data)
    }
  },
  executorPlatform
)
