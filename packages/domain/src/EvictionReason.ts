/**
 * `EvictionReason` (spec "Domain Events / AgentEvicted"): why an agent's
 * instance was removed from the runtime.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

export const EvictionReason = Schema.Literals([
  "MemoryPressure",
  "HealthFailure",
  "Timeout",
  "Manual",
  "Shutdown",
  "PolicyViolation"
])
export type EvictionReason = typeof EvictionReason.Type

/** Every reason, in declaration order. */
export const evictionReasons: ReadonlyArray<EvictionReason> = EvictionReason.literals
