/**
 * `@agent-runtime/domain` — the Runtime bounded context: the aggregate
 * (`RuntimeEnvironment`) and its service (`AgentRuntime`), entities, value
 * objects, domain services, events, errors, and the ports adapters implement.
 *
 * Modules are exported as namespaces where they hold several functions
 * (`MemoryBudget.utilization`), and their main types/classes directly.
 *
 * @since 0.1.0
 */
export * as AgentConfig from "./AgentConfig.js"
export type { AgentConfig as AgentConfigShape } from "./AgentConfig.js"
export * as AgentFactories from "./AgentFactory.js"
export { AgentFactory, type AgentFactoryShape } from "./AgentFactory.js"
export * as AgentInstances from "./AgentInstance.js"
export { AgentInstance, InstanceState } from "./AgentInstance.js"
export * as AgentRuntimes from "./AgentRuntime.js"
export {
  AgentRuntime,
  type AgentInfo,
  type AgentRuntimeShape,
  type LifecycleError,
  type PreparedCall,
  type RestoreResult,
  type RuntimePorts,
  type RuntimeSettings,
  type RuntimeStats,
  type SettingsInput,
  type SpawnError
} from "./AgentRuntime.js"
export * as CompileVariant from "./CompileVariant.js"
export * as ConfigProviders from "./ConfigProvider.js"
export { ConfigProvider } from "./ConfigProvider.js"
export * as EventBuses from "./EventBus.js"
export { EventBus } from "./EventBus.js"
export * from "./EvictionReason.js"
export * as ExecutionAuthorizers from "./ExecutionAuthorizer.js"
export { ExecutionAuthorizer, type ExecutionRequest } from "./ExecutionAuthorizer.js"
export * as Health from "./Health.js"
export * as HealthChecker from "./HealthChecker.js"
export * from "./Ids.js"
export * as InstanceRepositories from "./InstanceRepository.js"
export { InstanceRepository, type InstanceSnapshot } from "./InstanceRepository.js"
export * as MemoryBudget from "./MemoryBudget.js"
export * as MemoryManager from "./MemoryManager.js"
export * as MetricsRepositories from "./MetricsRepository.js"
export { MetricsRepository, type AggregatedMetrics, type RuntimeMetrics, type TimeRange } from "./MetricsRepository.js"
export * from "./ModuleCache.js"
export * from "./ModuleMetadata.js"
export * as ModuleRegistries from "./ModuleRegistry.js"
export { ModuleRegistry } from "./ModuleRegistry.js"
export * as ModuleRepositories from "./ModuleRepository.js"
export { ModuleRepository, type StoredModule } from "./ModuleRepository.js"
export * from "./ModuleVerifier.js"
export * as PressureLevels from "./PressureLevel.js"
export { PressureLevel } from "./PressureLevel.js"
export * from "./ResourcePool.js"
export * from "./RuntimeEnvironment.js"
export * from "./RuntimeError.js"
export * from "./RuntimeEvent.js"
export * from "./RuntimePlatform.js"
export * as RuntimeStatuses from "./RuntimeStatus.js"
export { RuntimeStatus } from "./RuntimeStatus.js"
export * from "./WasmEngine.js"
export * as WasmModules from "./WasmModule.js"
export type { WasmModule } from "./WasmModule.js"
export * from "./WasmValue.js"
export * from "./PromiseRuntime.js"
export * as SnapshotCodec from "./SnapshotCodec.js"
export { SnapshotCorrupt, SnapshotInvalid, SnapshotMismatch } from "./SnapshotCodec.js"
