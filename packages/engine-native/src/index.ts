/**
 * `@agent-runtime/engine-native` — the in-process `WasmEngine` (platform `Native`).
 *
 * @since 0.1.0
 */
export * as NativeEngine from "./NativeEngine.js"
