/**
 * The synchronous core of `Instance` (see `Instance.ts` for what it maps):
 * one live instance on the current thread, every operation returning its
 * typed error as a value. Its errors are the plain tagged errors of
 * `./errors.ts`, and it imports nothing at run time but
 * `@agent-runtime/wasm-binary`'s constants, so the worker executor, which
 * runs it inside every worker, bundles without Schema or Effect.
 *
 * @since 0.3.0
 */
import type {
  CallSlot,
  EngineChanges,
  EngineState,
  HostImports,
  HostMemory,
  InvokeOutcome,
  WasmValue
} from "@agent-runtime/domain"
import {
  DIRTY_PAGES_EXPORT,
  FUEL_EXPORT,
  FUEL_IMPORT_MODULE,
  FUEL_IMPORT_NAME,
  FUEL_SECTION,
  START_EXPORT,
  TABLE_ENTRY_BYTES
} from "@agent-runtime/wasm-binary"
import { FuelExhausted, FunctionNotFound, InstantiationError, MemoryExceeded, Trap } from "./errors.js"
import { nonZeroPages, type PageChanges, pageChanges } from "./dirty.js"
import {
  enterShared,
  enterTop,
  type FuelAccess,
  fuelAccess,
  leaveShared,
  leaveTop,
  type SharedFuel,
  sharedFuel,
  sharedFuelIfMade
} from "./fuel.js"
import { isSharedBuffer, keptBytes, memorySize } from "./memorySize.js"
import { PAGE_BYTES } from "./pages.js"
import { trampoline } from "./trampoline.js"

export { FuelExhausted, FunctionNotFound, InstantiationError, MemoryExceeded, Trap } from "./errors.js"
export type { CoreError } from "./errors.js"

// -----------------------------------------------------------------------------
// types
// -----------------------------------------------------------------------------

/** How to instantiate (all optional). `E` is what `mapThrown` may turn an exception into. */
export interface InstanceConfig<E extends Error = never> {
  /**
   * An imported memory to create (`new WebAssembly.Memory({ initial, maximum,
   * shared })`, sizes in pages of 64 KiB) when `imports` does not provide it:
   * the domain's `InstantiateOptions.memory`, the agent's budget as maximum.
   */
  readonly memory?: HostMemory | undefined
  /** Linear memory allowed right after instantiation, in bytes; above it → `MemoryExceeded`. */
  readonly memoryLimit?: number | undefined
  /** The agent named in `MemoryExceeded` (default `"instantiate"`). */
  readonly agentId?: string | undefined
  /** The `InstantiationError` reason when `module` is not a `WebAssembly.Module`. */
  readonly notAModule?: string | undefined
  /**
   * Asked first (after the fuel check) for an exception thrown out of a guest
   * call or the start function; `undefined` → the default mapping (`mapCallError`).
   */
  readonly mapThrown?: ((fn: string, error: unknown) => E | undefined) | undefined
  /**
   * `changes` reads the module's dirty-page write barrier (wasm-binary
   * `DirtyPages.ts`, the `DIRTY_PAGES_EXPORT` bitmap) when it has one: it
   * reports the pages stored to since its previous call, as views of the
   * memory (`dirty.ts` `pageChanges`; nothing is copied or kept). The
   * instance must be the bitmap's only reader (not so in a worker, whose
   * executor reads it after every call). Ignored — `changes` always returns
   * `undefined` — for a module without the bitmap, a memory the module
   * imports (its holder may write it unseen) and a shared memory. `snapshot`
   * scans every page either way.
   */
  readonly dirtyPages?: boolean | undefined
}

/** What a call can fail with, as a value. */
export type CallError<E extends Error = never> = Trap | FunctionNotFound | FuelExhausted | E

/** A synchronous caller of one resolved export; never throws. `fuel` in fuel units. */
export type Call<E extends Error = never> = (
  args: ReadonlyArray<WasmValue>,
  fuel?: number | undefined
) => InvokeOutcome | CallError<E>

/**
 * The allocation-free form of `Call` (the domain's `DirectInvoke`): returns
 * `undefined` after writing the outcome to `slot` (the export's raw return
 * value, memory bytes, fuel left), or the error as a value; never throws.
 */
export type DirectCall<E extends Error = never> = (
  args: ReadonlyArray<WasmValue>,
  fuel: number | undefined,
  slot: CallSlot
) => CallError<E> | undefined

/** An export's function type, value type names as in wasm-binary's `FuncType` (`"i32"`, `"i64"`, `"f32"`, `"f64"`, …). */
export interface CallType {
  readonly params: ReadonlyArray<string>
  readonly results: ReadonlyArray<string>
}

/** One live instance; every operation is synchronous and returns its error as a value. */
export interface LiveInstance<E extends Error = never> {
  /** The instance's exports (as instantiated; still readable after `terminate`). */
  readonly exports: WebAssembly.Exports
  /** The exported, else imported, linear memory. */
  readonly memory: WebAssembly.Memory | undefined
  /**
   * The fuel counter when the module is instrumented: its own (`FUEL_EXPORT`),
   * or — a module that imports its counter — the thread's shared counter
   * (`fuel.ts` `sharedFuel`), whose value between calls belongs to no instance.
   */
  readonly fuel: WebAssembly.Global | undefined
  /** Exported mutable globals by export name, without the fuel counter (what a snapshot holds). */
  readonly globals: ReadonlyArray<readonly [string, WebAssembly.Global]>
  /** Memory usage in bytes: linear memory (0 without) + visible table entries × `TABLE_ENTRY_BYTES`. */
  readonly memoryBytes: () => number
  /** Linear memory size in bytes (0 without memory): what a snapshot holds. */
  readonly linearBytes: () => number
  /** True once `terminate` ran. */
  readonly terminated: () => boolean
  /** Resolves an export once; `undefined` when it is not a function. */
  readonly prepare: (fn: string) => Call<E> | undefined
  /**
   * `prepare` without an outcome object per call (`DirectCall`): same calls, results and errors. With the
   * export's `type` (its signature as read from the binary; a wrong one is detected and ignored), a metered
   * call makes one JS→wasm transition instead of three (`trampoline.ts`) where the host compiles at run time.
   */
  readonly prepareDirect: (fn: string, type?: CallType) => DirectCall<E> | undefined
  /** Calls an export (`FunctionNotFound` when it is not a function). */
  readonly call: (fn: string, args: ReadonlyArray<WasmValue>, fuel?: number | undefined) => InvokeOutcome | CallError<E>
  /** Copies `length` bytes at `offset` out of linear memory; out of bounds → `Trap`. */
  readonly read: (offset: number, length: number) => Uint8Array | Trap
  /** Copies `bytes` into linear memory at `offset`; out of bounds → `Trap`. */
  readonly write: (offset: number, bytes: Uint8Array) => Trap | undefined
  /** Non-zero pages (fresh copies) + mutable globals; neither reads nor clears the barrier's record. */
  readonly snapshot: () => EngineState | Trap
  /**
   * What changed since the previous call (the domain's `WasmInstance.snapshotChanges`:
   * pages as views of the memory), or `undefined` when it cannot vouch for it
   * (see there and `InstanceConfig.dirtyPages`); reads and clears the barrier.
   */
  readonly changes: (restart: boolean) => EngineChanges | undefined | Trap
  /** Overwrites memory (growing it when needed) and globals; growth refused → `MemoryExceeded`. */
  readonly restore: (state: EngineState) => Trap | MemoryExceeded | undefined
  /** Makes every later operation fail with `Trap` "instance terminated". Idempotent. */
  readonly terminate: () => void
}

/** What `instantiate` can fail with. */
export type InstantiateError<E extends Error = never> = InstantiationError | Trap | FuelExhausted | MemoryExceeded | E

// -----------------------------------------------------------------------------
// error mapping
// -----------------------------------------------------------------------------

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * The reason an exception thrown out of a guest call becomes (WebAssembly JS
 * API §"Error Objects"): a `RuntimeError`'s message, "call stack exhausted
 * (…)", "type error at the JS boundary: …" or "host function threw: …".
 */
export const callErrorReason = (e: unknown): string => {
  if (e instanceof WebAssembly.RuntimeError) return e.message
  if (e instanceof RangeError && /call stack/i.test(e.message)) return `call stack exhausted (${e.message})`
  if (e instanceof TypeError) return `type error at the JS boundary: ${e.message}`
  return `host function threw: ${message(e)}`
}

/** Maps an exception thrown out of a call into the guest (export `fn`) to a `Trap`. */
export const mapCallError = (fn: string, e: unknown): Trap => new Trap({ function: fn, reason: callErrorReason(e) })

/**
 * Maps an exception of `new WebAssembly.Instance` / `new WebAssembly.Memory`
 * to a typed error: `LinkError` / `TypeError` → `InstantiationError`, a
 * memory `RangeError` → `InstantiationError`, else `undefined` (a trap in the
 * start function: map it as a call of `(start)`).
 */
export const instantiationError = (e: unknown): InstantiationError | undefined => {
  // LinkError: an import of the wrong kind or type; TypeError: an import module or value is missing
  if (e instanceof WebAssembly.LinkError || e instanceof TypeError) return new InstantiationError({ reason: e.message })
  if (e instanceof RangeError && /memory/i.test(e.message)) {
    return new InstantiationError({ reason: `cannot allocate linear memory: ${e.message}` })
  }
  return undefined
}

// -----------------------------------------------------------------------------
// the synchronous core
// -----------------------------------------------------------------------------

const findMemory = (exports: WebAssembly.Exports, imports: WebAssembly.Imports): WebAssembly.Memory | undefined => {
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Memory) return v
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Memory) return v
  }
  return undefined
}

/** The exported and imported tables (each once). */
const findTables = (exports: WebAssembly.Exports, imports: WebAssembly.Imports): Array<WebAssembly.Table> => {
  const tables = new Set<WebAssembly.Table>()
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Table) tables.add(v)
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Table) tables.add(v)
  }
  return [...tables]
}

/**
 * Where an instance of one compiled module finds its linear memory and its
 * tables: read once per `WebAssembly.Module` from its export and import
 * descriptors (`WebAssembly.Module.exports` / `imports`), so a spawn looks
 * them up by name instead of walking every export and import value.
 */
interface ModuleLayout {
  /** The first exported memory's name. */
  readonly memoryExport: string | undefined
  /** The first imported memory (module, name). */
  readonly memoryImport: readonly [string, string] | undefined
  /** Exported tables' names. */
  readonly tableExports: ReadonlyArray<string>
  /** Imported tables (module, name). */
  readonly tableImports: ReadonlyArray<readonly [string, string]>
  /**
   * The module imports its fuel counter (`FUEL_IMPORT_MODULE`.`FUEL_IMPORT_NAME`): its initial fuel (fuel
   * units, from the rewrite's `FUEL_SECTION`; 0 without one); `undefined` when it does not.
   */
  readonly fuelInitial: number | undefined
}

const NO_NAMES: ReadonlyArray<never> = Object.freeze([])
const layouts = new WeakMap<WebAssembly.Module, ModuleLayout>()

const layoutOf = (module: WebAssembly.Module): ModuleLayout => {
  let layout = layouts.get(module)
  if (layout !== undefined) return layout
  let memoryExport: string | undefined
  let memoryImport: readonly [string, string] | undefined
  const tableExports: Array<string> = []
  const tableImports: Array<readonly [string, string]> = []
  for (const e of WebAssembly.Module.exports(module)) {
    if (e.kind === "memory") memoryExport ??= e.name
    else if (e.kind === "table") tableExports.push(e.name)
  }
  let fuelInitial: number | undefined
  for (const i of WebAssembly.Module.imports(module)) {
    if (i.kind === "memory") memoryImport ??= [i.module, i.name]
    else if (i.kind === "table") tableImports.push([i.module, i.name])
    else if (i.kind === "global" && i.module === FUEL_IMPORT_MODULE && i.name === FUEL_IMPORT_NAME) {
      const [initial] = WebAssembly.Module.customSections(module, FUEL_SECTION)
      fuelInitial =
        initial !== undefined && initial.byteLength >= 8 ? Number(new DataView(initial).getBigInt64(0, true)) : 0
    }
  }
  layout = {
    memoryExport,
    memoryImport,
    tableExports: tableExports.length === 0 ? NO_NAMES : tableExports,
    tableImports: tableImports.length === 0 ? NO_NAMES : tableImports,
    fuelInitial
  }
  layouts.set(module, layout)
  return layout
}

const imported = (imports: WebAssembly.Imports, at: readonly [string, string]): unknown =>
  (imports[at[0]] as Record<string, unknown> | undefined)?.[at[1]]

/** `findMemory` through a module's layout: the exported, else imported, memory of the instance. */
const layoutMemory = (
  layout: ModuleLayout,
  exports: WebAssembly.Exports,
  imports: WebAssembly.Imports
): WebAssembly.Memory | undefined => {
  const m = layout.memoryExport !== undefined ? exports[layout.memoryExport] : undefined
  if (m instanceof WebAssembly.Memory) return m
  const i = layout.memoryImport !== undefined ? imported(imports, layout.memoryImport) : undefined
  return i instanceof WebAssembly.Memory ? i : undefined
}

/** `findTables` through a module's layout: the exported and imported tables (each once). */
const layoutTables = (
  layout: ModuleLayout,
  exports: WebAssembly.Exports,
  imports: WebAssembly.Imports
): ReadonlyArray<WebAssembly.Table> => {
  if (layout.tableExports.length === 0 && layout.tableImports.length === 0) return NO_NAMES
  const tables: Array<WebAssembly.Table> = []
  for (const name of layout.tableExports) {
    const t = exports[name]
    if (t instanceof WebAssembly.Table && !tables.includes(t)) tables.push(t)
  }
  for (const at of layout.tableImports) {
    const t = imported(imports, at)
    if (t instanceof WebAssembly.Table && !tables.includes(t)) tables.push(t)
  }
  return tables
}

/** The exported mutable globals, without the fuel counter and the dirty-page bitmap. */
const mutableGlobals = (exports: WebAssembly.Exports): Array<readonly [string, WebAssembly.Global]> => {
  const globals: Array<readonly [string, WebAssembly.Global]> = []
  for (const [name, v] of Object.entries(exports)) {
    if (!(v instanceof WebAssembly.Global) || name === FUEL_EXPORT || name === DIRTY_PAGES_EXPORT) continue
    try {
      v.value = v.value // throws TypeError for an immutable global: only mutable state is captured
      globals.push([name, v])
    } catch {
      // immutable
    }
  }
  return globals
}

/**
 * `imports` with the thread's shared fuel counter, by frozen `imports` object (the runtime's spawns of modules
 * without host imports all pass one frozen empty object); a mutable one is merged again at every spawn.
 */
const withCounterCache = new WeakMap<WebAssembly.Imports, WebAssembly.Imports>()

/**
 * `imports` with `counter` as the fuel counter import (`FUEL_IMPORT_MODULE`.`FUEL_IMPORT_NAME`); `instantiate` has
 * refused imports that supply that module themselves.
 */
const withCounter = (imports: WebAssembly.Imports, counter: WebAssembly.Global): WebAssembly.Imports => {
  const frozen = Object.isFrozen(imports)
  let merged = frozen ? withCounterCache.get(imports) : undefined
  if (merged === undefined) {
    merged = { ...imports, [FUEL_IMPORT_MODULE]: { [FUEL_IMPORT_NAME]: counter } }
    if (frozen) withCounterCache.set(imports, merged)
  }
  return merged
}

/** `imports` plus the memory `request` asks for when `imports` lacks it (may throw like `new WebAssembly.Memory`). */
const withMemory = (imports: WebAssembly.Imports, request: HostMemory | undefined): WebAssembly.Imports => {
  if (request === undefined) return imports
  const ns = imports[request.module] as Record<string, unknown> | undefined
  if (ns?.[request.name] !== undefined) return imports
  const memory = new WebAssembly.Memory({
    initial: request.minPages,
    maximum: request.maxPages,
    shared: request.shared
  })
  return { ...imports, [request.module]: { ...(ns as WebAssembly.ModuleImports | undefined), [request.name]: memory } }
}

/** Calls of one instance whose memory is shared or of 0 pages read its size through the accessor before the helper (`memorySize`) is made. */
const HELPER_AFTER_CALLS = 64

/** The pages of a snapshot of an instance without memory. */
const NO_PAGES: ReadonlyArray<never> = Object.freeze([])

/** A trampolined caller's cells before its trampoline is made (never read: the caller is returned after). */
const EMPTY_CELLS = new Float64Array(0)
const EMPTY_MARKS = new Int32Array(0)

/** The results of a call that returned nothing: one frozen array shared by every such call (no allocation per call). */
const NO_RESULTS: ReadonlyArray<WasmValue> = Object.freeze([])

/** An export's return value as the port's results (`undefined` → none, an array → multi-value). */
const results = (result: unknown): ReadonlyArray<WasmValue> =>
  result === undefined ? NO_RESULTS : Array.isArray(result) ? (result as Array<WasmValue>) : [result as WasmValue]

/** The `Trap` of an operation on a terminated instance. */
const terminatedTrap = (op: string): Trap => new Trap({ function: op, reason: "instance terminated" })

/** A direct call's outcome as an `InvokeOutcome` (`slot` is read right after the call, then cleared of the guest value). */
const outcomeOf = <E extends Error>(
  direct: DirectCall<E>,
  args: ReadonlyArray<WasmValue>,
  fuel: number | undefined,
  slot: CallSlot
): InvokeOutcome | CallError<E> => {
  const failed = direct(args, fuel, slot)
  if (failed !== undefined) return failed
  const outcome: InvokeOutcome = {
    results: results(slot.result),
    memoryBytes: slot.memoryBytes,
    fuelRemaining: slot.fuelRemaining
  }
  slot.result = undefined // hold no guest value between calls
  return outcome
}

/**
 * `LiveInstance` as one class: the instance's state in fields, its operations
 * on the prototype, so a spawn allocates one object (no closure per
 * operation); what most agents never use — the fuel accessor, the memory-size
 * helper, the mutable globals, the snapshot barrier, the unprepared calls'
 * slot — is made on first use. Its methods read `this`: call them on the
 * instance (`live.memoryBytes()`), or bind them, never detached.
 */
class Live<E extends Error> implements LiveInstance<E> {
  readonly exports: WebAssembly.Exports
  readonly memory: WebAssembly.Memory | undefined
  readonly fuel: WebAssembly.Global | undefined
  /** The exported and imported tables (each once). */
  readonly tables: ReadonlyArray<WebAssembly.Table>
  readonly imports: WebAssembly.Imports
  readonly mapThrown: ((fn: string, error: unknown) => E | undefined) | undefined
  /** False once `terminate` ran. */
  live = true
  // the exported mutable globals, found on first use (a snapshot), not at spawn: telling mutable from
  // immutable ones costs an exception per immutable global
  globalsFound: ReadonlyArray<readonly [string, WebAssembly.Global]> | undefined = undefined
  // the fuel counter's fast accessor, made on the first metered call (not at spawn); the thread's one for a
  // shared counter
  fuelAccessor: FuelAccess | undefined = undefined
  // The counter is the thread's shared one (`sharedFuel`): every call sets it (to its fuel, else to `fuelLeft`)
  // and reads it after, saving and restoring an outer call's (`fuelIn` / `fuelOut`).
  readonly fuelShared: SharedFuel | undefined
  // A shared counter: what this instance had left after its last metered run (fuel units), as its own
  // counter would hold — the fuel of a call made without `fuel`.
  fuelLeft = 0
  // Calls of this instance in progress on this thread (> 1: a host function called back into it)
  running = 0
  // The memory size a call reports. An unshared memory: the length of its buffer as last seen by a call
  // (`sizeBuffer`; non-zero ⇒ not detached by a growth ⇒ current: `memorySize.ts`), no host-API call. A shared
  // one, or one of 0 pages: `memory.buffer.byteLength` for an instance's first calls, then the `memorySize`
  // helper (≈ 4 ns instead of ≈ 15 ns), made once an instance has been called often enough to be worth its
  // instantiation (an agent called once never pays it).
  sizeBuffer: ArrayBuffer | undefined = undefined
  sizeOfMemory: (() => number) | undefined = undefined
  callsBeforeHelper = HELPER_AFTER_CALLS
  // Changes through the write barrier (`dirtyPages`): set up on the first `changes` (`barrierFor`); `null` →
  // none reported. Memory changed other than by the guest's stores makes the next one `undefined`.
  barrier: PageChanges | null | undefined
  // the slot of unprepared calls (`call`), made on the first one and shared: each call reads it right after writing it
  callSlot: CallSlot | undefined = undefined

  constructor(
    instance: WebAssembly.Instance,
    imports: WebAssembly.Imports,
    config: Pick<InstanceConfig<E>, "mapThrown" | "dirtyPages">,
    module: WebAssembly.Module | undefined
  ) {
    const exports = instance.exports
    this.exports = exports
    this.imports = imports
    // with the module: its memory and tables by name (`layoutOf`, once per module); else a walk of every value
    const layout = module === undefined ? undefined : layoutOf(module)
    this.memory = layout === undefined ? findMemory(exports, imports) : layoutMemory(layout, exports, imports)
    // the counter: the imported one (the shared counter `instantiate` gave it), else the exported one
    const fuelImport =
      layout?.fuelInitial !== undefined ? imported(imports, [FUEL_IMPORT_MODULE, FUEL_IMPORT_NAME]) : undefined
    const counter = fuelImport ?? exports[FUEL_EXPORT]
    this.fuel = counter instanceof WebAssembly.Global ? counter : undefined
    const shared = sharedFuelIfMade()
    this.fuelShared = shared !== undefined && this.fuel === shared.global ? shared : undefined
    if (this.fuelShared !== undefined) this.fuelAccessor = this.fuelShared.access
    this.tables = layout === undefined ? findTables(exports, imports) : layoutTables(layout, exports, imports)
    this.mapThrown = config.mapThrown
    this.barrier = config.dirtyPages === true ? undefined : null
  }

  get globals(): ReadonlyArray<readonly [string, WebAssembly.Global]> {
    return (this.globalsFound ??= mutableGlobals(this.exports))
  }

  linearBytes(): number {
    return this.memory === undefined ? 0 : this.memory.buffer.byteLength
  }

  memoryBytes(): number {
    let bytes = this.linearBytes()
    for (const t of this.tables) bytes += t.length * TABLE_ENTRY_BYTES
    return bytes
  }

  terminated(): boolean {
    return !this.live
  }

  terminate(): void {
    this.live = false
  }

  /** The fuel counter's accessor (made on the first metered call; the thread's one for a shared counter). */
  meter(global: WebAssembly.Global): FuelAccess {
    return (this.fuelAccessor ??= fuelAccess(global))
  }

  /**
   * Whether a call with `fuel` (`undefined`: none given) sets and reads the counter: with fuel, and always on
   * a shared counter (it holds another instance's value otherwise).
   */
  metered(fuel: number | undefined): boolean {
    return this.fuel !== undefined && (fuel !== undefined || this.fuelShared !== undefined)
  }

  /**
   * Before a metered call: sets the counter (`access`, from `meter`) to `fuel`, else (a shared counter) to
   * what this instance had left. Returns what `fuelOut` restores: the counter of the call this one is nested
   * in, on a shared counter (`enterShared`).
   */
  fuelIn(access: FuelAccess, fuel: number | undefined): bigint | undefined {
    const shared = this.fuelShared
    if (shared === undefined) {
      access.set(fuel!)
      return undefined
    }
    return enterShared(shared, fuel ?? this.fuelLeft)
  }

  /**
   * After a metered call: `fuelOut`, or — a call re-entering this instance (`reentered`), which neither set
   * nor saved the counter — the counter as it is: the running call it re-entered goes on from it.
   */
  fuelAfter(access: FuelAccess, outer: bigint | undefined, reentered: boolean): number {
    return reentered ? access.get() : this.fuelOut(access, outer)
  }

  /** After a metered call (returned or thrown): the fuel left; a shared counter's is kept as this instance's. */
  fuelOut(access: FuelAccess, outer: bigint | undefined): number {
    const shared = this.fuelShared
    if (shared === undefined) return access.get()
    return (this.fuelLeft = leaveShared(shared, outer))
  }

  /** The memory usage a call reports, bytes (see `sizeBuffer`): what `memoryBytes()` reads. */
  callMemoryBytes(): number {
    const size = this.sizeOfMemory // the helper (a shared memory, or one of 0 pages)
    let bytes = size !== undefined ? size() : keptBytes(this.sizeBuffer)
    if (bytes === 0 && size === undefined) bytes = this.linearBytesNow()
    const tables = this.tables
    for (let k = 0; k < tables.length; k++) bytes += tables[k]!.length * TABLE_ENTRY_BYTES
    return bytes
  }

  /** `linearBytes()` when the kept buffer cannot tell (none yet, detached, 0 pages, shared): keeps the current one. */
  linearBytesNow(): number {
    const memory = this.memory
    if (memory === undefined) return 0
    if (this.sizeOfMemory !== undefined) return this.sizeOfMemory()
    const buffer = memory.buffer
    const bytes = buffer.byteLength
    if (bytes !== 0 && !isSharedBuffer(buffer)) this.sizeBuffer = buffer as ArrayBuffer
    else if (--this.callsBeforeHelper === 0) this.sizeOfMemory = memorySize(memory) // shared, or 0 pages
    return bytes
  }

  /** Memory changed other than by the guest's stores: the next `changes` reports none (`undefined`). */
  outsideWrite(): void {
    this.barrier?.invalidate()
  }

  prepareDirect(fn: string, type?: CallType): DirectCall<E> | undefined {
    const f = this.exports[fn]
    if (typeof f !== "function") return undefined
    const slow = this.directOf(fn, f as (...a: ReadonlyArray<WasmValue>) => unknown)
    if (type === undefined || this.fuel === undefined) return slow
    return this.trampolined(fn, f, type, slow) ?? slow
  }

  /**
   * `prepareDirect`'s caller through a trampoline (`trampoline.ts`): a metered call that is not a re-entry
   * and not nested in another run on the shared counter makes ONE JS→wasm call (the trampoline sets the
   * counter, calls the export, leaves the fuel left in its cell); every other call is `slow`'s. `undefined`
   * when no trampoline can be made here (runtime compilation forbidden, a type that is not a number type,
   * an export not of `type`).
   */
  trampolined(fn: string, f: unknown, type: CallType, slow: DirectCall<E>): DirectCall<E> | undefined {
    const self = this
    const counter = this.fuel!
    const shared = this.fuelShared
    let t: (...a: ReadonlyArray<unknown>) => unknown = slow as (...a: ReadonlyArray<unknown>) => unknown
    let cells: Float64Array = EMPTY_CELLS
    let marks: Int32Array = EMPTY_MARKS
    let left = 0
    let entered = 0
    const caller: DirectCall<E> = (args, fuel, slot) => {
      if (!self.live || self.running !== 0 || (fuel === undefined && shared === undefined))
        return slow(args, fuel, slot)
      const start = fuel ?? self.fuelLeft
      if (!Number.isSafeInteger(start) || (shared !== undefined && !enterTop())) return slow(args, fuel, slot)
      let result: unknown
      self.running++
      marks[entered] = 0
      try {
        switch (args.length) {
          case 0:
            result = t(start)
            break
          case 1:
            result = t(start, args[0]!)
            break
          case 2:
            result = t(start, args[0]!, args[1]!)
            break
          case 3:
            result = t(start, args[0]!, args[1]!, args[2]!)
            break
          default:
            result = t(start, ...args)
        }
      } catch (e) {
        self.running--
        self.outsideWrite() // a trap may unwind frames before they publish their dirty bits
        // the counter as the trap left it, if this call set it (a throw at the boundary: it did not)
        const after = marks[entered] === 1 ? (shared?.access ?? self.meter(counter)).get() : start
        if (shared !== undefined) {
          self.fuelLeft = after
          leaveTop()
        }
        if (after < 0 && fuel !== undefined) return new FuelExhausted({ function: fn, fuel })
        return self.mapThrown?.(fn, e) ?? mapCallError(fn, e)
      }
      self.running--
      const l = cells[left]!
      if (shared !== undefined) {
        self.fuelLeft = l
        leaveTop()
      }
      slot.result = result
      slot.memoryBytes = self.callMemoryBytes()
      slot.fuelRemaining = fuel !== undefined ? l : undefined
      return undefined
    }
    const made = trampoline(f, type.params, type.results, counter, caller)
    if (made === null) return undefined
    t = made.call
    cells = made.f64
    marks = made.i32
    left = made.left
    entered = made.entered
    return caller
  }

  /** `prepareDirect`'s caller of export `g` that sets and reads the counter through `FuelAccess` (two helper calls). */
  directOf(fn: string, g: (...a: ReadonlyArray<WasmValue>) => unknown): DirectCall<E> {
    const self = this
    const fuelGlobal = this.fuel
    // per call: no closure, no allocation, no spread for up to 3 arguments, the counter set through `FuelAccess`
    return (args, fuel, slot) => {
      if (!self.live) return terminatedTrap(fn)
      const access = self.metered(fuel) ? self.meter(fuelGlobal!) : undefined
      // A call into this instance from inside one of its own running calls (a host function calling back in)
      // draws on the counter as it is — the running call's fuel (on the thread's shared counter: the innermost
      // running metered call's), as a store's fuel in Wasmtime: setting it here would refill the budget at
      // every re-entry (unbounded work on one call's fuel).
      const reentered = self.running > 0
      const outer = access !== undefined && !reentered ? self.fuelIn(access, fuel) : undefined
      let result: unknown
      self.running++
      try {
        switch (args.length) {
          case 0:
            result = g()
            break
          case 1:
            result = g(args[0]!)
            break
          case 2:
            result = g(args[0]!, args[1]!)
            break
          case 3:
            result = g(args[0]!, args[1]!, args[2]!)
            break
          default:
            result = g(...args)
        }
      } catch (e) {
        self.running--
        self.outsideWrite() // a trap may unwind frames before they publish their dirty bits
        if (access !== undefined && self.fuelAfter(access, outer, reentered) < 0 && fuel !== undefined) {
          return new FuelExhausted({ function: fn, fuel })
        }
        return self.mapThrown?.(fn, e) ?? mapCallError(fn, e)
      }
      self.running--
      slot.result = result
      slot.memoryBytes = self.callMemoryBytes()
      const left = access !== undefined ? self.fuelAfter(access, outer, reentered) : undefined
      slot.fuelRemaining = fuel !== undefined ? left : undefined
      return undefined
    }
  }

  prepare(fn: string): Call<E> | undefined {
    const direct = this.prepareDirect(fn)
    if (direct === undefined) return undefined
    const slot: CallSlot = { result: undefined, memoryBytes: 0, fuelRemaining: undefined }
    return (args, fuel) => outcomeOf(direct, args, fuel, slot)
  }

  call(fn: string, args: ReadonlyArray<WasmValue>, fuel?: number | undefined): InvokeOutcome | CallError<E> {
    if (!this.live) return terminatedTrap(fn)
    const direct = this.prepareDirect(fn)
    if (direct === undefined) return new FunctionNotFound({ function: fn })
    const slot = (this.callSlot ??= { result: undefined, memoryBytes: 0, fuelRemaining: undefined })
    return outcomeOf(direct, args, fuel, slot)
  }

  bounds(op: string, offset: number, length: number): Trap | undefined {
    const memory = this.memory
    if (memory === undefined) return new Trap({ function: op, reason: "the instance has no linear memory" })
    const size = memory.buffer.byteLength
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
      return new Trap({
        function: op,
        reason: `memory access out of bounds: [${offset}, ${offset + length}) of ${size} bytes`
      })
    }
    return undefined
  }

  read(offset: number, length: number): Uint8Array | Trap {
    return this.bounds("readMemory", offset, length) ?? new Uint8Array(this.memory!.buffer, offset, length).slice()
  }

  write(offset: number, bytes: Uint8Array): Trap | undefined {
    const err = this.bounds("writeMemory", offset, bytes.byteLength)
    if (err === undefined) {
      new Uint8Array(this.memory!.buffer).set(bytes, offset)
      this.outsideWrite()
    }
    return err
  }

  /** The barrier's changes when `dirtyPages` asks for them and they can be trusted (see there), else `null`. */
  barrierFor(): PageChanges | null {
    const memory = this.memory
    const bitmap = this.exports[DIRTY_PAGES_EXPORT]
    if (!(bitmap instanceof WebAssembly.Global) || memory === undefined) return null
    if (typeof SharedArrayBuffer !== "undefined" && memory.buffer instanceof SharedArrayBuffer) return null
    for (const ns of Object.values(this.imports)) {
      for (const v of Object.values(ns as Record<string, unknown>)) if (v === memory) return null
    }
    return pageChanges(bitmap)
  }

  snapshot(): EngineState | Trap {
    if (!this.live) return terminatedTrap("snapshot")
    const memory = this.memory
    const pages = memory === undefined ? NO_PAGES : nonZeroPages(memory.buffer)
    return { memoryBytes: this.linearBytes(), pages, globals: this.globalValues() }
  }

  /** The exported mutable globals' values by export name (what a snapshot holds). */
  globalValues(): Record<string, number | bigint> {
    const values: Record<string, number | bigint> = {}
    for (const [name, g] of this.globals) {
      const v: unknown = g.value
      if (typeof v === "number" || typeof v === "bigint") values[name] = v
    }
    return values
  }

  changes(restart: boolean): EngineChanges | undefined | Trap {
    if (!this.live) return terminatedTrap("snapshot")
    const memory = this.memory
    if (memory === undefined) return { memoryBytes: 0, pages: NO_PAGES, zeroed: NO_PAGES, globals: this.globalValues() }
    if (this.barrier === undefined) this.barrier = this.barrierFor()
    if (this.barrier === null) return undefined
    const marked = this.barrier.take(memory.buffer, restart)
    if (marked === undefined) return undefined
    return { memoryBytes: this.linearBytes(), pages: marked.pages, zeroed: marked.zeroed, globals: this.globalValues() }
  }

  restore(state: EngineState): Trap | MemoryExceeded | undefined {
    if (!this.live) return terminatedTrap("restore")
    this.outsideWrite()
    const memory = this.memory
    if (memory !== undefined) {
      const current = memory.buffer.byteLength
      if (state.memoryBytes > current) {
        try {
          memory.grow((state.memoryBytes - current) / PAGE_BYTES)
        } catch {
          return new MemoryExceeded({ agentId: "restore", used: state.memoryBytes, limit: current })
        }
      }
      const view = new Uint8Array(memory.buffer)
      view.fill(0)
      for (const page of state.pages) view.set(page.data, page.index * PAGE_BYTES)
    } else if (state.pages.length > 0) {
      return new Trap({ function: "restore", reason: "snapshot has memory but the instance has none" })
    }
    for (const [name, value] of Object.entries(state.globals)) {
      const g = this.exports[name]
      if (!(g instanceof WebAssembly.Global)) {
        return new Trap({ function: "restore", reason: `snapshot global ${name} is not exported by this module` })
      }
      try {
        g.value = value
      } catch (e) {
        return new Trap({ function: "restore", reason: `cannot set global ${name}: ${message(e)}` })
      }
    }
    return undefined
  }
}

/**
 * Wraps an instance already made (`new WebAssembly.Instance(module, imports)`
 * with these `imports`). With `module`, the memory and tables are looked up
 * by the names its descriptors give (read once per module): the exported,
 * else the imported, memory and the tables it exports or imports; without
 * it, every export and import value is examined (the first memory found).
 * The result is one object whose operations are prototype methods: call
 * them on it (`live.snapshot()`), never detached (`const f = live.snapshot`).
 */
export const fromInstance = <E extends Error = never>(
  instance: WebAssembly.Instance,
  imports: WebAssembly.Imports,
  config: Pick<InstanceConfig<E>, "mapThrown" | "dirtyPages"> = {},
  module?: WebAssembly.Module
): LiveInstance<E> => new Live<E>(instance, imports, config, module)

/**
 * Runs the start function a fuel rewrite deferred (`START_EXPORT`, wasm-binary
 * `FuelOptions.deferStart`) with the fuel the counter starts with: running
 * out of it is `FuelExhausted { function: "(start)", fuel }`, another
 * exception is mapped as a call of `(start)`; `undefined` when it returned
 * (or the module has no deferred start).
 */
const runDeferredStart = <E extends Error>(
  live: LiveInstance<E>,
  config: InstanceConfig<E>
): Trap | FuelExhausted | E | undefined => {
  const start = live.exports[START_EXPORT]
  if (typeof start !== "function") return undefined
  const fuel = live.fuel === undefined ? undefined : Number(live.fuel.value as bigint)
  try {
    ;(start as () => unknown)()
    return undefined
  } catch (e) {
    if (live.fuel !== undefined && (live.fuel.value as bigint) < 0n) {
      return new FuelExhausted({ function: "(start)", fuel: fuel ?? 0 })
    }
    return config.mapThrown?.("(start)", e) ?? mapCallError("(start)", e)
  }
}

/**
 * A probe module importing `t.t`, a table of `element` (0x70 funcref, 0x6f
 * externref) with limits `{ min 0, max maxEntries }`: linking it with a
 * table succeeds only when that table has a maximum ≤ `maxEntries` (core spec
 * §4.5.4 import matching of limits) — what the JS API cannot read on V8 11.
 */
const tableProbe = (element: number, maxEntries: number): Uint8Array<ArrayBuffer> => {
  const leb: Array<number> = []
  let n = maxEntries >>> 0
  do {
    const b = n & 0x7f
    n >>>= 7
    leb.push(n === 0 ? b : b | 0x80)
  } while (n !== 0)
  const entry = [0x01, 0x01, 0x74, 0x01, 0x74, 0x01, element, 0x01, 0x00, ...leb] // one import "t" "t" (table element 0 max)
  return Uint8Array.from([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x02, entry.length, ...entry])
}

/**
 * Checks every caller-supplied `WebAssembly.Table` in `imports` against the
 * agent's budget before instantiating (issue 12 item 1): its entries
 * (`length × TABLE_ENTRY_BYTES`) must fit in `memoryLimit` bytes
 * (`MemoryExceeded` otherwise), and it must have a maximum within the budget
 * (split equally between the supplied tables), else the guest could grow it
 * with `table.grow` outside any budget (`InstantiationError` naming the
 * import). The maximum is checked by linking a probe module whose import
 * declares that maximum; where the platform forbids runtime compilation the
 * maximum cannot be checked and such a table is refused too.
 */
export const checkSuppliedTables = (
  imports: WebAssembly.Imports,
  memoryLimit: number | undefined,
  agentId: string
): MemoryExceeded | InstantiationError | undefined => {
  if (memoryLimit === undefined) return undefined
  let supplied: Array<readonly [string, WebAssembly.Table]> | undefined // made for the first table (most spawns: none)
  for (const module in imports) {
    if (!Object.hasOwn(imports, module)) continue
    const ns = imports[module] as unknown
    if (ns === null || typeof ns !== "object") continue
    for (const [name, v] of Object.entries(ns as Record<string, unknown>)) {
      if (v instanceof WebAssembly.Table && !(supplied ??= []).some(([, t]) => t === v))
        supplied.push([`"${module}"."${name}"`, v])
    }
  }
  if (supplied === undefined || supplied.length === 0) return undefined
  const used = supplied.reduce((sum, [, t]) => sum + t.length * TABLE_ENTRY_BYTES, 0)
  if (used > memoryLimit) return new MemoryExceeded({ agentId, used, limit: memoryLimit })
  const maxEntries = Math.floor(memoryLimit / TABLE_ENTRY_BYTES / supplied.length)
  for (const [what, table] of supplied) {
    const fits = [0x70, 0x6f].some((element) => {
      try {
        new WebAssembly.Instance(new WebAssembly.Module(tableProbe(element, maxEntries)), { t: { t: table } })
        return true
      } catch {
        return false // a LinkError (no maximum, too large, other element type), or no runtime compilation here
      }
    })
    if (!fits) {
      return new InstantiationError({
        reason:
          `${what} (table): a caller-supplied table needs a maximum within the agent's budget ` +
          `(≤ ${maxEntries} entries × ${TABLE_ENTRY_BYTES} bytes of ${memoryLimit}), else the guest can grow it past the budget`
      })
    }
  }
  return undefined
}

/**
 * Instantiates `module` (a `WebAssembly.Module`: compiled here, precompiled
 * in a bundle, or posted to a worker) with `imports`, creating the imported
 * memory `config.memory` asks for, and checks the memory budget. A module
 * whose fuel counter is imported (wasm-binary `FUEL_IMPORT_MODULE`) gets the
 * thread's shared counter (`fuel.ts` `sharedFuel`), set to the module's
 * initial fuel (`FUEL_SECTION`) for its start function; the instance then
 * behaves as with a counter of its own. Synchronous
 * (`new WebAssembly.Instance` generates no code, so it also runs where
 * runtime compilation is forbidden). A caller-supplied table is checked
 * against the budget first (`checkSuppliedTables`). Never throws. `measured`,
 * when given, receives the instance's memory usage right after
 * instantiation (bytes, as `memoryBytes()`; the value the budget check read),
 * so a caller that needs it does not read the memory's size again.
 */
export const instantiate = <E extends Error = never>(
  module: unknown,
  imports: WebAssembly.Imports | HostImports,
  config: InstanceConfig<E> = {},
  measured?: { bytes: number }
): LiveInstance<E> | InstantiateError<E> => {
  if (!(module instanceof WebAssembly.Module)) {
    return new InstantiationError({ reason: config.notAModule ?? "not a WebAssembly.Module" })
  }
  let importObject = imports as WebAssembly.Imports
  let instance: WebAssembly.Instance
  const tables = checkSuppliedTables(importObject, config.memoryLimit, config.agentId ?? "instantiate")
  if (tables !== undefined) return tables
  // a module that imports its fuel counter gets the thread's shared one, set to its initial fuel before a start
  // function can run (during instantiation, or deferred right after), as a counter of its own would start
  const fuelInitial = layoutOf(module).fuelInitial
  // the counter's module is the engine's: an embedder's value for it would be replaced, so it is refused, as the
  // fuel rewrite refuses a module importing from it
  if (fuelInitial !== undefined && (importObject as Record<string, unknown>)[FUEL_IMPORT_MODULE] !== undefined) {
    return new InstantiationError({
      reason: `import from the reserved module "${FUEL_IMPORT_MODULE}" (the engine's fuel counter) supplied by the host`
    })
  }
  const shared = fuelInitial === undefined ? undefined : sharedFuel()
  let entered = false
  let outer: bigint | undefined
  try {
    importObject = withMemory(importObject, config.memory)
    if (shared !== undefined) {
      importObject = withCounter(importObject, shared.global)
      outer = enterShared(shared, fuelInitial!)
      entered = true
    }
    instance = new WebAssembly.Instance(module, importObject)
  } catch (e) {
    if (entered) leaveShared(shared!, outer)
    return instantiationError(e) ?? config.mapThrown?.("(start)", e) ?? mapCallError("(start)", e)
  }
  const live = new Live<E>(instance, importObject, config, module)
  const started = runDeferredStart(live, config)
  if (shared !== undefined) live.fuelLeft = leaveShared(shared, outer)
  if (started !== undefined) {
    live.terminate()
    return started
  }
  const bytes = live.memoryBytes()
  if (config.memoryLimit !== undefined && bytes > config.memoryLimit) {
    live.terminate()
    return new MemoryExceeded({ agentId: config.agentId ?? "instantiate", used: bytes, limit: config.memoryLimit })
  }
  if (measured !== undefined) measured.bytes = bytes
  return live
}
