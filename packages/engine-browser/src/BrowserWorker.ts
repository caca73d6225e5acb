/**
 * The worker side of the browser engine: the module-worker script every pool
 * worker runs (`new Worker(url, { type: "module" })`). It owns the
 * `WebAssembly.Instance`s of the agents assigned to its worker
 * (`internal/Executor.ts`) and serves the page's requests over the call
 * channel (`CallChannel.ts`), one at a time.
 *
 * The first message is `["init", ChannelInit, fuelExport]`. With the shared
 * channel the worker then blocks in `Atomics.wait` between requests and only
 * returns to its event loop to take a request the page had to post (a
 * `WebAssembly.Module` for instantiation: posted, so Chromium shares the
 * compiled code instead of compiling again). Host imports are stubs that
 * proxy each call synchronously to the page (`channel.hostCall`). Nothing a
 * guest does escapes as an exception; only the fault-injection request
 * `CRASH` throws out of the worker on purpose (the page sees an `error`
 * event and recovers the worker's other agents).
 *
 * Bundlers pick this file up through `new URL("./BrowserWorker.js",
 * import.meta.url)` in `BrowserEngine.ts`, or the package's `./worker` export.
 *
 * @since 0.1.0
 */
import { type ChannelInit, type ChannelMessage, openWorker, type WorkerChannel } from "./CallChannel.js"
import type { Wire } from "./internal/Codec.js"
import { HostCallError, makeExecutor } from "./internal/Executor.js"

/** The first message a worker receives. */
export type WorkerInit = readonly ["init", ChannelInit, string]

/** The structural part of a dedicated worker's global scope this script uses. */
interface WorkerScope {
  onmessage: ((event: { readonly data: unknown }) => void) | null
  postMessage: (message: unknown) => void
}

const scope = globalThis as unknown as WorkerScope
let channel: WorkerChannel | undefined

const hostFunction = (id: number, index: number) => (...args: Array<unknown>): unknown => {
  const reply = channel!.hostCall([id, index, args as Array<Wire>]) as readonly [number, unknown]
  if (reply[0] !== 1) throw new HostCallError(String(reply[1]))
  const values = reply[1] as ReadonlyArray<unknown>
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values
}

scope.onmessage = (event) => {
  if (channel === undefined) {
    const [tag, init, fuelExport] = event.data as WorkerInit
    if (tag !== "init") return
    const executor = makeExecutor({ fuelExport, hostFunction })
    channel = openWorker(init, executor.handle, (m) => scope.postMessage(m))
    channel.serve()
    return
  }
  channel.onMessage(event.data as ChannelMessage)
}
