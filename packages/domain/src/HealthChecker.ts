/**
 * `HealthChecker` (spec "Domain Services / HealthChecker"): the rules that
 * turn one `_health_check` call into `HealthDetails`, a `HealthStatus`, and
 * an action (nothing, `_recover`, or fail → evict with `HealthFailure`).
 *
 * The checks themselves run in `AgentRuntime.checkHealth`, each under its
 * agent's mailbox, many agents in parallel.
 *
 * Timeouts (DESIGN.md known defect 3): a synchronous WebAssembly call cannot
 * be interrupted by a timer, so the deadline is passed to the engine
 * (engines that preempt stop the call; fuel stops it on the others) and the
 * elapsed time is measured with `Clock`: a check that returns after its
 * deadline counts as a failed response even if it succeeded.
 *
 * @since 0.1.0
 */
import * as Health from "./Health.js"

/** Settings. Times in ms; ratios in [0, 1]. */
export interface HealthSettings {
  /** Deadline of one `_health_check` call, ms. */
  readonly timeoutMs: number
  /** More than this many consecutive failures → `Unhealthy` (spec: 3). */
  readonly unhealthyAfter: number
  /** More than this many consecutive failures while `Unhealthy` → `Failed`, evicted with `HealthFailure` (spec `failure_threshold`). */
  readonly failureThreshold: number
  /** Memory is OK while budget utilization is below this ratio (spec: 0.95). */
  readonly maxMemoryUtilization: number
  /** Error rate is OK while failed / total invocations since the last check is at most this ratio. */
  readonly maxErrorRate: number
  /** Fewer invocations than this since the last check → the error rate is not judged. */
  readonly minInvocationsForErrorRate: number
  /** How many agents are checked at once. */
  readonly concurrency: number
}

export const defaultSettings: HealthSettings = {
  timeoutMs: 1_000,
  unhealthyAfter: 3,
  failureThreshold: 5,
  maxMemoryUtilization: 0.95,
  maxErrorRate: 0.5,
  minInvocationsForErrorRate: 4,
  concurrency: 16
}

/** What one `_health_check` call produced. */
export type ProbeOutcome =
  | { readonly _tag: "NoProbe" }
  | { readonly _tag: "Skipped"; readonly reason: string }
  | { readonly _tag: "Returned"; readonly results: ReadonlyArray<unknown>; readonly elapsedMs: number }
  | { readonly _tag: "Failed"; readonly error: string; readonly elapsedMs: number }

/** The inputs of one check of one instance. */
export interface CheckInput {
  readonly memoryUtilization: number
  readonly windowInvocations: number
  readonly windowErrors: number
  readonly previousFailures: number
  readonly probe: ProbeOutcome
}

/** What to do after a check. */
export type HealthAction = "none" | "recover" | "fail"

/**
 * Evaluates one check: details (with consecutive failures carried over from
 * the previous checks), status, and the action.
 * `_health_check` returning nothing or 0 is healthy; any other value, a trap,
 * an error, or returning after the deadline is a failed response.
 */
export const evaluate = (
  input: CheckInput,
  settings: HealthSettings
): { readonly details: Health.HealthDetails; readonly status: Health.HealthStatus; readonly action: HealthAction } => {
  const memoryOk = input.memoryUtilization < settings.maxMemoryUtilization
  let responseOk = true
  let lastError: string | undefined
  const probe = input.probe
  if (probe._tag === "Failed") {
    responseOk = false
    lastError = probe.error
  } else if (probe._tag === "Returned") {
    const code = probe.results[0]
    if (probe.elapsedMs > settings.timeoutMs) {
      responseOk = false
      lastError = `health check took ${probe.elapsedMs} ms, over its ${settings.timeoutMs} ms deadline`
    } else if (code !== undefined && code !== 0 && code !== 0n) {
      responseOk = false
      lastError = `_health_check returned ${String(code)}`
    }
  }
  const errorRateOk =
    input.windowInvocations < settings.minInvocationsForErrorRate ||
    input.windowErrors / input.windowInvocations <= settings.maxErrorRate
  if (!memoryOk && lastError === undefined)
    lastError = `memory utilization ${(input.memoryUtilization * 100).toFixed(1)} %`
  if (!errorRateOk && lastError === undefined) lastError = `error rate ${input.windowErrors}/${input.windowInvocations}`
  const ok = Health.passed({ memoryOk, responseOk, errorRateOk })
  const details: Health.HealthDetails = {
    memoryOk,
    responseOk,
    errorRateOk,
    lastError,
    consecutiveFailures: ok ? 0 : input.previousFailures + 1
  }
  const status = Health.fromDetails(details, settings.unhealthyAfter)
  const action: HealthAction =
    status !== "Unhealthy" ? "none" : details.consecutiveFailures > settings.failureThreshold ? "fail" : "recover"
  return { details, status, action }
}
