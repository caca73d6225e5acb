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
 * Beside the compiled entries it keeps the **load entries** (`LoadEntry`):
 * what `loadModule` learnt about some bytes, keyed by the SHA-256 of the
 * bytes as given — the module hash, the parsed `ModuleInfo` and the
 * verifications that succeeded for them (`VerifiedLoad`: signature, key,
 * name + version). A second `loadModule` of the same bytes hashes them, finds
 * the entry and returns without verifying, parsing or compiling again. Load
 * entries sit in their own LRU under the same byte bound (weighed by the
 * module's byte length) and go with `dropIdle` like compiled ones; the
 * verifications they hold go with them.
 *
 * @since 0.1.0
 */
import type { ModuleInfo } from "@agent-runtime/wasm-binary"
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

/**
 * One verification that succeeded for a load entry's bytes: what the
 * verifier vouched for (spec Invariant 5). A load of the same bytes is served
 * from the cache only with the same name, version and detached signature
 * (the signature covers hash + name + version), and only while the key is
 * still trusted (`ModuleVerifier.trusts`).
 */
export interface VerifiedLoad {
  readonly name: string
  readonly version: string
  /** The detached signature given with the metadata (`.sig` JSON bytes); `undefined` for an embedded one or none. */
  readonly signature: Uint8Array | undefined
  /** The signing key's id; `undefined` for an unsigned module the verifier admitted. */
  readonly keyId: string | undefined
}

/** What `loadModule` learnt about some bytes (see the module doc). */
export interface LoadEntry {
  /** Lowercase hex SHA-256 of the bytes as given (signature sections included): the key. */
  readonly bytesHash: string
  /** The verifier's `ModuleHash` of the bytes (without signature sections). */
  readonly moduleHash: ModuleHash
  /** The parsed module (`@agent-runtime/wasm-binary` `readModule`). */
  readonly info: ModuleInfo
  /** The bytes' length: the entry's weight. */
  readonly size: number
  /** Verifications that succeeded for these bytes; grows as other metadata is verified. */
  readonly verified: Array<VerifiedLoad>
  /** ms since epoch. */
  readonly createdAt: number
  hits: number
  /** ms since epoch of the last hit (or creation). */
  lastAccess: number
}

const sameBytes = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean => {
  if (a === b) return true
  if (a === undefined || b === undefined || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

/** The verification of `entry` for this name, version and detached signature, if one succeeded. */
export const findVerified = (
  entry: LoadEntry,
  subject: { readonly name: string; readonly version: string; readonly signature?: Uint8Array | undefined }
): VerifiedLoad | undefined => {
  for (const v of entry.verified) {
    if (v.name === subject.name && v.version === subject.version && sameBytes(v.signature, subject.signature)) return v
  }
  return undefined
}

/** Counters of a cache since it was made. */
export interface CacheStats {
  /** Compiled entries. */
  readonly entries: number
  /** Weight of the compiled entries, bytes. */
  readonly bytes: number
  readonly hits: number
  readonly misses: number
  readonly evictions: number
  /** Load entries (`LoadEntry`: verified and parsed bytes), beside the compiled entries. */
  readonly loads: number
}

/**
 * The options object handed to lru-cache's `get` / `peek`: one, shared, so a
 * lookup allocates none (lru-cache defaults a missing one to a fresh `{}`,
 * and a spawn looks its compiled variant up twice). lru-cache writes the
 * call's diagnostics `status` into it (an object only while a
 * `diagnostics_channel` subscriber listens, else `undefined`): `looked`
 * clears it after each call, so no call sees another's.
 */
const lookup: { status: LRUCache.Status<any, any> | undefined } = { status: undefined } // `status` present from the start: one shape
const LOOKUP = lookup as { status?: LRUCache.Status<any, any> }

/** `value` after clearing what lru-cache wrote into `LOOKUP` (its `status`). */
const looked = <A>(value: A): A => {
  lookup.status = undefined
  return value
}

export class ModuleCache {
  private readonly lru: LRUCache<string, CacheEntry>
  private readonly loads: LRUCache<string, LoadEntry>
  /** The keys of the compiled entries of each module hash (its variants), so `touchModule` is O(variants), not O(entries). */
  private readonly keysByModule = new Map<ModuleHash, Set<string>>()
  private hitCount = 0
  private missCount = 0
  private evictionCount = 0

  /** `maxBytes`: the total weight the cache may hold (compiled entries; load entries have their own bound of the same size). */
  constructor(readonly maxBytes: number) {
    this.lru = new LRUCache<string, CacheEntry>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.size),
      dispose: (value, key, reason) => {
        if (reason === "evict") this.evictionCount++
        this.unindex(value.moduleHash, key)
      }
    })
    this.loads = new LRUCache<string, LoadEntry>({
      maxSize: maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.size),
      dispose: (_value, key) => this.forgetFingerprint(key)
    })
  }

  /** The fingerprint each load entry was added with (`addLoad`), by bytes hash; `undefined`: added without one. */
  private readonly fingerprintOf = new Map<string, string | undefined>()
  /** How many load entries have each fingerprint. */
  private readonly fingerprints = new Map<string, number>()
  /** Load entries added without a fingerprint (while any is held, `mayHoldLoad` cannot rule bytes out). */
  private unfingerprinted = 0

  private rememberFingerprint(bytesHash: string, fingerprint: string | undefined): void {
    this.fingerprintOf.set(bytesHash, fingerprint)
    if (fingerprint === undefined) this.unfingerprinted++
    else this.fingerprints.set(fingerprint, (this.fingerprints.get(fingerprint) ?? 0) + 1)
  }

  private forgetFingerprint(bytesHash: string): void {
    if (!this.fingerprintOf.has(bytesHash)) return
    const fingerprint = this.fingerprintOf.get(bytesHash)
    this.fingerprintOf.delete(bytesHash)
    if (fingerprint === undefined) this.unfingerprinted--
    else {
      const left = (this.fingerprints.get(fingerprint) ?? 1) - 1
      if (left === 0) this.fingerprints.delete(fingerprint)
      else this.fingerprints.set(fingerprint, left)
    }
  }

  /**
   * Whether a load entry may hold bytes with this `fingerprint` (the
   * domain's cheap sample of the bytes, given to `addLoad`): `false` means
   * no entry does — the bytes are certainly new — so `loadModule` can start
   * reading them before their hash is known. Conservative: `true` while any
   * entry was added without a fingerprint.
   */
  mayHoldLoad(fingerprint: string): boolean {
    return this.unfingerprinted > 0 || this.fingerprints.has(fingerprint)
  }

  /**
   * The load entry of the bytes whose SHA-256 (hex) is `bytesHash`, touching
   * it (`hits`, `lastAccess`); `undefined` when there is none (not counted as
   * a miss: that is the compile cache's counter).
   */
  getLoad(bytesHash: string, now: number): LoadEntry | undefined {
    const entry = looked(this.loads.get(bytesHash, LOOKUP))
    if (entry === undefined) return undefined
    entry.hits++
    entry.lastAccess = now
    return entry
  }

  /**
   * Records a verification of the bytes `bytesHash`: adds `verified` to their
   * load entry, making the entry (with `moduleHash`, `info`, `size`) when there
   * is none. Bytes larger than the whole cache are not kept.
   */
  addLoad(
    input: {
      readonly bytesHash: string
      readonly moduleHash: ModuleHash
      readonly info: ModuleInfo
      readonly size: number
      readonly verified: VerifiedLoad
      /** The bytes' fingerprint (see `mayHoldLoad`); without one the entry keeps `mayHoldLoad` true while it lives. */
      readonly fingerprint?: string | undefined
    },
    now: number
  ): LoadEntry {
    const existing = this.loads.get(input.bytesHash)
    if (existing !== undefined && existing.moduleHash === input.moduleHash) {
      if (findVerified(existing, input.verified) === undefined) existing.verified.push(input.verified)
      existing.lastAccess = now
      return existing
    }
    const entry: LoadEntry = {
      bytesHash: input.bytesHash,
      moduleHash: input.moduleHash,
      info: input.info,
      size: input.size,
      verified: [input.verified],
      createdAt: now,
      hits: 0,
      lastAccess: now
    }
    if (entry.size <= this.maxBytes) {
      this.loads.set(input.bytesHash, entry) // disposes (and forgets the fingerprint of) an entry it replaces first
      this.rememberFingerprint(input.bytesHash, input.fingerprint)
    }
    return entry
  }

  /** Removes the load entry of `bytesHash` and the verifications it holds; `true` if it was there. */
  deleteLoad(bytesHash: string): boolean {
    return this.loads.delete(bytesHash)
  }

  /** All load entries, most recently used first. */
  loadEntries(): ReadonlyArray<LoadEntry> {
    return [...this.loads.values()]
  }

  /** Looks an entry up, recording a hit (`hits`, `lastAccess`) or a miss. */
  get(key: string, now: number): CacheEntry | undefined {
    const entry = looked(this.lru.get(key, LOOKUP))
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
   * Cost: the module's variants (an index by module hash), not the cache's size.
   */
  touchModule(moduleHash: ModuleHash, now: number): void {
    this.hitCount++
    const keys = this.keysByModule.get(moduleHash)
    if (keys === undefined) return
    for (const key of keys) {
      const entry = looked(this.lru.peek(key, LOOKUP))
      if (entry !== undefined) {
        entry.hits++
        entry.lastAccess = now
      }
    }
  }

  /** Forgets `key` as a variant of `moduleHash` (its entry left the cache). */
  private unindex(moduleHash: ModuleHash, key: string): void {
    const keys = this.keysByModule.get(moduleHash)
    if (keys === undefined) return
    keys.delete(key)
    if (keys.size === 0) this.keysByModule.delete(moduleHash)
  }

  /** Looks an entry up without counting or touching it. */
  peek(key: string): CacheEntry | undefined {
    return looked(this.lru.peek(key, LOOKUP))
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
    if (entry.size <= this.maxBytes) {
      this.lru.set(key, entry) // disposes (and unindexes) an entry it replaces first
      let keys = this.keysByModule.get(entry.moduleHash)
      if (keys === undefined) this.keysByModule.set(entry.moduleHash, (keys = new Set()))
      keys.add(key)
    }
    return entry
  }

  /** Removes an entry; `true` if it was there. */
  delete(key: string): boolean {
    return this.lru.delete(key)
  }

  /**
   * Removes every entry whose last access is older than `maxIdleMs` at `now`;
   * returns the keys of the compiled entries removed. Idle load entries go
   * too, with their verifications (not in the returned keys).
   */
  dropIdle(now: number, maxIdleMs: number): ReadonlyArray<string> {
    const stale: Array<string> = []
    for (const [key, entry] of this.lru.entries()) {
      if (now - entry.lastAccess > maxIdleMs) stale.push(key)
    }
    for (const key of stale) this.lru.delete(key)
    const staleLoads: Array<string> = []
    for (const [key, entry] of this.loads.entries()) {
      if (now - entry.lastAccess > maxIdleMs) staleLoads.push(key)
    }
    for (const key of staleLoads) this.loads.delete(key)
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
      evictions: this.evictionCount,
      loads: this.loads.size
    }
  }
}
