/**
 * `@agent-runtime/engine-node` — the `WasmEngine` on Node `worker_threads`
 * (platform `Node`): engine-kit's worker engine (pool, SharedArrayBuffer +
 * Atomics call path, preemptive timeouts with recovery of the other agents,
 * fuel) over `NodeWorkerHost`, with WASI preview1 from `node:wasi`.
 *
 * @since 0.1.0
 */
export * as NodeEngine from "./NodeEngine.js"
export * as NodeWasi from "./NodeWasi.js"
export * as NodeWorkerHost from "./NodeWorkerHost.js"
