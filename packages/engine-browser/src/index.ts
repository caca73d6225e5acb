/**
 * `@agent-runtime/engine-browser` — the `WasmEngine` in a web page (platform
 * `Browser`): module Web Workers over a SharedArrayBuffer + Atomics call path
 * when the page is cross-origin isolated (in-page with fuel otherwise),
 * timeouts by fuel + terminate, WASI preview1 through a shim, IndexedDB
 * repositories and a BroadcastChannel event bus.
 *
 * @since 0.1.0
 */
export * as BroadcastEventBus from "./BroadcastEventBus.js"
export * as BrowserEngine from "./BrowserEngine.js"
export * as BrowserWasi from "./BrowserWasi.js"
export * as CallChannel from "./CallChannel.js"
export * as IndexedDbRepositories from "./IndexedDbRepositories.js"
export * as WorkerPool from "./WorkerPool.js"
