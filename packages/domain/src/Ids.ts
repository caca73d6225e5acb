/**
 * Identifiers of the Runtime context (spec "Aggregate Root: RuntimeEnvironment").
 *
 * All ids are branded strings so an `AgentId` cannot be passed where a `ModuleId`
 * is expected. `ModuleHash` is the lowercase hex SHA-256 of a module's bytes
 * (with the signature custom section excluded, see `@agent-runtime/signing`).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/** Identity of an agent (chosen by the caller, e.g. the Coordination context). */
export const AgentId = Schema.String.pipe(Schema.brand("AgentId"))
export type AgentId = typeof AgentId.Type

/** Identity of a loaded module inside one runtime. */
export const ModuleId = Schema.String.pipe(Schema.brand("ModuleId"))
export type ModuleId = typeof ModuleId.Type

/** Lowercase hex SHA-256 (64 chars) of a module's bytes. */
export const ModuleHash = Schema.String.pipe(Schema.brand("ModuleHash"))
export type ModuleHash = typeof ModuleHash.Type

/** Identity of one instance of an agent (a new one per spawn / rehydration). */
export const InstanceId = Schema.String.pipe(Schema.brand("InstanceId"))
export type InstanceId = typeof InstanceId.Type

/** Identity of a runtime (the aggregate root). */
export const RuntimeId = Schema.String.pipe(Schema.brand("RuntimeId"))
export type RuntimeId = typeof RuntimeId.Type

/** Identity of a domain event. */
export const EventId = Schema.String.pipe(Schema.brand("EventId"))
export type EventId = typeof EventId.Type

/** An agent type, the key `ModuleRegistry` and `ConfigProvider` resolve. */
export const AgentType = Schema.String.pipe(Schema.brand("AgentType"))
export type AgentType = typeof AgentType.Type

/** Casts a plain string to an id (no validation beyond the type). */
export const agentId = (s: string): AgentId => s as AgentId
/** Casts a plain string to a module id. */
export const moduleId = (s: string): ModuleId => s as ModuleId
/** Casts a plain string to a module hash. */
export const moduleHash = (s: string): ModuleHash => s as ModuleHash
/** Casts a plain string to an agent type. */
export const agentType = (s: string): AgentType => s as AgentType
