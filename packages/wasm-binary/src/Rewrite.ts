/**
 * One entry point for the rewrites the runtime applies before compiling an
 * agent's module: the hard memory cap (`MemoryCap.ts`), fuel metering
 * (`Fuel.ts`), the dirty-page write barrier (`DirtyPages.ts`) and the state exports that make snapshots complete
 * (`StateExport.ts`). Engines and the compile cache call this once per
 * (module hash, options) pair — the options belong in the cache key, since
 * two budgets give two different modules.
 *
 * @since 0.1.0
 */
import { dirtyPagesOf } from "./DirtyPages.js"
import { instrumentFuelOf, type FuelOptions } from "./Fuel.js"
import { DIRTY_PAGES_EXPORT, FUEL_EXPORT, MEMORY_EXPORT, START_EXPORT } from "./HiddenExports.js"
import { capMemoryOf, type MemoryCapInfo } from "./MemoryCap.js"
import { readModule } from "./ModuleReader.js"
import { succeed, type ReadResult } from "./ReadResult.js"
import type { RewriteScratch } from "./RewriteScratch.js"
import type { ModuleInfo } from "./Types.js"
import { checkInput, checkOutput } from "./internal/RewriteGuard.js"
import { exportStateOf, type StateExport } from "./StateExport.js"
import { capTablesOf, planBudget, type TableCapInfo } from "./TableCap.js"

/** Which rewrites to apply; an empty object changes nothing. */
export interface RewriteOptions {
  /**
   * The agent's budget, in pages of 64 KiB: memory 0 and every table are
   * capped so that together they fit in it (`TableCap.ts`: tables get their
   * initial entries and the bytes below memory's last whole page; a module
   * without tables caps memory 0 at exactly this many pages, see `capMemory`).
   */
  readonly maxMemoryPages?: number
  /** Export all mutable state for complete snapshots (see `exportState`). */
  readonly exportState?: boolean
  /** Instrument fuel metering (see `instrumentFuel`); an object passes its options. */
  readonly fuel?: boolean | FuelOptions
  /**
   * Add the dirty-page write barrier (see `instrumentDirtyPages`): a worker
   * engine tracking agents' memory for recovery compares only the pages it
   * marks. Applied after fuel metering, so the barrier's instructions cost
   * no fuel (fuel counts stay the same with and without it).
   */
  readonly dirtyPages?: boolean
  /**
   * The module as read (`readModule`, either body mode: the `ModuleInfo` is
   * the same), from a caller that has had these exact bytes validated by the
   * host already (`WebAssembly.validate` or a successful compile) and
   * compiles the output itself (a compile validates it; a refusal there is
   * a rewriter bug). The rewrite then skips what would repeat that work:
   * reading the input with body decoding and validating input and output —
   * on an 0.88 MB module about a third of the rewrite's time. Giving it for
   * bytes the host has not validated voids the contract below (an invalid
   * input may become a valid output). The runtime's compile cache passes
   * the `ModuleInfo` its `loadModule` read and validated.
   */
  readonly validated?: ModuleInfo
  /**
   * A reusable output buffer (`RewriteScratch`) for a caller that compiles
   * the result at once: where the last rewrite applied is fuel metering,
   * `RewriteResult.bytes` is then a view of the scratch's buffer (no fresh
   * 1–2 MB buffer to fault in per rewrite), valid until the next rewrite
   * given the same scratch. `WebAssembly.compile` and `new
   * WebAssembly.Module` copy the bytes when called, so compiling them
   * right away is safe; copy them (`slice()`) to keep, hash later or send
   * them. Other rewrites (and a fuel rewrite followed by the barrier or
   * the state exports) return fresh bytes as without it.
   */
  readonly scratch?: RewriteScratch
}

/** The rewritten module and everything the rewrites learned about it. */
export interface RewriteResult {
  readonly bytes: Uint8Array<ArrayBuffer>
  /** What the cap did to memory 0; `undefined` when `maxMemoryPages` was not given. */
  readonly memory: MemoryCapInfo | undefined
  /** What the cap did to each table (table index order); empty when `maxMemoryPages` was not given. */
  readonly tables: ReadonlyArray<TableCapInfo>
  /**
   * Where the state can be read (globals, memory export, unsnapshottable
   * globals); `undefined` when `exportState` was not requested. The fuel
   * counter is not listed: it is set by the engine before every call, not
   * agent state.
   */
  readonly state: Omit<StateExport, "bytes"> | undefined
  /** `FUEL_EXPORT` when fuel metering was added, else `undefined`. */
  readonly fuelExport: string | undefined
  /** `DIRTY_PAGES_EXPORT` when the write barrier was added (asked for, and the module has a memory), else `undefined`. */
  readonly dirtyPagesExport: string | undefined
  /** The hidden exports the rewrites added, in export order. */
  readonly addedExports: ReadonlyArray<string>
}

/**
 * Applies the requested rewrites in order: memory cap, then fuel, then the
 * dirty-page barrier, then state exports (last, so it sees the final module;
 * the fuel counter and the bitmap it finds are skipped). The module is decoded and checked once up front (`readModule`),
 * and its framing read again (without body decoding) after a rewrite that
 * moved sections; each rewrite copies the sections it does not change byte
 * for byte;
 * the result is a valid module whenever the input is.
 *
 * Contract (unless `options.validated` vouches for the input): a rewrite is never applied to a module that does not validate.
 * The input must pass `readModule` and, where a `WebAssembly` global exists,
 * `WebAssembly.validate` (else `kind: "invalid"`, with the host's reason and
 * offset); the output is checked with `WebAssembly.validate` as well (a
 * refusal there is a rewriter bug, reported as a typed error instead of
 * returned). So the output validates iff the input does.
 *
 * Fails with the `WasmBinaryError` of the first rewrite that refuses the
 * module: malformed, invalid or unsupported bytes, an initial memory above the cap, more than one
 * memory (cap), an unknown opcode (fuel), an export that already uses the
 * `agent-runtime:` prefix (fuel, state exports).
 *
 * @example
 * const r = rewriteModule(bytes, { maxMemoryPages: 256, exportState: true, fuel: true })
 * if (r.ok && r.value.memory?.kind === "imported") {
 *   // the host must create the memory with maximum: r.value.memory.maxPages
 * }
 */
export const rewriteModule = (bytes: Uint8Array, options: RewriteOptions): ReadResult<RewriteResult> => {
  if (options.validated !== undefined) return rewriteChecked(bytes, { ok: true, value: options.validated }, options)
  const read = checkInput(bytes)
  if (!read.ok) return read
  return checkOutput(rewriteChecked(bytes, read, options), (r) => r.bytes)
}

const rewriteChecked = (
  bytes: Uint8Array,
  read: ReadResult<ModuleInfo> & { ok: true },
  options: RewriteOptions
): ReadResult<RewriteResult> => {
  // Every rewrite returns fresh bytes and never writes its input: the input is copied only when no
  // rewrite runs (the result never aliases the caller's bytes), not before a rewrite (≈ 0.1–0.3 ms on 1 MB).
  let current: Uint8Array = bytes
  let memory: MemoryCapInfo | undefined
  let tables: ReadonlyArray<TableCapInfo> = []
  let moved = false
  if (options.maxMemoryPages !== undefined) {
    const plan =
      Number.isSafeInteger(options.maxMemoryPages) && options.maxMemoryPages >= 0
        ? planBudget(read.value, options.maxMemoryPages)
        : undefined
    if (plan !== undefined && !plan.ok) return plan
    const tabled = plan === undefined ? undefined : capTablesOf(current, read.value, plan.value)
    if (tabled !== undefined && !tabled.ok) return tabled
    moved = tabled !== undefined && tabled.value.byteLength !== current.byteLength
    // bodies were checked on the input (or vouched for) and are copied unchanged: the framing is enough
    const info = moved ? readModule(tabled!.value, { bodies: false }) : read
    if (!info.ok) return info
    const capped = capMemoryOf(tabled?.value ?? current, info.value, plan?.value.memoryPages ?? options.maxMemoryPages)
    if (!capped.ok) return capped
    current = capped.value.bytes
    memory = capped.value.memory
    tables = plan?.value.tables ?? []
    moved ||= memory.rewritten
  }
  let fuelExport: string | undefined
  if (options.fuel !== undefined && options.fuel !== false) {
    // the output lands in the caller's scratch when nothing rewrites it again
    const last = options.dirtyPages !== true && options.exportState !== true
    const fueled = instrumentFuelOf(
      current,
      options.fuel === true ? {} : options.fuel,
      "wasm",
      last ? options.scratch : undefined
    )
    if (!fueled.ok) return fueled
    current = fueled.value
    fuelExport = FUEL_EXPORT
  }
  const fuelHidden = fuelExport === undefined ? [] : [fuelExport, START_EXPORT]
  let dirtyPagesExport: string | undefined
  if (options.dirtyPages === true) {
    const info = !moved && fuelExport === undefined ? read : readModule(current, { bodies: false })
    if (!info.ok) return info
    const barred = dirtyPagesOf(current, info.value, { allowHidden: fuelHidden })
    if (!barred.ok) return barred
    // a module without memory comes back unchanged (nothing to track)
    if (barred.value.byteLength !== current.byteLength) dirtyPagesExport = DIRTY_PAGES_EXPORT
    current = barred.value
  }
  let state: Omit<StateExport, "bytes"> | undefined
  if (options.exportState === true) {
    // Section offsets move when an earlier rewrite changed the bytes.
    // (the fuel pass re-encodes bodies the input check accepted: the framing is enough here)
    const info =
      !moved && fuelExport === undefined && dirtyPagesExport === undefined
        ? read
        : readModule(current, { bodies: false })
    if (!info.ok) return info
    const exported = exportStateOf(current, info.value, {
      allowHidden: dirtyPagesExport === undefined ? fuelHidden : [...fuelHidden, dirtyPagesExport]
    })
    if (!exported.ok) return exported
    const { bytes: out, ...rest } = exported.value
    current = out
    state = { ...rest, globals: rest.globals.filter((g) => g.name !== fuelExport && g.name !== dirtyPagesExport) }
  }
  const addedExports = [
    ...(fuelExport === undefined ? [] : [fuelExport]),
    ...(fuelExport !== undefined &&
    typeof options.fuel === "object" &&
    options.fuel.deferStart === true &&
    read.value.start !== undefined
      ? [START_EXPORT]
      : []),
    ...(dirtyPagesExport === undefined ? [] : [dirtyPagesExport]),
    ...(state?.globals.filter((g) => g.added).map((g) => g.name) ?? []),
    ...(state?.memoryExport === MEMORY_EXPORT ? [MEMORY_EXPORT] : [])
  ]
  const out: Uint8Array<ArrayBuffer> = current === bytes ? new Uint8Array(bytes) : (current as Uint8Array<ArrayBuffer>)
  return succeed({ bytes: out, memory, tables, state, fuelExport, dirtyPagesExport, addedExports })
}
