/**
 * `@agent-runtime/engine-browser` — the `WasmEngine` in a web page (platform
 * `Browser`): engine-kit's worker engine on module Web Workers over a
 * SharedArrayBuffer + Atomics call path when the page is cross-origin
 * isolated (in-page with fuel otherwise), timeouts by fuel + terminate, WASI
 * preview1 through a shim. IndexedDB repositories and the BroadcastChannel
 * event bus are `@agent-runtime/repository-indexeddb` and
 * `@agent-runtime/event-bus-broadcast`.
 *
 * @since 0.1.0
 */
export * as BrowserEngine from "./BrowserEngine.js"
export * as BrowserWasi from "./BrowserWasi.js"
export * as BrowserWorkerHost from "./BrowserWorkerHost.js"
export * as BrowserScheduler from "./BrowserScheduler.js"
