/**
 * Fuel metering: rewrite a module so it counts the work it does and traps
 * when its fuel runs out. Engines without preemption (the native and edge
 * engines) bound a call's CPU time this way.
 *
 * The rewrite adds one mutable i64 global, the fuel counter, at the end of
 * the global index space (no existing global index shifts), exported as
 * `FUEL_EXPORT` (`"agent-runtime:fuel"`). In a module that defines no
 * globals of its own the counter is *imported*
 * (`(import "agent-runtime" "fuel" (global (mut i64)))`, after the existing
 * imports — with no defined global, no index moves either), so an engine can
 * hand every instance on a thread the same `WebAssembly.Global`: V8 gives
 * each instance with a defined non-reference global its own small globals
 * `ArrayBuffer`, and allocating those runs young GCs for "external memory
 * pressure" (20 000 instances of a 1-page module: ≈ 60 such GCs with a
 * defined counter, none with an imported one). The engine sets it to the call's
 * fuel before a call and reads it after: the value is the fuel left. A call
 * traps with `unreachable` when its fuel drops below 0, so a trap with the
 * counter < 0 is fuel exhaustion (other traps leave it ≥ 0 unless the fuel
 * was already spent, in which case the call could not have completed).
 *
 * Costs follow Wasmtime's `consume_fuel` defaults (cranelift
 * `fuel_before_op`): `nop`, `drop`, `block`, `loop`, `unreachable`, `return`,
 * `else` and `end` cost 0 fuel units; every other instruction costs 1.
 *
 * Where fuel is charged and checked (see `instrumentFuel`) makes the count
 * exact on every path that completes: a call that executes instructions
 * costing F units in total succeeds with fuel F (leaving 0) and traps with
 * fuel F − 1 (leaving −1). Runs are deterministic: the same call with the
 * same fuel stops at the same point.
 *
 * The pass is one linear scan per function body with a decoder specialised
 * for it, writing straight into the output buffer. With the default costs
 * the scan runs as WebAssembly (`internal/FuelScanWasm.ts`, a ≈ 6.6 KB
 * module compiled once per process, synchronously, on first use) where the
 * host allows runtime compilation; elsewhere (workerd, a CSP without
 * `wasm-unsafe-eval`, a browser's main thread, which refuses synchronous
 * compiles above 4 KB) and with custom `costs` it runs as JavaScript
 * (`internal/FuelScan.ts`). A body the scan does not handle (a malformed or
 * unusual encoding) is rewritten by the checked decoder
 * (`decodeInstruction`) instead, with the same output or the same
 * `WasmBinaryError`: every path writes the same bytes.
 *
 * @since 0.1.0
 */
import { ByteReader } from "./internal/ByteReader.js"
import { ByteWriter } from "./internal/ByteWriter.js"
import { nextSection, readPreamble, type RawSection, SectionId, sectionRank } from "./internal/Sections.js"
import {
  FUEL_EXPORT,
  FUEL_IMPORT_MODULE,
  FUEL_IMPORT_NAME,
  FUEL_SECTION,
  HIDDEN_EXPORT_PREFIX,
  START_EXPORT
} from "./HiddenExports.js"
import { decodeInstruction, Immediates, type Opcode, opcodeName, readLocals } from "./Instructions.js"
import { FuelScan } from "./internal/FuelScan.js"
import { rewriteCodeWasm } from "./internal/FuelScanWasm.js"
import { checkInput, checkOutput } from "./internal/RewriteGuard.js"
import { attempt, type ReadResult } from "./ReadResult.js"
import type { RewriteScratch } from "./RewriteScratch.js"
import { WasmBinaryError } from "./WasmBinaryError.js"
import {
  BLOCK,
  BR,
  BR_IF,
  BR_TABLE,
  CALL,
  CALL_INDIRECT,
  CATCH,
  CATCH_ALL,
  DELEGATE,
  ELSE,
  END,
  GLOBAL_GET,
  GLOBAL_SET,
  IF,
  LOCAL_GET,
  LOCAL_SET,
  LOCAL_TEE,
  LOOP,
  RETHROW,
  RETURN,
  RETURN_CALL,
  RETURN_CALL_INDIRECT,
  THROW,
  TRY,
  UNREACHABLE
} from "./internal/Opcodes.js"

/** Options of `instrumentFuel`. */
export interface FuelOptions {
  /**
   * Fuel units an instruction costs (a non-negative safe integer), by opcode
   * (see `Opcode` in Instructions.ts). Default: `defaultOperatorCost`. A
   * function of the opcode alone: it is asked once per opcode the module
   * uses, and the answer is reused for every instruction with that opcode.
   */
  readonly costs?: (opcode: Opcode) => number
  /**
   * Initial value of the fuel global (default `0n`, as the rewrite spec
   * says). A module with a start function runs it during instantiation,
   * before the engine can set the counter: with 0 fuel its start function
   * traps, so engines pass the instantiation budget here.
   */
  readonly initialFuel?: bigint
  /**
   * Defer the start function (default false): the start section is dropped
   * and the function is exported as `START_EXPORT` (`"agent-runtime:start"`)
   * for the engine to call right after instantiation — with the counter
   * readable, so a start function that runs out of fuel is recognisable
   * (counter < 0) instead of a bare `unreachable` trap of a failed
   * instantiation. The engine must call it before any other export; the
   * instance is unusable when it traps (as a failed instantiation would be).
   */
  readonly deferStart?: boolean
  /**
   * Where the counter lives: `"auto"` (default) imports it
   * (`FUEL_IMPORT_MODULE`.`FUEL_IMPORT_NAME`) when the module defines no
   * globals, else defines it; `"defined"` always defines it (a module that
   * instantiates without imports, as before the import existed). Either way
   * it is exported as `FUEL_EXPORT` and the instrumentation is the same
   * bytes (the counter has the same global index).
   */
  readonly counter?: "auto" | "defined"
}

/**
 * The import object entry an instance of a module with an imported fuel
 * counter needs: `{ "agent-runtime": { fuel: counter } }`, `counter` a
 * `new WebAssembly.Global({ value: "i64", mutable: true })`. Merge it into
 * the module's other imports (an unused import is ignored, so it can be given
 * to a module with a defined counter too). Set `counter.value` to the
 * module's initial fuel (`FUEL_SECTION`) before instantiating when the module
 * has a start function that was not deferred.
 */
export const fuelImports = <Counter>(counter: Counter): Record<string, Record<string, Counter>> => ({
  [FUEL_IMPORT_MODULE]: { [FUEL_IMPORT_NAME]: counter }
})

/**
 * Wasmtime's default cost of an instruction (`fuel_before_op` in
 * wasmtime-cranelift's func_environ.rs): 0 for `unreachable` (0x00), `nop`
 * (0x01), `block` (0x02), `loop` (0x03), `else` (0x05), `end` (0x0b),
 * `return` (0x0f) and `drop` (0x1a) — they generate no code or only
 * control flow — and 1 for everything else, `if`, branches and calls
 * included.
 */
export const defaultOperatorCost = (opcode: Opcode): number => (opcode < 0x20 ? (ZERO_COST[opcode] ?? 1) : 1)

const ZERO_COST: ReadonlyArray<number | undefined> = (() => {
  const t: Array<number | undefined> = []
  for (const op of [0x00, 0x01, 0x02, 0x03, 0x05, 0x0b, 0x0f, 0x1a]) t[op] = 0
  return t
})()

/**
 * Rewrites `bytes` so every function charges fuel for its instructions and
 * traps (`unreachable`) when the fuel counter drops below 0.
 *
 * - Fuel counter: a new `(mut i64)` global appended after all imported and
 *   defined globals, initialised to `options.initialFuel` (default 0),
 *   exported as `FUEL_EXPORT`. The global and export sections are updated,
 *   or created in their place in the section order (core spec §5.5.16).
 *   When the module defines no globals (and `options.counter` is not
 *   `"defined"`) the counter is instead a global import
 *   `FUEL_IMPORT_MODULE`.`FUEL_IMPORT_NAME` appended to the import section
 *   (created when missing), re-exported as `FUEL_EXPORT`, and the initial
 *   fuel goes into a custom section `FUEL_SECTION` (8 bytes, little-endian
 *   i64) at the end of the module for the engine to set before
 *   instantiating; the global index is the same either way (the imported
 *   globals' count).
 * - Inside a function the fuel lives in one added i64 local (declared after
 *   the function's own locals, so no local index shifts), which the engine
 *   keeps in a register: `global.get $fuel; local.set $f` at entry, after
 *   every call and at every `catch`/`catch_all` handler; `local.get $f;
 *   global.set $fuel` before every call, `throw`, `rethrow`, `unreachable`,
 *   failed check and exit. (Wasmtime caches its fuel the same way.)
 * - Charge: at the start of every basic block that can execute — function
 *   entry; after `loop`, `if`, `else`, `end`, `delegate`, `catch`,
 *   `catch_all`; after `br_if`, `br_table`, and calls — the block's summed
 *   cost c is subtracted: `local.get $f; i64.const c; i64.sub; local.set $f`
 *   (nothing when c = 0). Where the block also reloads the local (entry,
 *   after calls, handlers) the load and the charge are one expression,
 *   `global.get $fuel; i64.const c; i64.sub; local.set $f`, and where it is
 *   also checked (entry, loop headers) the check tests the stored value,
 *   `…; local.tee $f; i64.const 0; i64.lt_s; if …` — the same values in
 *   the local and the global at every point that reads them, in fewer
 *   instructions (1.84× the original instructions of sqlite3 instead of
 *   1.94×; less to compile). `block` and `try` do not end a basic block
 *   (entering them is straight-line code), and code after an unconditional
 *   transfer (`br`, `br_table`, `return`, `unreachable`, `throw`, `rethrow`,
 *   tail calls) is dead and not instrumented. The cost of `catch` and
 *   `catch_all` is charged to the handler they open.
 * - Check: `local.get $f; i64.const 0; i64.lt_s; if; (store;) unreachable;
 *   end` at function entry and every loop header (after their charge), so a
 *   loop without calls and unbounded recursion both stop; and, after the
 *   store, before every exit from the function (`return`, tail calls,
 *   branches to the function's label, the final `end`), so a call never
 *   completes with negative fuel.
 * - Everything else is kept byte for byte: other sections (custom sections
 *   included — a `name` section stays valid since no index shifts; DWARF
 *   code offsets do not), the original local declarations (one `1 × i64`
 *   run is appended), and the original instructions.
 *
 * After a trap that was not fuel exhaustion (a division by zero, an
 * out-of-bounds access) the global holds the fuel of the last store (at the
 * latest call, entry or `unreachable`): consumption is exact for calls that
 * return or run out of fuel, approximate for other traps.
 *
 * Contract: the rewrite is never applied to a module that does not
 * validate. The input must pass `readModule` and, where a `WebAssembly`
 * global exists, `WebAssembly.validate`; the output is checked with
 * `WebAssembly.validate` too, so the output validates iff the input does.
 * The rewriter's own bookkeeping refuses too, without a validator: the fuel
 * local and global are appended after every index the module can name, so
 * a body whose `local.get/set/tee` names an index ≥ its parameters + locals,
 * or whose `global.get/set` names an index ≥ the module's globals (imports
 * included), is refused (`kind: "invalid"`, `"unknown local N"` / `"unknown
 * global N"`) — such a module would otherwise become a valid one that
 * refills its own fuel.
 *
 * Fails with a `WasmBinaryError` on malformed bytes, an illegal opcode (an
 * instruction Node 20 does not have), an invalid module (see the contract
 * above; `kind: "invalid"`), a module that already exports a name
 * starting with `HIDDEN_EXPORT_PREFIX` (e.g. one already rewritten) or
 * imports anything from the reserved module `FUEL_IMPORT_MODULE`, a
 * function with 50 000 locals already (V8's limit leaves no room for the
 * counter), or a `costs` function returning something other than a
 * non-negative safe integer (at the instruction's offset).
 *
 * @example
 * const r = instrumentFuel(bytes)
 * if (r.ok) {
 *   const { instance } = await WebAssembly.instantiate(r.value)
 *   const fuel = instance.exports[FUEL_EXPORT] as WebAssembly.Global
 *   fuel.value = 10_000n // then call an export; fuel.value is what is left
 * }
 */
export const instrumentFuel = (bytes: Uint8Array, options: FuelOptions = {}): ReadResult<Uint8Array<ArrayBuffer>> => {
  const input = checkInput(bytes)
  if (!input.ok) return input
  return checkOutput(instrumentFuelOf(bytes, options), (b) => b)
}

/**
 * Which path rewrites the bodies: `"wasm"` (default) the scan compiled to WebAssembly
 * (`internal/FuelScanWasm.ts`; default costs only, and where the host can compile it — else `"js"`),
 * `"js"` the specialised JS scanner (`internal/FuelScan.ts`), `"checked"` the checked decoder
 * (`decodeInstruction`). Each fast path leaves what it does not handle to the next: the same bytes or
 * the same typed error by contract, which the differential tests hold them to. @internal
 */
export type FuelScanner = "wasm" | "js" | "checked"

/**
 * `instrumentFuel` of a module already checked (`checkInput`); the output is not checked. `scanner`:
 * see `FuelScanner`. `into`: the output is assembled in that scratch buffer (valid until its next
 * `take`) instead of fresh bytes. @internal
 */
export const instrumentFuelOf = (
  bytes: Uint8Array,
  options: FuelOptions = {},
  scanner: FuelScanner = "wasm",
  into?: RewriteScratch
): ReadResult<Uint8Array<ArrayBuffer>> => {
  let r = new ByteReader(bytes)
  return attempt(
    () => {
      r = readPreamble(bytes)
      const sections: Array<RawSection> = []
      while (!r.atEnd) sections.push(nextSection(r))

      let start: number | undefined
      let importedGlobals = 0
      let definedGlobals = 0
      let paramCounts: ReadonlyArray<number> = []
      let functionTypes: ReadonlyArray<number> = []
      for (const s of sections) {
        if (s.id === SectionId.type) paramCounts = readParamCounts(bytes, s)
        else if (s.id === SectionId.import) importedGlobals = countImportedGlobals(bytes, s)
        else if (s.id === SectionId.function) functionTypes = readFunctionTypes(bytes, s)
        else if (s.id === SectionId.global)
          definedGlobals = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch").count()
        else if (s.id === SectionId.export) refuseHiddenExports(bytes, s)
        else if (s.id === SectionId.start && options.deferStart === true) {
          start = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch").u32()
        }
      }
      const paramsOf = (definedFunction: number, at: number): number => {
        const type = functionTypes[definedFunction]
        if (type === undefined) throw new WasmBinaryError(at, "function and code section have inconsistent lengths")
        const params = paramCounts[type]
        if (params === undefined) throw new WasmBinaryError(at, "unknown type")
        return params
      }
      // no global of its own: the counter is imported (no per-instance globals buffer), same index
      const importCounter = definedGlobals === 0 && options.counter !== "defined"
      const fuelGlobal = importedGlobals + definedGlobals
      if (fuelGlobal > 0xffffffff - 1) throw new WasmBinaryError(8, "too many globals")
      const initial = options.initialFuel ?? 0n
      if (initial !== BigInt.asIntN(64, initial)) throw new WasmBinaryError(0, `initial fuel ${initial} is not an i64`)
      const costOf = options.costs ?? defaultOperatorCost

      // The output is assembled once, at its exact size, from pieces: unchanged sections are views of the
      // input (copied once, at the end), rewritten ones come from their own writers (the code section's is
      // sized for instrumented code, typically 1.2–1.8× the original).
      const pieces: Array<Uint8Array> = [bytes.subarray(0, 8)]
      let total = 8
      const keep = (piece: Uint8Array): void => {
        pieces.push(piece)
        total += piece.length
      }
      const section = (id: number, capacity: number, body: (w: ByteWriter) => void): void =>
        keep(new ByteWriter(capacity).section(id, body).view())
      const hasImport = sections.some((s) => s.id === SectionId.import)
      const hasGlobal = sections.some((s) => s.id === SectionId.global)
      const hasExport = sections.some((s) => s.id === SectionId.export)
      let importDone = hasImport || !importCounter
      let globalDone = hasGlobal || importCounter
      let exportDone = hasExport
      const importRank = sectionRank(SectionId.import) as number
      const globalRank = sectionRank(SectionId.global) as number
      const exportRank = sectionRank(SectionId.export) as number

      const newGlobal = (w: ByteWriter) => w.u8(0x7e).u8(0x01).u8(0x42).s64(initial).u8(0x0b)
      /** Section `s` (a vector) again with `extra` more entries, which `entries` writes after its own (`room`: bytes to reserve for them). */
      const appended = (s: RawSection, extra: number, room: number, entries: (w: ByteWriter) => void) =>
        section(s.id, s.size + room, (w) => {
          const c = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
          const n = c.count()
          entries(w.u32(n + extra).bytes(bytes.subarray(c.offset, s.end)))
        })
      const newImport = (w: ByteWriter) => w.name(FUEL_IMPORT_MODULE).name(FUEL_IMPORT_NAME).u8(0x03).u8(0x7e).u8(0x01)
      const added = start === undefined ? 1 : 2
      const newExport = (w: ByteWriter) => {
        w.name(FUEL_EXPORT).u8(0x03).u32(fuelGlobal)
        if (start !== undefined) w.name(START_EXPORT).u8(0x00).u32(start)
      }

      let wasmPending = false
      for (const s of sections) {
        const rank = s.id === SectionId.custom ? undefined : sectionRank(s.id)
        if (rank !== undefined) {
          if (!importDone && rank > importRank) {
            section(SectionId.import, 32, (w) => newImport(w.u32(1)))
            importDone = true
          }
          if (!globalDone && rank > globalRank) {
            section(SectionId.global, 64, (w) => newGlobal(w.u32(1)))
            globalDone = true
          }
          if (!exportDone && rank > exportRank) {
            section(SectionId.export, 96, (w) => newExport(w.u32(added)))
            exportDone = true
          }
        }
        switch (s.id) {
          case SectionId.import:
            if (!importCounter) keep(bytes.subarray(s.offset, s.end))
            else appended(s, 1, 32, newImport)
            break
          case SectionId.global:
            // an empty global section with an imported counter: kept as it is
            if (importCounter) keep(bytes.subarray(s.offset, s.end))
            else appended(s, 1, 64, newGlobal)
            break
          case SectionId.export:
            appended(s, added, 96, newExport)
            break
          case SectionId.start:
            if (start === undefined) keep(bytes.subarray(s.offset, s.end)) // else deferred: exported instead
            break
          case SectionId.code: {
            // the WebAssembly scan's output is a view of its memory until the assembly below: one section only
            // (a second code section, in a module that does not validate, takes the JS path)
            const fast: ReadonlyArray<Uint8Array> | undefined =
              scanner === "wasm" && !wasmPending && costOf === defaultOperatorCost
                ? rewriteCodeFast(bytes, s, fuelGlobal, paramsOf, (i) => paramsOrNone(paramCounts, functionTypes, i))
                : undefined
            wasmPending ||= fast !== undefined
            if (fast !== undefined) for (const piece of fast) keep(piece)
            else
              section(SectionId.code, s.size * 2 + 64, (w) =>
                rewriteCode(bytes, s, w, fuelGlobal, paramsOf, costOf, scanner !== "checked")
              )
            break
          }
          default:
            keep(bytes.subarray(s.offset, s.end))
        }
      }
      if (!importDone) section(SectionId.import, 32, (w) => newImport(w.u32(1)))
      if (!globalDone) section(SectionId.global, 64, (w) => newGlobal(w.u32(1)))
      if (!exportDone) section(SectionId.export, 96, (w) => newExport(w.u32(added)))
      if (importCounter) {
        // the initial fuel, for the engine to set the shared counter to (FUEL_SECTION): 8 bytes, LE i64
        section(SectionId.custom, 32, (w) => {
          w.name(FUEL_SECTION)
          let v = BigInt.asUintN(64, initial)
          for (let k = 0; k < 8; k++, v >>= 8n) w.u8(Number(v & 0xffn))
        })
      }
      // every byte is written below: a scratch view's old contents never show
      // (not when the input is itself a view of that scratch: the output would overwrite it)
      const out = into === undefined || into.holds(bytes) ? new Uint8Array(total) : into.take(total)
      let at = 0
      for (const piece of pieces) {
        out.set(piece, at)
        at += piece.length
      }
      return out
    },
    () => r.offset
  )
}

/**
 * §5.5.5: counts the global imports (kind 0x03), decoding each import descriptor to find the next; fails on
 * an import from the reserved module `FUEL_IMPORT_MODULE` (the engine supplies its fuel counter there).
 */
const countImportedGlobals = (bytes: Uint8Array, s: RawSection): number => {
  const r = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
  const n = r.count()
  let globals = 0
  for (let i = 0; i < n; i++) {
    const from = r.offset
    if (asciiName(r, bytes, RESERVED_MODULE_BYTES)) {
      r.fail(`import from the reserved module "${FUEL_IMPORT_MODULE}" (the engine's fuel counter)`, from)
    }
    asciiName(r, bytes, undefined)
    const at = r.offset
    const kind = r.u8()
    switch (kind) {
      case 0x00: // func: typeidx
        r.u32()
        break
      case 0x01: // table: reftype, limits
        r.u8()
        limits(r)
        break
      case 0x02: // memory: limits
        limits(r)
        break
      case 0x03: // global: valtype, mut
        r.u8()
        r.u8()
        globals++
        break
      case 0x04: // tag (exception handling): attribute, typeidx
        r.u8()
        r.u32()
        break
      default:
        r.fail("malformed import kind", at)
    }
  }
  return globals
}

/** `FUEL_IMPORT_MODULE` as bytes (ASCII). */
const RESERVED_MODULE_BYTES: ReadonlyArray<number> = Array.from(FUEL_IMPORT_MODULE, (c) => c.charCodeAt(0))

/**
 * Reads a name (§5.2.4) at `r.offset` and says whether it equals the ASCII `expected` (given), without
 * decoding an ASCII name (valid UTF-8 by construction); a name with a byte ≥ 0x80, or a truncated one,
 * is read with `name()`, so malformed names fail with the decoder's error as before.
 */
const asciiName = (r: ByteReader, bytes: Uint8Array, expected: ReadonlyArray<number> | undefined): boolean => {
  const at = r.offset
  const length = r.u32()
  const start = r.offset
  let ascii = length <= r.end - start
  for (let j = start; ascii && j < start + length; j++) ascii = (bytes[j] as number) < 0x80
  if (!ascii) {
    r.offset = at
    r.name() // the decoder's error, or a non-ASCII name: not the (ASCII) expected one
    return false
  }
  r.offset = start + length
  if (expected === undefined || length !== expected.length) return false
  for (let k = 0; k < length; k++) if (bytes[start + k] !== expected[k]) return false
  return true
}

/** §5.3.7 limits (with the threads `shared` and memory64 flag bits): flags, min, optional max. */
const limits = (r: ByteReader): void => {
  const at = r.offset
  const flags = r.u8()
  if (flags > 0x07) r.fail("integer too large", at)
  r.u64()
  if ((flags & 0x01) !== 0) r.u64()
}

/** `HIDDEN_EXPORT_PREFIX` as bytes (ASCII). */
const HIDDEN_PREFIX_BYTES: ReadonlyArray<number> = Array.from(HIDDEN_EXPORT_PREFIX, (c) => c.charCodeAt(0))

/**
 * §5.5.10: fails on an export whose name starts with `HIDDEN_EXPORT_PREFIX`. Names are compared as
 * bytes: an ASCII name without the prefix is skipped undecoded (it is valid UTF-8 and cannot start
 * with the prefix); any other name (the prefix, a non-ASCII byte, a truncated name) is read with
 * `name()`, so the errors are the decoder's.
 */
const refuseHiddenExports = (bytes: Uint8Array, s: RawSection): void => {
  const r = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
  const n = r.count()
  const prefix = HIDDEN_PREFIX_BYTES
  for (let i = 0; i < n; i++) {
    const at = r.offset
    const length = r.u32()
    const start = r.offset
    const end = start + length
    let decode = length > r.end - start
    if (!decode) {
      let k = 0
      if (length >= prefix.length) while (k < prefix.length && bytes[start + k] === prefix[k]) k++
      decode = k === prefix.length
      for (let j = start; !decode && j < end; j++) decode = (bytes[j] as number) >= 0x80
    }
    if (decode) {
      r.offset = at
      const name = r.name()
      if (name.startsWith(HIDDEN_EXPORT_PREFIX)) {
        r.fail(`export "${name}" uses the reserved prefix "${HIDDEN_EXPORT_PREFIX}" (already rewritten?)`, at)
      }
    } else r.offset = end
    r.u8()
    r.u32()
  }
}

/** §5.5.4: the number of parameters of every function type. */
const readParamCounts = (bytes: Uint8Array, s: RawSection): Array<number> => {
  const r = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
  return r.vec((t) => {
    const at = t.offset
    if (t.u8() !== 0x60) t.fail("malformed function type", at)
    const params = t.count()
    t.skip(params) // value types are one byte in the types Node 20 knows
    t.skip(t.count())
    return params
  })
}

/** §5.5.6: the type index of every defined function. */
const readFunctionTypes = (bytes: Uint8Array, s: RawSection): Array<number> =>
  new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch").vec((r) => r.u32())

/** The most locals (parameters included) V8 accepts in a function (`kV8MaxWasmFunctionLocals`). */
const MAX_LOCALS = 50_000

/** What goes before an instruction inside a basic block. */
const FLUSH = 1 // store the fuel local to the global (before calls, throws, traps)
const EXIT = 2 // store, then check (before every way out of the function)

/** The parameter count of defined function `i`, or -1 when its type is unknown (the JS path reports it). */
const paramsOrNone = (paramCounts: ReadonlyArray<number>, functionTypes: ReadonlyArray<number>, i: number): number => {
  const type = functionTypes[i]
  return (type === undefined ? undefined : paramCounts[type]) ?? -1
}

/**
 * §5.5.13 with the scan compiled to WebAssembly (default costs): the code section's pieces, or undefined
 * where that scanner cannot run (the caller runs `rewriteCode`). A body the scanner leaves is rewritten by
 * `rewriteBodyAt` (JS scanner, then the checked decoder), so the output and errors are `rewriteCode`'s.
 */
const rewriteCodeFast = (
  bytes: Uint8Array,
  s: RawSection,
  fuelGlobal: number,
  paramsOf: (definedFunction: number, at: number) => number,
  paramsAt: (definedFunction: number) => number
): ReadonlyArray<Uint8Array> | undefined => {
  const c = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
  const n = c.count()
  let scan: FuelScan | undefined
  let imm: Immediates | undefined
  const done = rewriteCodeWasm(bytes, c.offset, s.end, n, fuelGlobal, paramsAt, (i, at, w) => {
    c.offset = at
    scan ??= new FuelScan(bytes, fuelGlobal, undefined)
    rewriteBodyAt(bytes, c, i, w, fuelGlobal, paramsOf, defaultOperatorCost, scan, () => (imm ??= new Immediates()))
    return c.offset
  })
  if (done === undefined) return undefined
  c.offset = done.end
  if (!c.atEnd) c.fail("section size mismatch")
  return done.pieces
}

/** §5.5.13: rewrites every body of the code section `s` into `w` (count, then size-prefixed bodies). */
const rewriteCode = (
  bytes: Uint8Array,
  s: RawSection,
  w: ByteWriter,
  fuelGlobal: number,
  paramsOf: (definedFunction: number, at: number) => number,
  costOf: (op: Opcode) => number,
  useScan: boolean
): void => {
  const c = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
  const n = c.count()
  w.u32(n)
  const scan = useScan
    ? new FuelScan(bytes, fuelGlobal, costOf === defaultOperatorCost ? undefined : costOf)
    : undefined
  let imm: Immediates | undefined
  const immediates = () => (imm ??= new Immediates())
  for (let i = 0; i < n; i++) rewriteBodyAt(bytes, c, i, w, fuelGlobal, paramsOf, costOf, scan, immediates)
  if (!c.atEnd) c.fail("section size mismatch")
}

/**
 * Rewrites defined function `i`'s body, whose size field is at `c.offset`, appending it with its size
 * field to `w` (the scanner when given and it handles the body, else the checked decoder); leaves
 * `c.offset` after the body.
 */
const rewriteBodyAt = (
  bytes: Uint8Array,
  c: ByteReader,
  i: number,
  w: ByteWriter,
  fuelGlobal: number,
  paramsOf: (definedFunction: number, at: number) => number,
  costOf: (op: Opcode) => number,
  scan: FuelScan | undefined,
  imm: () => Immediates
): void => {
  const at = c.offset
  const size = c.u32()
  if (size > c.end - c.offset) c.fail("unexpected end of section or function", at)
  const start = c.offset
  const end = start + size
  const params = paramsOf(i, at)
  const before = w.size
  if (scan === undefined || !scan.body(start, end, params, w)) {
    // the checked path: the same bytes, or the typed error (kind, reason, offset)
    w.setSize(before) // drop what the scan wrote of this body
    const r = new ByteReader(bytes, start, end, "unexpected end of section or function")
    // the body goes straight after room for its size (a u32: at most 5 bytes), then moves up to it
    const sizeAt = w.size
    w.skip(5)
    rewriteBody(bytes, r, w, fuelGlobal, params, imm(), costOf)
    w.closeSized(sizeAt)
  }
  c.offset = end
}

/**
 * Rewrites one body, appending it to `out`. The fuel is kept in a new
 * local (the last one, so no local index shifts) that the compiler keeps in
 * a register: loaded from the global at entry, after calls and at exception
 * handlers; stored back before calls, throws, `unreachable`, failed checks
 * and every exit. Charges and checks work on the local.
 */
const rewriteBody = (
  bytes: Uint8Array,
  r: ByteReader,
  out: ByteWriter,
  fuelGlobal: number,
  params: number,
  imm: Immediates,
  costOf: (op: Opcode) => number
): void => {
  const localsAt = r.offset
  const locals = readLocals(r)
  let declared = 0
  for (const l of locals) declared += l.count
  const fuelLocal = params + declared
  if (fuelLocal + 1 > MAX_LOCALS) r.fail("too many locals to add the fuel counter", localsAt)
  // local declarations: one more run, `1 × i64`, after the original ones
  const firstRun = new ByteReader(bytes, localsAt, r.offset)
  firstRun.count()
  out
    .u32(locals.length + 1)
    .copy(bytes, firstRun.offset, r.offset)
    .u8(0x01)
    .u8(0x7e)

  const flush = (): void => void out.u8(0x20).u32(fuelLocal).u8(0x24).u32(fuelGlobal)
  // local.get $f; i64.const 0; i64.lt_s; if; [local.get $f; global.set $fuel;] unreachable; end
  const check = (store: boolean): void => {
    out.u8(0x20).u32(fuelLocal).u8(0x42).u8(0x00).u8(0x53).u8(0x04).u8(0x40)
    if (store) flush()
    out.u8(0x00).u8(0x0b)
  }

  let segStart = r.offset // first original byte of the current basic block
  let segCost = 0 // its summed cost
  let segLoad = true // reload the local from the global first (entry, after calls, handlers)
  let segCheck = true // check after the charge (function entry, loop header)
  let segDead = false // unreachable code: nothing inserted
  const marks: Array<number> = [] // pairs (offset, FLUSH | EXIT) inside the block
  let markCount = 0
  let depth = 0 // open blocks; a label equal to `depth` is the function's own

  const endBlock = (end: number): void => {
    if (!Number.isSafeInteger(segCost)) r.fail("fuel cost of a basic block exceeds 2^53", segStart)
    if (!segDead) {
      if (segLoad || segCost > 0) {
        // one expression: [global.get $fuel | local.get $f] [i64.const c; i64.sub] (local.set $f | local.tee $f; check)
        if (segLoad) out.u8(0x23).u32(fuelGlobal)
        else out.u8(0x20).u32(fuelLocal)
        if (segCost > 0) {
          out.u8(0x42)
          if (segCost <= 0x7fffffff) out.s32(segCost)
          else out.s64(BigInt(segCost))
          out.u8(0x7d)
        }
        if (segCheck) {
          out.u8(0x22).u32(fuelLocal).u8(0x42).u8(0x00).u8(0x53).u8(0x04).u8(0x40)
          flush()
          out.u8(0x00).u8(0x0b)
        } else out.u8(0x21).u32(fuelLocal)
      } else if (segCheck) check(true)
      let from = segStart
      for (let k = 0; k < markCount; k += 2) {
        const x = marks[k] as number
        out.copy(bytes, from, x)
        flush()
        if (marks[k + 1] === EXIT) check(false)
        from = x
      }
      out.copy(bytes, from, end)
    } else {
      out.copy(bytes, segStart, end)
    }
    segStart = end
    segCost = 0
    segLoad = false
    segCheck = false
    segDead = false
    markCount = 0
  }
  const mark = (at: number, kind: number): void => {
    marks[markCount++] = at
    marks[markCount++] = kind
  }

  for (;;) {
    if (r.atEnd) r.fail("END opcode expected", r.end)
    const at = r.offset
    const op = decodeInstruction(r, imm)
    // the default table inline (no call, no check); a caller's `costs` is called and checked
    const cost = costOf === defaultOperatorCost ? (op < 0x20 ? (ZERO_COST[op] ?? 1) : 1) : costOf(op)
    if (costOf !== defaultOperatorCost && (!Number.isSafeInteger(cost) || cost < 0)) {
      r.fail(`invalid fuel cost ${String(cost)} for ${opcodeName(op)}`, at)
    }
    switch (op) {
      case BLOCK:
      case TRY:
        depth++
        segCost += cost
        break
      case LOOP:
        depth++
        segCost += cost
        endBlock(r.offset)
        segCheck = true
        break
      case IF:
        depth++
        segCost += cost
        endBlock(r.offset)
        break
      case ELSE:
        segCost += cost
        endBlock(r.offset)
        break
      case CATCH:
      case CATCH_ALL:
        // The handler runs from here, after a throw stored the fuel: reload, and charge the handler's block.
        endBlock(at)
        endBlock(r.offset)
        segCost = cost
        segLoad = true
        break
      case END:
        segCost += cost
        if (depth === 0) {
          mark(at, EXIT)
          endBlock(r.offset)
          if (!r.atEnd) r.fail("section size mismatch", r.offset)
          return
        }
        depth--
        endBlock(r.offset)
        break
      case DELEGATE:
        if (depth === 0) r.fail("delegate outside a try block", at)
        depth--
        segCost += cost
        endBlock(r.offset)
        break
      case BR:
        if (imm.label === depth) mark(at, EXIT)
        segCost += cost
        endBlock(r.offset)
        segDead = true
        break
      case BR_IF:
        if (imm.label === depth) mark(at, EXIT)
        segCost += cost
        endBlock(r.offset)
        break
      case BR_TABLE: {
        let toFunction = imm.label === depth
        for (let k = 0; k < imm.labelCount && !toFunction; k++) toFunction = imm.labels[k] === depth
        if (toFunction) mark(at, EXIT)
        segCost += cost
        endBlock(r.offset)
        segDead = true
        break
      }
      case RETURN:
      case RETURN_CALL:
      case RETURN_CALL_INDIRECT:
        mark(at, EXIT)
        segCost += cost
        endBlock(r.offset)
        segDead = true
        break
      case UNREACHABLE:
      case THROW:
      case RETHROW:
        mark(at, FLUSH)
        segCost += cost
        endBlock(r.offset)
        segDead = true
        break
      case CALL:
      case CALL_INDIRECT:
        mark(at, FLUSH)
        segCost += cost
        endBlock(r.offset)
        segLoad = true
        break
      case LOCAL_GET:
      case LOCAL_SET:
      case LOCAL_TEE:
        // The fuel local is `fuelLocal`: an index at or past it would alias the counter.
        if (imm.index >= fuelLocal) r.invalid(`unknown local ${imm.index}`, at)
        segCost += cost
        break
      case GLOBAL_GET:
      case GLOBAL_SET:
        // The fuel global is `fuelGlobal`: an index at or past it would alias the counter.
        if (imm.index >= fuelGlobal) r.invalid(`unknown global ${imm.index}`, at)
        segCost += cost
        break
      default:
        segCost += cost
    }
  }
}
