/**
 * engine-kit's `WorkerHost` port on module Web Workers: what the browser
 * engine does differently from Node's.
 *
 * - A worker runs `BrowserWorker.js` beside this module as a module worker
 *   (`new Worker(new URL("./BrowserWorker.js", import.meta.url), { type:
 *   "module" })`, a URL Vite and other bundlers follow), or whatever
 *   `createWorker` starts.
 * - An `error` event (an uncaught exception, a script that failed to load)
 *   or a `messageerror` is the worker's death; `terminate()` is immediate.
 *   Chromium may let a terminated worker's WebAssembly loop run about 2 s
 *   more: that costs a core, never the page.
 * - A blocked worker cannot take a message (no `receiveMessageOnPort` in
 *   browsers): `syncReceive` is off.
 * - Time: `performance.now()` (ms); timers: `setTimeout`. The thread count is
 *   the resource pool's `maxThreads` (`ResourcePoolConfig`), not the host's.
 *
 * @since 0.2.0
 */
import type { WorkerHost } from "@agent-runtime/engine-kit"

/** The structural part of a `Worker` the host uses. */
export interface WorkerLike {
  postMessage(message: unknown, transfer?: Array<unknown>): void
  terminate(): void
  onmessage: ((event: { readonly data: unknown }) => void) | null
  onerror: ((event: { readonly message?: string; preventDefault?: () => void }) => void) | null
  onmessageerror: ((event: unknown) => void) | null
}

/** The default worker: the module worker script beside this file. */
export const defaultWorker = (): WorkerLike =>
  new Worker(new URL("./BrowserWorker.js", import.meta.url), {
    type: "module",
    name: "agent-runtime"
  }) as unknown as WorkerLike

/** A `WorkerHost` on Web Workers; `createWorker` starts one running `BrowserWorker` (default `defaultWorker`). */
export const make = (createWorker: () => WorkerLike = defaultWorker): WorkerHost => ({
  start: (events) => {
    const worker = createWorker()
    worker.onmessage = (event) => events.onMessage(event.data)
    worker.onerror = (event) => {
      event.preventDefault?.()
      events.onDeath(`worker error: ${event.message ?? "the worker script failed"}`)
    }
    worker.onmessageerror = () => events.onDeath("worker message could not be deserialized")
    return {
      post: (m) => worker.postMessage(m),
      terminate: () => {
        worker.onmessage = null
        worker.onerror = null
        worker.terminate()
        return Promise.resolve()
      },
      hold: () => undefined,
      threadId: undefined
    }
  },
  syncReceive: false,
  now: () => performance.now(),
  setTimer: (ms, f) => {
    const timer = setTimeout(f, ms)
    return () => clearTimeout(timer)
  }
})
