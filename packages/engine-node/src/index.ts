/**
 * `@agent-runtime/engine-node` — the `WasmEngine` on Node `worker_threads`
 * (platform `Node`): a worker pool, a SharedArrayBuffer + Atomics call path,
 * preemptive timeouts with recovery of the other agents, fuel, WASI preview1.
 *
 * @since 0.1.0
 */
export * as CallChannel from "./CallChannel.js"
export * as NodeEngine from "./NodeEngine.js"
export * as NodeWasi from "./NodeWasi.js"
export * as WorkerPool from "./WorkerPool.js"
