// leaky: leaks memory on every call. Each `leak(kib)` takes `kib` KiB from the
// heap, writes every byte (so the pages are really touched) and never frees
// them. The heap grows linear memory with `memory.grow` as it needs pages.
// When it cannot grow (the memory's maximum, a host budget, 4 GiB) the call
// traps with `unreachable`.

/** The most one call may leak: just under the allocator's 1 GiB block limit. */
const MAX_KIB: i32 = (1 << 20) - 1

let leakedKiB: i32 = 0
let calls: i32 = 0

/**
 * Allocates and keeps `kib` KiB (1 KiB = 1024 bytes). Returns the total leaked KiB so far.
 * `kib <= 0` leaks nothing; `kib` over 1 GiB - 1 KiB, or memory that cannot grow, traps (`unreachable`).
 */
export function leak(kib: i32): i32 {
  calls += 1
  if (kib <= 0) return leakedKiB
  if (kib > MAX_KIB) unreachable()
  const size = <usize>kib << 10
  const ptr = heap.alloc(size)
  // Touch every byte: a different value per call so the pages are not all zero.
  memory.fill(ptr, <u8>(calls & 0xff) | 1, size)
  leakedKiB += kib
  return leakedKiB
}

/** Total KiB leaked so far. */
export function leaked(): i32 {
  return leakedKiB
}

/** Number of `leak` calls so far. */
export function calls_made(): i32 {
  return calls
}

/** Current linear memory size in 64 KiB pages. */
export function pages(): i32 {
  return memory.size()
}

/** Always healthy: leaking is not a health failure, memory pressure is the host's job. */
export function _health_check(): i32 {
  return 0
}
