/**
 * `@agent-runtime/nats`: the runtime on NATS, for several hosts (DESIGN.md
 * "Beyond one machine"): one shared connection (`Nats`), the `EventBus` on
 * JetStream (`NatsEventBus`), the `ModuleRepository` on the Object Store
 * (`NatsModuleRepository`), the `InstanceRepository` on KV
 * (`NatsInstanceRepository`), all of them in one layer (`NatsHost`), the lease table that keeps one owner per
 * agent across hosts (`Leases`) and the runtime's spawn / activation guarded
 * by it (`LeasedRuntime`).
 *
 * @since 0.1.0
 */
export * as LeasedRuntime from "./LeasedRuntime.js"
export * as Leases from "./Leases.js"
export * as Nats from "./Nats.js"
export * as NatsEventBus from "./NatsEventBus.js"
export * as NatsHost from "./NatsHost.js"
export * as NatsInstanceRepository from "./NatsInstanceRepository.js"
export * as NatsModuleRepository from "./NatsModuleRepository.js"
