/**
 * Health of an agent instance (spec "Value Objects / HealthStatus",
 * `HealthCheck`, `HealthDetails`).
 *
 * A check is made of three signals: memory (budget utilization below a
 * ratio), response (the `_health_check` export returned 0 within its
 * deadline) and error rate (share of failed invocations since the last
 * check). Consecutive failed checks are counted per instance **across
 * checks** (DESIGN.md known defect 2: the spec's sample resets the count on
 * every check, so `Unhealthy` could never be reached).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

export const HealthStatus = Schema.Literals(["Unknown", "Healthy", "Degraded", "Unhealthy"])
export type HealthStatus = typeof HealthStatus.Type

/** The signals of one check (spec `HealthDetails`). */
export interface HealthDetails {
  readonly memoryOk: boolean
  readonly responseOk: boolean
  readonly errorRateOk: boolean
  readonly lastError: string | undefined
  /** Failed checks in a row, this one included (0 after a passing check). */
  readonly consecutiveFailures: number
}

/** One check's outcome (spec `HealthCheck`). `checkedAt` in ms since the Unix epoch. */
export interface HealthCheck {
  readonly agentId: string
  readonly status: HealthStatus
  readonly checkedAt: number
  readonly details: HealthDetails
}

/** Whether every signal of a check passed. */
export const passed = (d: Pick<HealthDetails, "memoryOk" | "responseOk" | "errorRateOk">): boolean =>
  d.memoryOk && d.responseOk && d.errorRateOk

/**
 * Status from details (spec `HealthStatus::from_details`): all signals OK →
 * `Healthy`; more than `unhealthyAfter` (spec: 3) consecutive failures →
 * `Unhealthy`; otherwise `Degraded`.
 */
export const fromDetails = (details: HealthDetails, unhealthyAfter = 3): HealthStatus =>
  passed(details) ? "Healthy" : details.consecutiveFailures > unhealthyAfter ? "Unhealthy" : "Degraded"
