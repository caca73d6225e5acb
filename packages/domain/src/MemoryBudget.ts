/**
 * `MemoryBudget` (spec "Value Objects / MemoryBudget"): an agent's memory
 * limit and its observed linear-memory usage, in bytes.
 *
 * `used` is what the engine reported after the last call
 * (`memory.buffer.byteLength`); `peak` is the largest `used` seen.
 * A budget is exceeded when `used > limit` — with hard caps (memory maximum
 * rewritten to the budget) that cannot happen; without them the runtime
 * refuses further invocations with `MemoryExceeded`.
 *
 * @since 0.1.0
 */

/** Bytes in one WebAssembly page (64 KiB). */
export const PAGE_BYTES = 65_536
/** One mebibyte in bytes. */
export const MiB = 1_048_576

export interface MemoryBudget {
  /** Hard limit in bytes. */
  readonly limit: number
  /** Linear memory in use, bytes (last report). */
  readonly used: number
  /** Largest `used` observed, bytes. */
  readonly peak: number
}

/** A fresh budget of `limit` bytes with nothing used. */
export const make = (limit: number): MemoryBudget => ({ limit, used: 0, peak: 0 })

/** Records a usage report (spec `record_usage`): sets `used`, raises `peak`. */
export const recordUsage = (budget: MemoryBudget, bytes: number): MemoryBudget => ({
  limit: budget.limit,
  used: bytes,
  peak: Math.max(budget.peak, bytes)
})

/** `used > limit` (spec `is_exceeded`). */
export const isExceeded = (budget: MemoryBudget): boolean => budget.used > budget.limit

/** `used / limit`, in [0, ∞) (spec `utilization`); 0 for a zero limit. */
export const utilization = (budget: MemoryBudget): number => (budget.limit === 0 ? 0 : budget.used / budget.limit)

/** Bytes left before the limit, never negative (spec `remaining`). */
export const remaining = (budget: MemoryBudget): number => Math.max(0, budget.limit - budget.used)
