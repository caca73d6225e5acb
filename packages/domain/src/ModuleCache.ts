/**
 * The compile cache (spec `module_cache: LruCache<ModuleHash, CompiledModule>`
 * and "Value Objects / CacheEntry"; DESIGN.md "Compile cache").
 *
 * An `lru-cache` bounded in **bytes** (each entry weighs its module's byte
 * length) holding `CacheEntry` values with hit counts and last access, so the
 * `MemoryManager` can drop entries idle longer than a setting (DESIGN.md
 * known defect 6: the spec reads `last_access` from `CompiledModule`, which
 * only `CacheEntry` has). Times are ms since the Unix epoch, passed in from
 * Effect's `Clock` by the caller — the cache itself reads no clock.
 *
 * The key is a string: the module hash today; rewriting adapters (memory
 * caps) extend it with their parameters so differently rewritten modules
 * never share an entry.
 *
 * @since 0.1.0
 */
import { LRUCache } from "lru-cache"
import type { ModuleHash } from "./Ids.js"
import type { CompiledModule } from "./WasmEngine.js"

/** A cached compilation (spec `CacheEntry`). */
export interface CacheEntry {
  readonly key: string
  readonly moduleHash: ModuleHash
  readonly compiled: CompiledModule
  /** Bytes the entry weighs (the module's byte length). */
  readonly size: number
  /** ms since epoch. */
  readonly createdAt: number
  hits: number
  /** ms since epoch of the last hit (or creation). */
  lastAccess: number
}

/** Age of an entry in ms at `now` (spec `CacheEntry::age`). */
export const age = (entry: CacheEntry, now: number): number => now - entry.createdAt

/** Counters of a cache since it was made. */
export interface CacheStats {
  readonly entries: number
  readonly bytes: number
  readonly hits: number
  readonly misses: number
  readonly evictions: number
}

export class ModuleCache {
  private readonly lru: LRUCache<string, CacheEntry>
  private hitCount = 0
  private missCount = 0
  private evictionCount = 0

  /** `maxBytes`: the total weight the cache may hold. */
  constructor(readonly maxBytes: number) {
    this.lru = new LRUCache<string, CacheEntry>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.size),
      dispose: (_value, _key, reason) => {
        if (reason === "evict") this.evictionCount++
      }
    })
  }

  /** Looks an entry up, recording a hit (`hits`, `lastAccess`) or a miss. */
  get(key: string, now: number): CacheEntry | undefined {
    const entry = this.lru.get(key)
    if (entry === undefined) {
      this.missCount++
      return undefined
    }
    this.hitCount++
    entry.hits++
    entry.lastAccess = now
    return entry
  }

  /**
   * Records a hit for a module that is loaded again: touches (hits,
   * `lastAccess`) every compiled variant of that module hash; counts one hit.
   */
  touchModule(moduleHash: ModuleHash, now: number): void {
    this.hitCount++
    for (const entry of this.lru.values()) {
      if (entry.moduleHash === moduleHash) {
        entry.hits++
        entry.lastAccess = now
      }
    }
  }

  /** Looks an entry up without counting or touching it. */
  peek(key: string): CacheEntry | undefined {
    return this.lru.peek(key)
  }

  /** Inserts a compiled module. Larger than the whole cache → not cached. */
  set(key: string, compiled: CompiledModule, now: number): CacheEntry {
    const entry: CacheEntry = {
      key,
      moduleHash: compiled.hash,
      compiled,
      size: compiled.byteLength,
      createdAt: now,
      hits: 0,
      lastAccess: now
    }
    if (entry.size <= this.maxBytes) this.lru.set(key, entry)
    return entry
  }

  /** Removes an entry; `true` if it was there. */
  delete(key: string): boolean {
    return this.lru.delete(key)
  }

  /** Removes every entry whose last access is older than `maxIdleMs` at `now`; returns the keys removed. */
  dropIdle(now: number, maxIdleMs: number): ReadonlyArray<string> {
    const stale: Array<string> = []
    for (const [key, entry] of this.lru.entries()) {
      if (now - entry.lastAccess > maxIdleMs) stale.push(key)
    }
    for (const key of stale) this.lru.delete(key)
    return stale
  }

  /** All entries, most recently used first. */
  entries(): ReadonlyArray<CacheEntry> {
    return [...this.lru.values()]
  }

  stats(): CacheStats {
    return {
      entries: this.lru.size,
      bytes: this.lru.calculatedSize,
      hits: this.hitCount,
      misses: this.missCount,
      evictions: this.evictionCount
    }
  }
}
