// flaky: healthy for its first N health checks, then unhealthy forever.
// `_recover` does not help. The runtime should count consecutive failures,
// mark it Unhealthy/Failed and evict it with HealthFailure.

/** Status code returned by `_health_check` and `_recover` once broken. */
const UNHEALTHY: i32 = 503

let threshold: i32 = 5
let checks: i32 = 0
let works: i32 = 0
let broken: bool = false

/** Does a unit of work; returns how many times `work` has been called. */
export function work(): i32 {
  works += 1
  return works
}

/** Sets N, the number of health checks that pass before it breaks (default 5). Has no effect once broken. */
export function configure(n: i32): void {
  threshold = n
}

/** 0 for the first N calls, then 503 forever. */
export function _health_check(): i32 {
  checks += 1
  if (broken || checks > threshold) {
    broken = true
    return UNHEALTHY
  }
  return 0
}

/** Tries to recover and fails: returns 503 once broken (0 while still healthy). */
export function _recover(): i32 {
  return broken ? UNHEALTHY : 0
}

/** Number of `_health_check` calls so far. */
export function health_checks(): i32 {
  return checks
}

/** The current threshold N. */
export function threshold_value(): i32 {
  return threshold
}
