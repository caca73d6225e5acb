// lifecycle: exercises every lifecycle export. Nothing runs at instantiation
// (the module has no start function); the runtime calls `_initialize` on
// start, `_cleanup` on stop, `_health_check` to probe and `_recover` when
// unhealthy.

/** Status code `_health_check` returns while broken. */
const BROKEN: i32 = 2

let isInitialized: i32 = 0
let stateValue: i32 = 0
let cleanups: i32 = 0
let broken: i32 = 0
let recoveries: i32 = 0
let initializations: i32 = 0

/** Called once on start: marks the agent initialized and sets its state to 100. */
export function _initialize(): void {
  isInitialized = 1
  stateValue = 100
  initializations += 1
}

/** Called on stop: records the cleanup (the count survives in a global) and clears `initialized`. */
export function _cleanup(): void {
  cleanups += 1
  isInitialized = 0
}

/** 0 when healthy; 2 after `break_health()` until `_recover()`. */
export function _health_check(): i32 {
  return broken != 0 ? BROKEN : 0
}

/** Fixes what `break_health` broke. Returns 0 (recovered). */
export function _recover(): i32 {
  broken = 0
  recoveries += 1
  return 0
}

/** Makes `_health_check` fail until `_recover` is called. */
export function break_health(): void {
  broken = 1
}

/** The state value (100 after `_initialize`, 0 before). */
export function state(): i32 {
  return stateValue
}

/** Adds 1 to the state and returns it. */
export function bump(): i32 {
  stateValue += 1
  return stateValue
}

/** 1 after `_initialize`, 0 before it and after `_cleanup`. */
export function initialized(): i32 {
  return isInitialized
}

/** How many times `_initialize` ran. */
export function initializations_count(): i32 {
  return initializations
}

/** How many times `_cleanup` ran. */
export function cleanups_count(): i32 {
  return cleanups
}

/** How many times `_recover` ran. */
export function recoveries_count(): i32 {
  return recoveries
}
