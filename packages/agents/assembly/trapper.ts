// trapper: every way a WebAssembly call can trap, plus one that does not.

/** Signed i32 division: traps "divide by zero" when b = 0 (and "divide result unrepresentable" for i32.MIN / -1). */
export function divide(a: i32, b: i32): i32 {
  return a / b
}

/** Executes `unreachable`. */
export function crash(): void {
  unreachable()
}

/** Loads 4 bytes near the top of the 32-bit address space: "memory access out of bounds". */
export function oob(): i32 {
  return load<i32>(<usize>0xfffffff0)
}

/** Non-tail recursion `n` deep; returns n. A huge n overflows the host's call stack. */
export function recurse(n: i32): i32 {
  if (n <= 0) return 0
  return recurse(n - 1) + 1
}

/** Returns 42 without trapping. */
export function ok(): i32 {
  return 42
}
