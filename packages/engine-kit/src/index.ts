/**
 * `@agent-runtime/engine-kit`: the platform-free core of every `WasmEngine`
 * adapter (DESIGN.md "Shape"). Engines differ only by their `WorkerHost`
 * and WASI; everything else is here.
 *
 * @since 0.2.0
 */
export * as Instance from "./Instance.js"
export type { Call, CallError, InstanceConfig, InstantiateError, LiveInstance } from "./Instance.js"
export * as CallChannel from "./CallChannel.js"
export * as Codec from "./Codec.js"
export * as Protocol from "./Protocol.js"
export * as WorkerEngine from "./WorkerEngine.js"
export type { RecoveryPolicy, WasiHost, WorkerEngineOptions, WorkerEngineShape } from "./WorkerEngine.js"
export * as WorkerExecutor from "./WorkerExecutor.js"
export type { ExecutorPlatform, WasiSession } from "./WorkerExecutor.js"
export type { WorkerEvents, WorkerHandle, WorkerHost, WorkerScope } from "./WorkerHost.js"
export * as WorkerPool from "./WorkerPool.js"
export type { WasiHandle } from "./WorkerPool.js"
