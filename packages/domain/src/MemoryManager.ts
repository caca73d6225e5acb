/**
 * `MemoryManager` (spec "Domain Services / MemoryManager"): when to collect
 * and what a collection did.
 *
 * A collection drops compile-cache entries idle longer than `maxIdleMs`
 * (default 1 h; reading `last_access` from `CacheEntry`, DESIGN.md known
 * defect 6). Linear memory cannot shrink in WebAssembly (known defect 5:
 * there is no `compact_memory`); compaction is **passivation**: when enabled,
 * instances idle longer than `passivateIdleMs` are snapshotted to the
 * `InstanceRepository` and released, and rehydrated on their next call.
 * `compactedInstances` counts them.
 *
 * @since 0.1.0
 */

/** Settings; times in ms. */
export interface GcSettings {
  /** Collect at least this often (spec `gc_interval`). */
  readonly intervalMs: number
  /** Cache entries idle longer than this are dropped (default 1 h). */
  readonly maxIdleMs: number
  /**
   * Passivate (snapshot + release) instances idle longer than this, ms, in GC
   * and under memory pressure; `undefined` (default) disables passivation.
   * `Critical` agents are never passivated.
   */
  readonly passivateIdleMs?: number | undefined
}

export const defaultSettings: GcSettings = { intervalMs: 5 * 60_000, maxIdleMs: 60 * 60_000 }

/** What a collection did (spec `GCResult`); memory in bytes, duration in ms. */
export interface GcResult {
  readonly duration: number
  readonly memoryBefore: number
  readonly memoryAfter: number
  readonly evictedModules: number
  readonly compactedInstances: number
}

/** GC is needed when the pool is under pressure or the interval has passed (spec `needs_gc`). */
export const needsGc = (input: {
  readonly underPressure: boolean
  readonly lastGc: number
  readonly now: number
  readonly settings: GcSettings
}): boolean => input.underPressure || input.now - input.lastGc > input.settings.intervalMs
