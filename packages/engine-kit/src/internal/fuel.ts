/**
 * Fast access to a fuel counter (the mutable i64 global of the fuel rewrite):
 * `WebAssembly.Global.prototype.value` is a host-API accessor that also
 * converts through a `bigint` (≈ 30–50 ns per set or get on V8), while a call
 * of a tiny WebAssembly helper that imports the same global and sets or reads
 * it as an f64 is inlined by the JS-to-wasm wrapper (≈ 3–7 ns). The helper
 * module is 70 bytes, compiled once per thread, synchronously; where runtime
 * compilation is forbidden (workerd) or fails, `fuelAccess` falls back to the
 * accessor. Values are fuel units; the helper is used only for safe integers
 * (`i64.trunc_f64_s` of a safe integer is exact). `sharedFuel` is the
 * thread's one counter for modules that import theirs.
 *
 * @since 0.2.0
 */
import { helperExports, lazyModule, moduleBytes, name, section, uleb } from "./helperModules.js"

/** Sets and reads one fuel counter, in fuel units. */
export interface FuelAccess {
  readonly set: (fuel: number) => void
  readonly get: () => number
}

/**
 * `(module (import "" "g" (global (mut i64)))
 *   (func (export "s") (param f64) (global.set 0 (i64.trunc_f64_s (local.get 0))))
 *   (func (export "g") (result f64) (f64.convert_i64_s (global.get 0))))`
 */
const helperBytes = (): Uint8Array<ArrayBuffer> => {
  const setBody = [0, 0x20, 0, 0xb0, 0x24, 0, 0x0b]
  const getBody = [0, 0x23, 0, 0xb9, 0x0b]
  return moduleBytes(
    section(1, [2, 0x60, 1, 0x7c, 0, 0x60, 0, 1, 0x7c]),
    section(2, [1, ...name(""), ...name("g"), 0x03, 0x7e, 0x01]),
    section(3, [2, 0, 1]),
    section(7, [2, ...name("s"), 0x00, 0, ...name("g"), 0x00, 1]),
    section(10, [2, ...uleb(setBody.length), ...setBody, ...uleb(getBody.length), ...getBody])
  )
}

/** The helper, compiled on first use; `null` where this host will not compile it. */
export const helperModule = lazyModule(helperBytes)

/** The accessor path (any host). */
const viaAccessor = (global: WebAssembly.Global): FuelAccess => ({
  set: (fuel) => {
    global.value = BigInt(fuel)
  },
  get: () => Number(global.value as bigint)
})

/**
 * The thread's shared fuel counter: the one `WebAssembly.Global` (mutable
 * i64) every instance of a module with an imported counter gets on this
 * thread (wasm-binary `FUEL_IMPORT_MODULE`.`FUEL_IMPORT_NAME`: the fuel
 * rewrite imports the counter when the module defines no globals, so V8
 * allocates no per-instance globals buffer), with its `FuelAccess` (one
 * helper instance per thread, not per agent instance). Calls on one thread
 * are sequential, so one counter serves them all: each metered run sets it
 * first (`enterShared`) and reads it after (`leaveShared`); a run nested in
 * another (a host function calling another instance synchronously) saves
 * and restores the outer run's value.
 */
export interface SharedFuel {
  readonly global: WebAssembly.Global
  readonly access: FuelAccess
}

let shared: SharedFuel | undefined
/** Metered runs on the shared counter in progress on this thread (> 1: nested). */
let depth = 0

/** This thread's shared counter (made on first use). */
export const sharedFuel = (): SharedFuel => {
  if (shared === undefined) {
    const global = new WebAssembly.Global({ value: "i64", mutable: true }, 0n)
    shared = { global, access: fuelAccess(global) }
  }
  return shared
}

/** The shared counter when it has been made on this thread, else `undefined` (never makes it). */
export const sharedFuelIfMade = (): SharedFuel | undefined => shared

/**
 * Starts a metered run on the shared counter: sets it to `fuel` (fuel units).
 * Returns the counter of the run this one is nested in (exact, as a bigint),
 * to hand back to `leaveShared`; `undefined` when it is not nested.
 */
export const enterShared = (s: SharedFuel, fuel: number): bigint | undefined => {
  const outer = depth++ > 0 ? (s.global.value as bigint) : undefined
  s.access.set(fuel)
  return outer
}

/**
 * Starts a metered run on the shared counter that is not nested in another
 * (none in progress on this thread) without setting the counter — the
 * caller's trampoline sets it (`trampoline.ts`): true, and the run is
 * counted (end it with `leaveTop`); false when a run is in progress (use
 * `enterShared`, which saves the outer run's value).
 */
export const enterTop = (): boolean => {
  if (depth !== 0) return false
  depth = 1
  return true
}

/** Ends a run started by `enterTop` (the caller reads the fuel left itself). */
export const leaveTop = (): void => {
  depth--
}

/** Ends a metered run on the shared counter: returns the fuel left (fuel units) and restores `outer` (see `enterShared`). */
export const leaveShared = (s: SharedFuel, outer: bigint | undefined): number => {
  const left = s.access.get()
  depth--
  if (outer !== undefined) s.global.value = outer
  return left
}

/** Fast access to `global` (a mutable i64 `WebAssembly.Global`); the accessor where the helper cannot be made. */
export const fuelAccess = (global: WebAssembly.Global): FuelAccess => {
  const exports = helperExports(helperModule, { "": { g: global } })
  if (exports === null) return viaAccessor(global)
  const s = exports["s"] as (fuel: number) => void
  const g = exports["g"] as () => number
  return {
    set: (fuel) => {
      if (Number.isSafeInteger(fuel)) s(fuel)
      else global.value = BigInt(fuel)
    },
    get: g
  }
}
