/**
 * The worker entry of the Node engine: the script every pool worker runs
 * (`worker_threads`). Everything it does is engine-kit's
 * `WorkerExecutor.serve` (the executor over the call channel); this file
 * only gives it the worker's `parentPort` and Node's WASI (`node:wasi`,
 * `NodeWasi.ts`), and compares snapshot pages with `Buffer#equals`.
 *
 * With the shared channel the worker never returns to its event loop while
 * serving: it blocks in `Atomics.wait` between requests and leaves only to
 * take a request the host had to post (a `WebAssembly.Module`: posted, so
 * V8 shares the compiled code). `worker.terminate()` still interrupts it,
 * also inside `Atomics.wait`.
 *
 * @since 0.1.0
 */
import { WorkerExecutor } from "@agent-runtime/engine-kit"
import { parentPort, receiveMessageOnPort } from "node:worker_threads"
import { createWasi, exitCode, suppressWasiWarning, type WasiSpec } from "./NodeWasi.js"

const port = parentPort!

suppressWasiWarning()
WorkerExecutor.serve<WasiSpec>(
  {
    post: (message) => port.postMessage(message),
    listen: (handler) => port.on("message", handler),
    receive: () => receiveMessageOnPort(port)?.message
  },
  {
    createWasi,
    exitCode,
    pagesEqual: (a, b) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b),
    notAModule: "not a module compiled by the node engine"
  }
)
