/**
 * `RuntimeStatus` (spec `RuntimeStatus`; DESIGN.md "RuntimeStatus"):
 * Initializing → Ready → Running ↔ Degraded → ShuttingDown → Stopped.
 *
 * `Running` once the first agent is live; `Degraded` while the pool is at
 * `High` pressure or above or some agent is unhealthy.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

export const RuntimeStatus = Schema.Literals([
  "Initializing",
  "Ready",
  "Running",
  "Degraded",
  "ShuttingDown",
  "Stopped"
])
export type RuntimeStatus = typeof RuntimeStatus.Type

/** Whether the runtime accepts new work (loads, spawns, invokes) in this status. */
export const acceptsWork = (status: RuntimeStatus): boolean =>
  status === "Ready" || status === "Running" || status === "Degraded"
