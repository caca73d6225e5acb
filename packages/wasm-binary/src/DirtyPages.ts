/**
 * A write barrier for linear memory: rewrite a module so it records which
 * pages its own code may have written, in a bitmap the engine reads and
 * clears after a call. A worker engine that keeps a shadow copy of every
 * agent's memory for recovery then compares only the pages whose bit is set
 * instead of all of them after every call (issue 13 item 7, "a write barrier
 * where the engine allows").
 *
 * The bitmap is one mutable i64 global added at the end of the global index
 * space (no existing index shifts), initialised to 0 and exported as
 * `DIRTY_PAGES_EXPORT` (`"agent-runtime:dirty-pages"`). Bit k set means "a
 * page p with p ≡ k (mod 64) may have changed" (pages of 64 KiB; aliasing
 * modulo 64 is conservative). A store sets the bit of the page of its
 * effective address; a store of up to 16 bytes may spill into the next page,
 * so a consumer also checks page p when bit (p − 1) mod 64 is set
 * (`dirtyPageMask` folds that in). Bulk writes (`memory.fill`, `memory.copy`,
 * `memory.init`) set the bits of the pages they write — every bit when they
 * span 64 pages or more —; atomic writes set every bit.
 *
 * Inside a function the bits gather in a local i64 (a register), published
 * to the global — OR-ed in — before every way out of the function (`return`,
 * tail calls, branches to the function's label, the final `end`) and before
 * every call, `throw` and `rethrow`, as the fuel rewrite keeps its counter.
 * A call that **traps** may leave bits of the frames it unwound unpublished:
 * after a failed call the consumer must treat every page as dirty.
 *
 * @since 0.4.0
 */
import { ByteReader } from "./internal/ByteReader.js"
import { ByteWriter } from "./internal/ByteWriter.js"
import { checkInput, checkOutput } from "./internal/RewriteGuard.js"
import { nextSection, readPreamble, type RawSection, SectionId, sectionRank } from "./internal/Sections.js"
import { DIRTY_PAGES_EXPORT, HIDDEN_EXPORT_PREFIX } from "./HiddenExports.js"
import { decodeInstruction, Immediates, readLocals } from "./Instructions.js"
import { attempt, type ReadResult } from "./ReadResult.js"
import type { ModuleInfo } from "./Types.js"
import { WasmBinaryError } from "./WasmBinaryError.js"
import {
  BLOCK,
  BR,
  BR_IF,
  BR_TABLE,
  CALL,
  CALL_INDIRECT,
  DELEGATE,
  END,
  GLOBAL_GET,
  GLOBAL_SET,
  IF,
  LOOP,
  RETHROW,
  RETURN,
  RETURN_CALL,
  RETURN_CALL_INDIRECT,
  THROW,
  TRY
} from "./internal/Opcodes.js"

/** Options of `dirtyPagesOf` (internal composition, `rewriteModule`). */
export interface DirtyPagesOptions {
  /** Hidden exports an earlier rewrite added (e.g. the fuel counter) that the module may carry. */
  readonly allowHidden?: ReadonlyArray<string>
}

/**
 * Rewrites `bytes` so every write its code makes to linear memory is
 * recorded in the dirty-page bitmap (`DIRTY_PAGES_EXPORT`).
 *
 * - Before every store — `i32/i64/f32/f64.store`, the narrow stores
 *   (opcodes 0x36–0x3E), `v128.store` and `v128.storeN_lane` — the value
 *   and the address go to scratch locals (appended after the function's own
 *   locals: the address, the function's bitmap, one value local per value
 *   type used, so no local index shifts) and the bit
 *   `((address + offset) >>> 16) mod 64` is OR-ed into the function's
 *   bitmap local; then the address and value are pushed back and the store
 *   runs unchanged. The local is OR-ed into the global before exits, calls
 *   and throws (`global.get; local.get; i64.or; global.set`, stack-neutral). The
 *   memarg offset (a u32) is added with wrap-around: the sum only wraps for
 *   an address past 4 GiB, whose store traps and writes nothing.
 * - `memory.fill`, `memory.copy` and `memory.init` (operands: destination
 *   d, source or value, length n — all i32) go to four scratch i32 locals
 *   and OR the bits of pages `d >>> 16` … `(d + n − 1) >>> 16` into the
 *   global — `rotl((1 << count) − 1, d >>> 16)`, all 64 bits when `count`
 *   ≥ 64 (a `select`) — then push their operands back; `n` = 0 marks
 *   nothing (or, for d = 0, everything). Bounds: a bulk write out of bounds
 *   traps before it writes, and an address sum that wraps is out of bounds.
 * - Every atomic read-modify-write or store (`0xFE17`–`0xFE4E`) sets all
 *   64 bits first (`i64.const -1; global.set`), without touching the
 *   operand stack.
 * - Functions without writes, all other sections and every other
 *   instruction are copied byte for byte (custom sections too: DWARF code
 *   offsets of rewritten functions move).
 *
 * What the barrier does not see: writes from outside the guest's code
 * (data segments at instantiation, the host writing into an exported memory,
 * WASI calls filling buffers, a restore), and writes by another module
 * sharing an imported memory. The engine treats those as "everything
 * dirty". A module without a memory is returned unchanged (nothing to track).
 *
 * Contract as for every rewrite: never applied to a module that does not
 * validate (`WebAssembly.validate` where a `WebAssembly` global exists), and
 * the output is validated too. A body naming a global at or past the
 * bitmap's index is refused (`kind: "invalid"`), so even an unvalidated
 * module cannot clear its own bitmap.
 *
 * Fails with a `WasmBinaryError` on malformed bytes, an illegal opcode, an
 * invalid module, a memory64 memory (`kind: "unsupported"`), a module that
 * already exports a name starting with `HIDDEN_EXPORT_PREFIX`, or a function
 * with too many locals to add the scratch locals (V8's 50 000).
 *
 * @example
 * const r = instrumentDirtyPages(bytes)
 * if (r.ok) {
 *   const { instance } = await WebAssembly.instantiate(r.value)
 *   const bitmap = instance.exports[DIRTY_PAGES_EXPORT] as WebAssembly.Global
 *   // … call an export; then pages p with bit p % 64 (or (p - 1) % 64) of bitmap.value may have changed
 *   bitmap.value = 0n
 * }
 */
export const instrumentDirtyPages = (bytes: Uint8Array): ReadResult<Uint8Array<ArrayBuffer>> => {
  const input = checkInput(bytes)
  if (!input.ok) return input
  return checkOutput(dirtyPagesOf(bytes, input.value), (b) => b)
}

/**
 * The pages a consumer must compare for a bitmap, as a 64-bit mask in two
 * 32-bit halves: bit k set when bit k or bit (k − 1) mod 64 of `bitmap` is
 * (a store into page p may spill into page p + 1). Page p is to be compared
 * when bit `p % 64` of the mask is set.
 */
export const dirtyPageMask = (bitmap: bigint): { readonly low: number; readonly high: number } => {
  const lo = Number(BigInt.asUintN(32, bitmap)) >>> 0
  const hi = Number(BigInt.asUintN(32, bitmap >> 32n)) >>> 0
  return { low: (lo | (lo << 1) | (hi >>> 31)) >>> 0, high: (hi | (hi << 1) | (lo >>> 31)) >>> 0 }
}

/** `instrumentDirtyPages` of a module already checked, described by `info`; the output is not checked. @internal */
export const dirtyPagesOf = (
  bytes: Uint8Array,
  info: ModuleInfo,
  options: DirtyPagesOptions = {}
): ReadResult<Uint8Array<ArrayBuffer>> => {
  let r = new ByteReader(bytes)
  return attempt(
    () => {
      const allowed = new Set(options.allowHidden ?? [])
      for (const e of info.exports) {
        if (e.name.startsWith(HIDDEN_EXPORT_PREFIX) && !allowed.has(e.name)) {
          throw new WasmBinaryError(
            0,
            `export "${e.name}" uses the reserved prefix "${HIDDEN_EXPORT_PREFIX}" (already rewritten?)`
          )
        }
      }
      const memories = [...info.memories, ...info.imports.flatMap((i) => (i.type.kind === "memory" ? [i.type] : []))]
      if (memories.some((m) => m.memory64)) {
        throw new WasmBinaryError(0, "memory64 is not supported by the dirty-page barrier", "unsupported", "memory64")
      }
      if (memories.length === 0) return new Uint8Array(bytes)
      const importedGlobals = info.imports.filter((i) => i.type.kind === "global").length
      const bitmap = importedGlobals + info.globals.length
      const paramsOf = (definedFunction: number, at: number): number => {
        const type = info.types[info.functions[definedFunction] ?? -1]
        if (type === undefined) throw new WasmBinaryError(at, "function and code section have inconsistent lengths")
        return type.params.length
      }

      r = readPreamble(bytes)
      const sections: Array<RawSection> = []
      while (!r.atEnd) sections.push(nextSection(r))
      const out = new ByteWriter(bytes.length + (bytes.length >>> 1) + 64)
      out.bytes(bytes.subarray(0, 8))
      let globalDone = sections.some((s) => s.id === SectionId.global)
      let exportDone = sections.some((s) => s.id === SectionId.export)
      const globalRank = sectionRank(SectionId.global) as number
      const exportRank = sectionRank(SectionId.export) as number
      const newGlobal = (w: ByteWriter) => w.u8(0x7e).u8(0x01).u8(0x42).u8(0x00).u8(0x0b)
      const newExport = (w: ByteWriter) => w.name(DIRTY_PAGES_EXPORT).u8(0x03).u32(bitmap)
      for (const s of sections) {
        const rank = s.id === SectionId.custom ? undefined : sectionRank(s.id)
        if (rank !== undefined) {
          if (!globalDone && rank > globalRank) {
            out.section(SectionId.global, (w) => newGlobal(w.u32(1)))
            globalDone = true
          }
          if (!exportDone && rank > exportRank) {
            out.section(SectionId.export, (w) => newExport(w.u32(1)))
            exportDone = true
          }
        }
        switch (s.id) {
          case SectionId.global:
          case SectionId.export:
            out.section(s.id, (w) => {
              const c = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
              const n = c.count()
              w.u32(n + 1).copy(bytes, c.offset, s.end)
              if (s.id === SectionId.global) newGlobal(w)
              else newExport(w)
            })
            break
          case SectionId.code:
            out.section(SectionId.code, (w) => {
              r = new ByteReader(bytes, s.payloadOffset, s.end, "section size mismatch")
              rewriteCode(bytes, r, w, bitmap, paramsOf)
            })
            break
          default:
            out.copy(bytes, s.offset, s.end)
        }
      }
      if (!globalDone) out.section(SectionId.global, (w) => newGlobal(w.u32(1)))
      if (!exportDone) out.section(SectionId.export, (w) => newExport(w.u32(1)))
      return out.finish()
    },
    () => r.offset
  )
}

/** The most locals (parameters included) V8 accepts in a function (`kV8MaxWasmFunctionLocals`). */
const MAX_LOCALS = 50_000

/** Scratch value kinds, in declaration order after the address local: i32 i64 f32 f64 v128. */
const VALUE_TYPE_BYTES: ReadonlyArray<number> = [0x7f, 0x7e, 0x7d, 0x7c, 0x7b]
const I32 = 0
const I64 = 1
const F32 = 2
const F64 = 3
const V128 = 4
/** A write that sets every bit (atomics). */
const ALL = 5
/** A bulk write (`memory.fill`, `memory.copy`, `memory.init`): the bits of the pages of its destination range. */
const BULK = 7
/** Not a write (copied as is). */
const NONE = -1

/** What a write instruction needs, by opcode: its value kind, `ALL`, or `NONE` when it does not write memory. */
const writeKind = (op: number): number => {
  if (op < 0x100) {
    switch (op) {
      case 0x36: // i32.store
      case 0x3a: // i32.store8
      case 0x3b: // i32.store16
        return I32
      case 0x37: // i64.store
      case 0x3c: // i64.store8
      case 0x3d: // i64.store16
      case 0x3e: // i64.store32
        return I64
      case 0x38:
        return F32
      case 0x39:
        return F64
      default:
        return NONE
    }
  }
  if (op === 0xfc0008 || op === 0xfc000a || op === 0xfc000b) return BULK // memory.init, memory.copy, memory.fill
  if (op === 0xfd000b || (op >= 0xfd0058 && op <= 0xfd005b)) return V128 // v128.store, v128.storeN_lane
  if (op >= 0xfe0017 && op <= 0xfe004e) return ALL // atomic stores, read-modify-writes, cmpxchg
  return NONE
}

/** An edit that publishes the function's bitmap local to the global (before exits, calls and throws). */
const FLUSH = 6

/** §5.5.13: rewrites the code section payload read by `c` into `w`. */
const rewriteCode = (
  bytes: Uint8Array,
  c: ByteReader,
  w: ByteWriter,
  bitmap: number,
  paramsOf: (definedFunction: number, at: number) => number
): void => {
  const n = c.count()
  w.u32(n)
  const imm = new Immediates()
  const edits: Array<number> = [] // triples (offset of the instruction, kind or FLUSH, memarg offset)
  for (let i = 0; i < n; i++) {
    const at = c.offset
    const size = c.u32()
    const r = c.sub(size, "unexpected end of section or function", "unexpected end of section or function", at)
    const bodyStart = r.offset
    const locals = readLocals(r)
    const codeStart = r.offset
    edits.length = 0
    let used = 0 // bit per kind: which scratch value locals the body needs
    let bulk = false // the body has bulk writes: four scratch i32 locals
    let depth = 0
    let done = false
    while (!done) {
      if (r.atEnd) r.fail("END opcode expected", r.end)
      const from = r.offset
      const op = decodeInstruction(r, imm)
      switch (op) {
        case BLOCK:
        case LOOP:
        case IF:
        case TRY:
          depth++
          break
        case END:
          if (depth === 0) {
            edits.push(from, FLUSH, 0)
            done = true
            break
          }
          depth--
          break
        case DELEGATE:
          depth--
          break
        case BR:
        case BR_IF:
          if (imm.label === depth) edits.push(from, FLUSH, 0)
          break
        case BR_TABLE: {
          let toFunction = imm.label === depth
          for (let k = 0; k < imm.labelCount && !toFunction; k++) toFunction = imm.labels[k] === depth
          if (toFunction) edits.push(from, FLUSH, 0)
          break
        }
        case RETURN:
        case CALL:
        case CALL_INDIRECT:
        case RETURN_CALL:
        case RETURN_CALL_INDIRECT:
        case THROW:
        case RETHROW:
          edits.push(from, FLUSH, 0)
          break
        case GLOBAL_GET:
        case GLOBAL_SET:
          if (imm.index >= bitmap) r.invalid(`unknown global ${imm.index}`, from)
          break
        default: {
          const kind = writeKind(op)
          if (kind !== NONE) {
            edits.push(from, kind, kind === ALL || kind === BULK ? 0 : memargOffset(bytes, from, op))
            if (kind === BULK) bulk = true
            else if (kind !== ALL) used |= 1 << kind
          }
        }
      }
    }
    if (!r.atEnd) r.fail("section size mismatch", r.offset)
    if (used === 0 && !bulk && !edits.some((e, k) => k % 3 === 1 && e === ALL)) {
      w.copy(bytes, at, r.end) // no writes: size and body unchanged
      c.offset = r.end
      continue
    }
    const params = paramsOf(i, at)
    let declared = 0
    for (const l of locals) declared += l.count
    // the address local and the function's own bitmap (only with stores), then one value local per kind used
    const address = params + declared
    const bits = address + 1
    const valueLocal: Array<number> = []
    let next = used === 0 ? address : address + 2
    let groups = used === 0 ? 0 : 2
    for (let k = 0; k < ALL; k++) {
      if ((used & (1 << k)) !== 0) {
        valueLocal[k] = next++
        groups++
      }
    }
    // bulk writes: destination, second operand, length, page count (i32), after the others
    const bulkAt = next
    if (bulk) {
      next += 4
      groups++
    }
    if (next > MAX_LOCALS) r.fail("too many locals to add the dirty-page scratch locals", bodyStart)
    const sizeAt = w.size
    w.skip(5)
    const runs = new ByteReader(bytes, bodyStart, codeStart)
    runs.count()
    w.u32(locals.length + groups)
    w.copy(bytes, runs.offset, codeStart)
    if (used !== 0) w.u8(0x01).u8(0x7f).u8(0x01).u8(0x7e)
    for (let k = 0; k < ALL; k++) if (valueLocal[k] !== undefined) w.u8(0x01).u8(VALUE_TYPE_BYTES[k] as number)
    if (bulk) w.u8(0x04).u8(0x7f)
    let from = codeStart
    for (let k = 0; k < edits.length; k += 3) {
      const x = edits[k] as number
      const kind = edits[k + 1] as number
      w.copy(bytes, from, x)
      if (kind === FLUSH) {
        // global.get $bitmap; local.get $bits; i64.or; global.set $bitmap (stack-neutral)
        if (used !== 0) w.u8(GLOBAL_GET).u32(bitmap).u8(0x20).u32(bits).u8(0x84).u8(GLOBAL_SET).u32(bitmap)
      } else if (kind === ALL) {
        w.u8(0x42).u8(0x7f).u8(GLOBAL_SET).u32(bitmap) // i64.const -1; global.set $bitmap
      } else if (kind === BULK) {
        bulkMarks(w, bitmap, bulkAt)
      } else {
        const offset = edits[k + 2] as number
        w.u8(0x21).u32(valueLocal[kind] as number) // local.set $value
        w.u8(0x22).u32(address) // local.tee $address
        w.u8(0x20).u32(bits).u8(0x42).u8(0x01) // local.get $bits; i64.const 1
        w.u8(0x20).u32(address) // local.get $address
        // i32.const offset; i32.add (wraps)
        if (offset !== 0)
          w.u8(0x41)
            .s32(offset | 0)
            .u8(0x6a)
        w.u8(0x41).u8(0x10).u8(0x76) // i32.const 16; i32.shr_u: the page
        w.u8(0xad).u8(0x86).u8(0x84) // i64.extend_i32_u; i64.shl (count mod 64); i64.or
        w.u8(0x21).u32(bits) // local.set $bits
        w.u8(0x20).u32(valueLocal[kind] as number) // local.get $value
      }
      from = x
    }
    w.copy(bytes, from, r.end)
    w.closeSized(sizeAt)
    c.offset = r.end
  }
  if (!c.atEnd) c.fail("section size mismatch")
}

/**
 * Before a bulk write whose operands (d, x, n: i32) are on the stack: the
 * bits of pages `d >>> 16` … `(d + n − 1) >>> 16` OR-ed into the global
 * (all 64 when that is 64 pages or more), the operands pushed back.
 * Scratch locals from `at`: d, x, n, count.
 */
const bulkMarks = (w: ByteWriter, bitmap: number, at: number): void => {
  const [d, x, n, count] = [at, at + 1, at + 2, at + 3]
  w.u8(0x21).u32(n).u8(0x21).u32(x).u8(0x21).u32(d) // local.set n, x, d
  w.u8(GLOBAL_GET).u32(bitmap)
  // count = ((d + n − 1) >>> 16) − (d >>> 16) + 1
  w.u8(0x20).u32(d).u8(0x20).u32(n).u8(0x6a).u8(0x41).u8(0x01).u8(0x6b).u8(0x41).u8(0x10).u8(0x76)
  w.u8(0x20).u32(d).u8(0x41).u8(0x10).u8(0x76)
  w.u8(0x6b).u8(0x41).u8(0x01).u8(0x6a).u8(0x21).u32(count)
  // rotl((1 << count) − 1, d >>> 16)
  w.u8(0x42).u8(0x01).u8(0x20).u32(count).u8(0xad).u8(0x86).u8(0x42).u8(0x01).u8(0x7d)
  w.u8(0x20).u32(d).u8(0x41).u8(0x10).u8(0x76).u8(0xad).u8(0x89)
  // −1 unless count < 64: select
  w.u8(0x42).u8(0x7f).u8(0x20).u32(count).u8(0x41).s32(64).u8(0x49).u8(0x1b)
  w.u8(0x84).u8(GLOBAL_SET).u32(bitmap) // i64.or; global.set $bitmap
  w.u8(0x20).u32(d).u8(0x20).u32(x).u8(0x20).u32(n) // the operands back
}

/** The memarg offset (a u32 for a 32-bit memory) of the memory instruction at `at` with opcode `op`. */
const memargOffset = (bytes: Uint8Array, at: number, op: number): number => {
  const m = new ByteReader(bytes, at)
  m.u8()
  if (op >= 0x100) m.u32()
  m.u32() // align
  const offset = m.u64()
  if (offset > 0xffffffffn) m.invalid("memarg offset exceeds 2^32 on a 32-bit memory", at)
  return Number(offset)
}
