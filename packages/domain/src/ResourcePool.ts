/**
 * `ResourcePool` (spec "Entities / ResourcePool"): the memory, threads and
 * handles shared by all agents of a runtime, with pressure thresholds.
 *
 * Memory is tracked per owner (agent id): each owner has a *reservation*
 * (bytes admitted at spawn) and a *resident* size (its linear memory and
 * tables, as last reported). The pool counts `max(reservation, resident)`
 * per owner, so an agent that grows beyond its reservation raises the pool's
 * usage.
 *
 * Spec invariant 1 ("total allocated never exceeds the pool") holds strictly
 * by default: an agent is admitted against its `memoryLimit`, the most it can
 * ever hold (with `limits.memoryCap` on, its memory and tables are capped to
 * it), so Σ over agents of what they can grow to ≤ `totalMemory`. With
 * `overcommit: true` an agent is admitted against its (smaller)
 * `memoryReservation` instead, like a Kubernetes memory *request*: the
 * invariant then holds for reservations only, and growth above them — which
 * may take `usedMemory()` past `totalMemory` — is what memory-pressure
 * handling evicts (issue 12 item 9).
 *
 * Every operation is one synchronous step, so check-and-reserve is atomic
 * (DESIGN.md known defect 4: the spec's `allocate_memory` loads, compares and
 * adds separately, so two racing allocations can both pass the check).
 *
 * The pool is a mutable entity owned by the `RuntimeEnvironment` aggregate;
 * only the aggregate (serialised by `AgentRuntime`) changes it.
 *
 * Its limits are one setting for the whole program: the `ResourcePoolConfig`
 * reference (default `defaultPoolConfig`), read by the runtime's layer (its
 * pool) and by the worker engines' layers (their thread count), so the
 * number of worker threads is written once. Explicit options still win
 * (`SettingsInput.pool`, an engine's `maxThreads`); the runtime then enforces
 * the limit: at start it takes the engine's threads
 * (`WasmEngineShape.threads`) from its pool and fails with
 * `ResourceExhausted { resource: "threads" }` when the engine runs more.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import type { AgentId } from "./Ids.js"
import { MiB } from "./MemoryBudget.js"
import * as PressureLevel from "./PressureLevel.js"
import { InsufficientMemory, ResourceExhausted } from "./RuntimeError.js"

/** Limits and thresholds of a pool. Memory in bytes; thresholds are ratios in (0, 1]. */
export interface ResourcePoolConfig {
  readonly totalMemory: number
  /**
   * Worker threads available to engines (0 = in-process engines only); a
   * worker engine runs this many (its pool size) unless given its own
   * `maxThreads`, and a runtime refuses an engine that runs more.
   */
  readonly maxThreads: number
  /** Open handles (files, sockets, preopens) available to agents. */
  readonly maxHandles: number
  /**
   * Live agent instances at most (default `DEFAULT_MAX_INSTANCES`, 10 000): a
   * spawn beyond it fails with `ResourceExhausted { resource: "instances" }`
   * before the engine is asked. V8 reserves 10 GiB of address space per
   * linear memory on 64-bit hosts with trap handlers (guard regions instead
   * of bounds checks) and refuses new memories at ~12 800 live ones per
   * process (a 128 TiB address space): past that wall `new WebAssembly.Memory`
   * throws a `RangeError` for every engine in the process. 10 000 keeps a
   * margin of ~2 800 memories for whatever else the process instantiates.
   * Optional: a config without it gets the default.
   */
  readonly maxInstances?: number | undefined
  /**
   * Admit agents against their `memoryReservation` instead of their
   * `memoryLimit` (default `false`). Off, the pool's usage can never exceed
   * `totalMemory` while memory caps are on (spec invariant 1, strictly); on,
   * only Σ reservations ≤ `totalMemory` holds and agents that grow past
   * their reservations can take the usage above 100 % until memory-pressure
   * handling passivates or evicts them. Optional: a config without it gets `false`.
   */
  readonly overcommit?: boolean | undefined
  readonly thresholds: PressureLevel.PressureThresholds
}

/** One owner's memory (spec `MemoryAllocation`), bytes; `allocatedAt` ms since epoch. */
export interface MemoryAllocation {
  readonly owner: AgentId
  readonly reserved: number
  readonly resident: number
  readonly allocatedAt: number
}

/** The default of `ResourcePoolConfig.maxInstances`: 10 000, safely under V8's ~12 800 memories per process. */
export const DEFAULT_MAX_INSTANCES = 10_000

/** The default of `ResourcePoolConfig.maxThreads`: 4 worker threads. */
export const DEFAULT_MAX_THREADS = 4

/** The default pool: 1 GiB, `DEFAULT_MAX_THREADS` threads, 1024 handles, the spec's pressure thresholds. */
export const defaultPoolConfig: ResourcePoolConfig = {
  totalMemory: 1024 * MiB,
  maxThreads: DEFAULT_MAX_THREADS,
  maxHandles: 1024,
  thresholds: PressureLevel.defaultThresholds
}

/**
 * The one pool setting of a program (a `Context.Reference`: without a
 * provided value it is `defaultPoolConfig`). `AgentRuntimes.layer` builds its
 * pool from it (fields of `SettingsInput.pool` win); the worker engines'
 * layers (`NodeEngine.layerWith`, `BrowserEngine.layerWith`) size their
 * worker pool from its `maxThreads` (their own `maxThreads` wins). Provide
 * it once, around both, with `layerPoolConfig`.
 *
 * @example
 * ```ts
 * const Live = AgentRuntimes.layerMemory().pipe(
 *   Layer.provideMerge(Layer.mergeAll(NodeEngine.layer, verifier)),
 *   Layer.provide(layerPoolConfig({ maxThreads: 8 })) // 8 workers, 8 threads in the pool
 * )
 * ```
 */
export const ResourcePoolConfig: Context.Reference<ResourcePoolConfig> = Context.Reference<ResourcePoolConfig>(
  "@agent-runtime/domain/ResourcePool/ResourcePoolConfig",
  { defaultValue: () => defaultPoolConfig }
)

/** Provides `ResourcePoolConfig`: `defaultPoolConfig` with `overrides`. */
export const layerPoolConfig = (overrides: Partial<ResourcePoolConfig> = {}): Layer.Layer<never> =>
  Layer.succeed(ResourcePoolConfig, { ...defaultPoolConfig, ...overrides })

export class ResourcePool {
  readonly config: ResourcePoolConfig
  private readonly allocations = new Map<AgentId, MemoryAllocation>()
  private used = 0
  private reservedTotal = 0
  private threadsInUse = 0
  private handlesInUse = 0

  constructor(config: ResourcePoolConfig) {
    this.config = config
  }

  /** Total memory of the pool, bytes. */
  get totalMemory(): number {
    return this.config.totalMemory
  }

  /** Memory counted against the pool: Σ max(reservation, resident), bytes (spec `used_memory`). */
  usedMemory(): number {
    return this.used
  }

  /** Σ reservations, bytes. */
  reservedMemory(): number {
    return this.reservedTotal
  }

  /** Memory not counted against anyone, bytes, never negative (spec `available_memory`). */
  availableMemory(): number {
    return Math.max(0, this.config.totalMemory - this.used)
  }

  /** `used / total` (0 for an empty pool). */
  usage(): number {
    return this.config.totalMemory === 0 ? 0 : this.used / this.config.totalMemory
  }

  /** The pressure level of the current usage. */
  pressureLevel(): PressureLevel.PressureLevel {
    return PressureLevel.fromRatio(this.usage(), this.config.thresholds)
  }

  /** Usage above the warning threshold (spec `is_under_pressure`, `memory_pressure_threshold`). */
  isUnderPressure(): boolean {
    return this.usage() > this.config.thresholds.warning
  }

  /** Usage above the critical threshold (spec `is_critical`). */
  isCritical(): boolean {
    return this.usage() > this.config.thresholds.critical
  }

  /** The allocation of an owner, if any. */
  allocation(owner: AgentId): MemoryAllocation | undefined {
    return this.allocations.get(owner)
  }

  /** Number of owners holding memory. */
  get owners(): number {
    return this.allocations.size
  }

  /**
   * Reserves `requested` bytes for `owner` in one atomic step (spec
   * `allocate_memory`). Fails with `InsufficientMemory { requested, available }`
   * when the pool cannot hold it. An owner holds at most one allocation: a
   * second call replaces the reservation (used when a prepared reservation is
   * confirmed by a spawn with another size).
   */
  allocateMemory(owner: AgentId, requested: number, now: number): MemoryAllocation | InsufficientMemory {
    const previous = this.allocations.get(owner)
    const previousCharge = previous === undefined ? 0 : Math.max(previous.reserved, previous.resident)
    const resident = previous?.resident ?? 0
    const charge = Math.max(requested, resident)
    const available = this.config.totalMemory - (this.used - previousCharge)
    if (charge > available) {
      return new InsufficientMemory({ requested, available: Math.max(0, available) })
    }
    const allocation: MemoryAllocation = { owner, reserved: requested, resident, allocatedAt: now }
    this.allocations.set(owner, allocation)
    this.used += charge - previousCharge
    this.reservedTotal += requested - (previous?.reserved ?? 0)
    return allocation
  }

  /**
   * Records an owner's resident linear memory (bytes). Growth beyond the
   * reservation raises `usedMemory()`; it is never refused here (the memory
   * already exists) — pressure handling reacts to it.
   */
  recordResident(owner: AgentId, bytes: number): void {
    const a = this.allocations.get(owner)
    if (a === undefined || a.resident === bytes) return
    const before = Math.max(a.reserved, a.resident)
    const after = Math.max(a.reserved, bytes)
    // written out, not spread (every spawn and every call whose memory grew): same fields, same order
    this.allocations.set(owner, { owner: a.owner, reserved: a.reserved, resident: bytes, allocatedAt: a.allocatedAt })
    this.used += after - before
  }

  /** Releases an owner's memory (spec `release_memory`); returns the bytes it counted for. */
  releaseMemory(owner: AgentId): number {
    const a = this.allocations.get(owner)
    if (a === undefined) return 0
    const charge = Math.max(a.reserved, a.resident)
    this.allocations.delete(owner)
    this.used -= charge
    this.reservedTotal -= a.reserved
    return charge
  }

  /** Whether agents are admitted against their reservation rather than their limit (`config.overcommit`, default false). */
  get overcommit(): boolean {
    return this.config.overcommit === true
  }

  /** Live instances at most (`config.maxInstances`, else `DEFAULT_MAX_INSTANCES`). */
  get maxInstances(): number {
    return this.config.maxInstances ?? DEFAULT_MAX_INSTANCES
  }

  /**
   * Whether one more instance may be created when `live` are alive; fails
   * with `ResourceExhausted { resource: "instances", requested: 1, available }`
   * at `maxInstances`.
   */
  admitInstance(live: number): void | ResourceExhausted {
    if (live >= this.maxInstances) {
      return new ResourceExhausted({
        resource: "instances",
        requested: 1,
        available: Math.max(0, this.maxInstances - live)
      })
    }
  }

  /** Takes `n` threads; fails with `ResourceExhausted` beyond `maxThreads`. */
  acquireThreads(n: number): void | ResourceExhausted {
    if (this.threadsInUse + n > this.config.maxThreads) {
      return new ResourceExhausted({
        resource: "threads",
        requested: n,
        available: this.config.maxThreads - this.threadsInUse
      })
    }
    this.threadsInUse += n
  }

  /** Returns `n` threads. */
  releaseThreads(n: number): void {
    this.threadsInUse = Math.max(0, this.threadsInUse - n)
  }

  /** Takes `n` handles; fails with `ResourceExhausted` beyond `maxHandles`. */
  acquireHandles(n: number): void | ResourceExhausted {
    if (this.handlesInUse + n > this.config.maxHandles) {
      return new ResourceExhausted({
        resource: "handles",
        requested: n,
        available: this.config.maxHandles - this.handlesInUse
      })
    }
    this.handlesInUse += n
  }

  /** Returns `n` handles. */
  releaseHandles(n: number): void {
    this.handlesInUse = Math.max(0, this.handlesInUse - n)
  }

  /** Worker threads the pool allows (`config.maxThreads`). */
  get maxThreads(): number {
    return this.config.maxThreads
  }

  /** Threads and handles in use. */
  usageCounts(): { readonly threads: number; readonly handles: number } {
    return { threads: this.threadsInUse, handles: this.handlesInUse }
  }
}
