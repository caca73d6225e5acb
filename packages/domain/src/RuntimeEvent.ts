/**
 * Domain events of the Runtime context (spec "Domain Events"; DESIGN.md
 * "Events"), as Schema classes so they can cross a process or the wire
 * (BroadcastChannel, NATS) and be decoded on the other side.
 *
 * Every event has `_tag`, `eventId`, `timestamp` (ms since the Unix epoch,
 * from Effect's `Clock`) and `runtimeId`. Memory in bytes, durations in ms.
 *
 * Published: `ModuleLoaded`, `AgentSpawned`, `AgentStateChanged`,
 * `AgentEvicted`, `AgentPassivated`, `AgentActivated`, `AgentRecovered`,
 * `MemoryPressure`, `HealthCheckCompleted`.
 * Consumed (from the Coordination context): `AgentJoined`, `AgentLeft`.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { EvictionReason } from "./EvictionReason.js"
import { AgentId, AgentType, EventId, InstanceId, ModuleHash, ModuleId, RuntimeId } from "./Ids.js"
import { InstanceState } from "./AgentInstance.js"
import { PressureLevel } from "./PressureLevel.js"

const envelope = {
  eventId: EventId,
  timestamp: Schema.Number,
  runtimeId: RuntimeId
}

/** A module was verified, compiled (or found in the cache) and registered. `size` in bytes. */
export class ModuleLoaded extends Schema.TaggedClass<ModuleLoaded>()("ModuleLoaded", {
  ...envelope,
  moduleId: ModuleId,
  moduleHash: ModuleHash,
  size: Schema.Number,
  exports: Schema.Array(Schema.String),
  cacheHit: Schema.Boolean
}) {}

/** An agent instance was created; `memoryAllocated` is its budget limit in bytes. */
export class AgentSpawned extends Schema.TaggedClass<AgentSpawned>()("AgentSpawned", {
  ...envelope,
  agentId: AgentId,
  moduleId: ModuleId,
  instanceId: InstanceId,
  memoryAllocated: Schema.Number
}) {}

/** An agent's lifecycle state changed. */
export class AgentStateChanged extends Schema.TaggedClass<AgentStateChanged>()("AgentStateChanged", {
  ...envelope,
  agentId: AgentId,
  from: InstanceState,
  to: InstanceState
}) {}

/** An agent was removed; `memoryReleased` bytes went back to the pool; `uptime` in ms. */
export class AgentEvicted extends Schema.TaggedClass<AgentEvicted>()("AgentEvicted", {
  ...envelope,
  agentId: AgentId,
  reason: EvictionReason,
  memoryReleased: Schema.Number,
  uptime: Schema.Number
}) {}

/**
 * An idle agent was passivated: its state went to the `InstanceRepository`
 * and its instance and memory (`memoryReleased` bytes) were released.
 */
export class AgentPassivated extends Schema.TaggedClass<AgentPassivated>()("AgentPassivated", {
  ...envelope,
  agentId: AgentId,
  memoryReleased: Schema.Number
}) {}

/** A passivated agent was rehydrated into a new instance (on its next call). */
export class AgentActivated extends Schema.TaggedClass<AgentActivated>()("AgentActivated", {
  ...envelope,
  agentId: AgentId,
  instanceId: InstanceId,
  /** How long the agent stayed passivated, ms. */
  passivatedFor: Schema.Number
}) {}

/**
 * An agent whose call trapped got a new instance before its next call
 * (`AgentConfig.onTrap: "restore"`, issue 12 item 7): restored from its
 * last snapshot in the `InstanceRepository` (`from: "Snapshot"`, `takenAt`
 * its time in ms since the epoch) or re-instantiated fresh (`"Fresh"`).
 * `cause` is the trap's message. The trapped call still counts against the
 * agent's health.
 */
export class AgentRecovered extends Schema.TaggedClass<AgentRecovered>()("AgentRecovered", {
  ...envelope,
  agentId: AgentId,
  from: Schema.Literals(["Snapshot", "Fresh"]),
  takenAt: Schema.optional(Schema.Number),
  cause: Schema.String
}) {}

/**
 * The pool was above its warning threshold; `memoryBefore` / `memoryAfter`
 * are the pool's used bytes before and after the evictions (DESIGN.md known
 * defect 1: the spec read both after eviction). `pressureLevel` is the level
 * that was detected (before eviction).
 */
export class MemoryPressure extends Schema.TaggedClass<MemoryPressure>()("MemoryPressure", {
  ...envelope,
  evictedAgents: Schema.Array(AgentId),
  /** Idle agents passivated (state saved) rather than evicted. */
  passivatedAgents: Schema.Array(AgentId),
  memoryBefore: Schema.Number,
  memoryAfter: Schema.Number,
  totalMemory: Schema.Number,
  pressureLevel: PressureLevel
}) {}

/** A health-check cycle finished; `duration` in ms. */
export class HealthCheckCompleted extends Schema.TaggedClass<HealthCheckCompleted>()("HealthCheckCompleted", {
  ...envelope,
  totalChecked: Schema.Number,
  healthyCount: Schema.Number,
  degradedCount: Schema.Number,
  unhealthyCount: Schema.Number,
  failedAgents: Schema.Array(AgentId),
  duration: Schema.Number
}) {}

/**
 * Consumed: the Coordination context will place this agent here — prepare
 * resources: compile its module and reserve its memory (`memoryLimit` bytes,
 * default from `ConfigProvider`). Either `moduleId` or `agentType` names the module.
 */
export class AgentJoined extends Schema.TaggedClass<AgentJoined>()("AgentJoined", {
  ...envelope,
  agentId: AgentId,
  moduleId: Schema.optional(ModuleId),
  agentType: Schema.optional(AgentType),
  memoryLimit: Schema.optional(Schema.Number)
}) {}

/** Consumed: the agent left the swarm — release its resources (evict it if live, drop a prepared reservation). */
export class AgentLeft extends Schema.TaggedClass<AgentLeft>()("AgentLeft", {
  ...envelope,
  agentId: AgentId
}) {}

/** Events the runtime publishes. */
export const RuntimeEvent = Schema.Union([
  ModuleLoaded,
  AgentSpawned,
  AgentStateChanged,
  AgentEvicted,
  AgentPassivated,
  AgentActivated,
  AgentRecovered,
  MemoryPressure,
  HealthCheckCompleted
])
export type RuntimeEvent = typeof RuntimeEvent.Type

/** Events the runtime consumes. */
export const CoordinationEvent = Schema.Union([AgentJoined, AgentLeft])
export type CoordinationEvent = typeof CoordinationEvent.Type

/** Everything that travels on the `EventBus`. */
export const DomainEvent = Schema.Union([RuntimeEvent, CoordinationEvent])
export type DomainEvent = RuntimeEvent | CoordinationEvent

const runtimeTags = new Set([
  "ModuleLoaded",
  "AgentSpawned",
  "AgentStateChanged",
  "AgentEvicted",
  "AgentPassivated",
  "AgentActivated",
  "AgentRecovered",
  "MemoryPressure",
  "HealthCheckCompleted"
])

/** Whether a domain event is one the runtime publishes. */
export const isRuntimeEvent = (e: DomainEvent): e is RuntimeEvent => runtimeTags.has(e._tag)
