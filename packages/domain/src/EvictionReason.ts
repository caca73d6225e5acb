/**
 * `EvictionReason` (spec "Domain Events / AgentEvicted"): why an agent's
 * instance was removed from the runtime. The spec's six reasons, plus
 * `Migration` (beyond the spec, for several hosts): the agent moved to
 * another host (handed over, or its lease was taken by another host).
 *
 * Saved state: `Shutdown` and `Migration` keep the agent's last saved
 * snapshot in the `InstanceRepository` (it is restored on the next start or
 * on the other host); every other reason deletes it.
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
  "PolicyViolation",
  "Migration"
])
export type EvictionReason = typeof EvictionReason.Type

/** Whether an eviction with `reason` keeps the agent's saved state (`Shutdown`, `Migration`). */
export const keepsSavedState = (reason: EvictionReason): boolean => reason === "Shutdown" || reason === "Migration"

/** Every reason, in declaration order. */
export const evictionReasons: ReadonlyArray<EvictionReason> = EvictionReason.literals
