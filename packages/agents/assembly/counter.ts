// counter: a stateful agent. All state lives in one mutable global, so a
// snapshot of globals + memory restores the count exactly.

let count: i32 = 0

/** Adds 1 and returns the new count. */
export function increment(): i32 {
  count += 1
  return count
}

/** Adds `n` (may be negative) and returns the new count. */
export function add(n: i32): i32 {
  count += n
  return count
}

/** Returns the current count. */
export function get(): i32 {
  return count
}

/** Sets the count back to 0. */
export function reset(): void {
  count = 0
}

/** 64-bit addition (wrapping), so hosts exercise i64 <-> bigint. */
export function add_i64(a: i64, b: i64): i64 {
  return a + b
}

/** Always healthy. */
export function _health_check(): i32 {
  return 0
}
