/**
 * Decode function bodies into instructions (core spec §5.4 "Instructions",
 * §5.5.13 "Code Section"), for every instruction Node 20 (V8 11.3) compiles:
 * MVP, sign-extension, non-trapping float-to-int, bulk memory and table
 * instructions, reference types, multi-value block types, fixed-width SIMD
 * (`0xFD`), threads/atomics (`0xFE`), tail calls and the legacy
 * exception-handling encoding (`try`/`catch`/`catch_all`/`delegate`/`throw`/
 * `rethrow`). Relaxed SIMD, GC, typed function references, the exnref
 * encoding and multiple memories are not in Node 20: their opcodes (and
 * value types, heap types, memarg memory indices) are an "illegal opcode …"
 * error of `kind: "unsupported"` naming the feature; other unknown opcodes
 * are `kind: "malformed"`.
 *
 * The decoder checks the encoding (opcodes, immediates' LEB128 forms, block
 * nesting, that a body ends with the `end` closing the function exactly at
 * its last byte). It does not type-check: `WebAssembly.validate` does.
 *
 * Opcodes are numbers: the byte for one-byte opcodes (`0x6a` is `i32.add`),
 * `prefix * 0x10000 + subopcode` for prefixed ones (`0xFC0008` is
 * `memory.init`, `0xFD000C` is `v128.const`, `0xFE0003` is `atomic.fence`).
 *
 * @since 0.1.0
 */
import { ByteReader } from "./internal/ByteReader.js"
import { ATOMIC, Imm, MISC, Prefix, SIMD, SINGLE, allOpcodes, opcodeInfo } from "./internal/Opcodes.js"
import { nextSection, readPreamble, SectionId } from "./internal/Sections.js"
import { attempt, type ReadResult } from "./ReadResult.js"
import { type UnsupportedFeature, WasmBinaryError } from "./WasmBinaryError.js"

/** An instruction opcode: the byte, or `prefix * 0x10000 + subopcode` for `0xFC`/`0xFD`/`0xFE` instructions. */
export type Opcode = number

/** One decoded instruction. Offsets are in bytes from the start of the buffer given to the decoder. */
export interface Instruction {
  readonly opcode: Opcode
  /** Text-format mnemonic, e.g. `"i32.add"`, `"v128.const"`. */
  readonly name: string
  /** Offset of the first opcode byte (the prefix byte for prefixed opcodes). */
  readonly offset: number
  /** One past the last immediate byte. */
  readonly end: number
}

/** A run of `count` locals of one value type (the type byte, e.g. 0x7f for i32, 0x7b for v128). */
export interface LocalDeclaration {
  readonly count: number
  readonly type: number
}

/** One decoded function body (§5.5.13). Offsets are in bytes from the start of the buffer. */
export interface FunctionBody {
  /** Offset of the first byte after the body's size field (the locals vector). */
  readonly offset: number
  /** Offset of the first instruction. */
  readonly codeOffset: number
  /** One past the body's last byte (its final `end`). */
  readonly end: number
  readonly locals: ReadonlyArray<LocalDeclaration>
  /** The instructions, the final `end` included. */
  readonly instructions: ReadonlyArray<Instruction>
}

/** The mnemonic of an opcode (`opcodeName(0x6a) === "i32.add"`), or undefined when Node 20 has no such instruction. */
export const opcodeName = (opcode: Opcode): string | undefined => opcodeInfo(opcode)?.name

/** Every opcode the decoder knows, ascending. */
export const knownOpcodes = (): ReadonlyArray<Opcode> => allOpcodes()

/**
 * Decodes one function body: `[offset, end)` is the body after its size
 * field (local declarations, then the expression). Fails with a
 * `WasmBinaryError` (offset counted from the start of `bytes`) on an illegal
 * opcode, a malformed immediate, unbalanced blocks, or a body that does not
 * end with its final `end` exactly at `end`.
 */
export const decodeFunctionBody = (
  bytes: Uint8Array,
  offset = 0,
  end: number = bytes.length
): ReadResult<FunctionBody> => {
  const r = new ByteReader(bytes, offset, end, BODY_END)
  return attempt(
    () => decodeBody(r),
    () => r.offset
  )
}

/**
 * Decodes every function body of a module's code section (§5.5.13), in
 * function-definition order. A module without a code section has none.
 * Fails with a `WasmBinaryError` on a malformed preamble, section framing,
 * or body.
 */
export const decodeCodeSection = (module: Uint8Array): ReadResult<ReadonlyArray<FunctionBody>> => {
  let r = new ByteReader(module)
  return attempt(
    () => {
      r = readPreamble(module)
      const out: Array<FunctionBody> = []
      while (!r.atEnd) {
        const s = nextSection(r)
        if (s.id !== SectionId.code) continue
        const c = new ByteReader(module, s.payloadOffset, s.end, "section size mismatch")
        r = c
        const n = c.count()
        for (let i = 0; i < n; i++) {
          const at = c.offset
          const size = c.u32()
          const body = c.sub(size, BODY_END, "unexpected end of section or function", at)
          out.push(decodeBody(body))
          c.offset = body.end
        }
        if (!c.atEnd) c.fail("section size mismatch")
      }
      return out
    },
    () => r.offset
  )
}

// ---------------------------------------------------------------------------
// Internal decoding, shared with the rewriters (no allocation per instruction).

const BODY_END = "unexpected end of section or function"

/** Value types Node 20 knows (§5.3.1–§5.3.3): i32 i64 f32 f64 v128 funcref externref. */
const isValueType = (b: number): boolean => (b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f

/**
 * Immediates the rewriters need, filled by `decodeInstruction` (one object
 * reused for a whole body).
 *
 * @internal
 */
export class Immediates {
  /** The label of `br`, `br_if`, `rethrow`, `delegate`; the default label of `br_table`. */
  label = 0
  /** The labels of `br_table` before its default; valid until the next `br_table`. */
  labels: Array<number> = []
  /** Number of entries of `labels` in use. */
  labelCount = 0
  /** The (first) index immediate: local, global, function, type, table, memory, data, elem, tag. */
  index = 0
}

/**
 * One-byte opcodes of features Node 20 does not run, by opcode: typed
 * function references / GC (`call_ref` 0x14, `return_call_ref` 0x15,
 * `ref.eq` 0xd3, `ref.as_non_null` 0xd4, `br_on_null` 0xd5,
 * `br_on_non_null` 0xd6, the `0xfb` prefix) and the final exception
 * handling encoding (`throw_ref` 0x0a, `try_table` 0x1f).
 */
const UNSUPPORTED_SINGLE: ReadonlyArray<UnsupportedFeature | undefined> = (() => {
  const t: Array<UnsupportedFeature | undefined> = []
  for (const op of [0x14, 0x15, 0xd3, 0xd4, 0xd5, 0xd6, 0xfb]) t[op] = "gc"
  for (const op of [0x0a, 0x1f]) t[op] = "exception handling (exnref)"
  return t
})()

/**
 * The feature of a value-type byte Node 20 does not know: `ref` (0x64),
 * `ref null` (0x63) and the GC abstract reference types (0x65–0x6e,
 * 0x71–0x73) are GC; `exnref` (0x69) and `nullexnref` (0x74) are the final
 * exception handling. Undefined for every other byte.
 *
 * @internal
 */
export const unsupportedValueType = (b: number): UnsupportedFeature | undefined =>
  b === 0x69 || b === 0x74
    ? "exception handling (exnref)"
    : (b >= 0x63 && b <= 0x6e) || (b >= 0x71 && b <= 0x73)
      ? "gc"
      : undefined

/** Throws the unsupported error of value-type byte `b` at `r.offset`. @internal */
export const unsupportedType = (r: ByteReader, b: number): never =>
  r.unsupported(unsupportedValueType(b) as UnsupportedFeature, `value type ${fmt(b)}`)

const fmt = (n: number): string => `0x${n.toString(16).padStart(2, "0")}`

/** Reads a memarg (§5.4.6): align (bit 6 set: a memory index follows, multi-memory), then a u64 offset. */
const memarg = (r: ByteReader): void => {
  const at = r.offset
  const align = r.u32()
  if (align >= 0x40) {
    if (align >= 0x80) r.fail("malformed memop flags", at)
    r.unsupported("multi-memory", "memory index in a memarg", at)
  }
  r.skipU64()
}

/**
 * Decodes one instruction at `r.offset`, advances past its immediates, and
 * returns its opcode. Label immediates go to `imm`. Throws `WasmBinaryError`
 * on an illegal opcode ("illegal opcode …") or a malformed immediate.
 *
 * @internal
 */
export const decodeInstruction = (r: ByteReader, imm: Immediates): Opcode => {
  const at = r.offset
  const first = r.u8()
  let opcode: number = first
  let kind: number
  if (first === Prefix.misc || first === Prefix.simd || first === Prefix.atomic) {
    const sub = r.u32()
    const info = first === Prefix.misc ? MISC[sub] : first === Prefix.simd ? SIMD[sub] : ATOMIC[sub]
    if (info === undefined) {
      if (first === Prefix.simd && sub >= 0x100 && sub <= 0x113) {
        throw new WasmBinaryError(
          at,
          `illegal opcode ${fmt(first)} ${fmt(sub)} (relaxed SIMD is not in Node 20)`,
          "unsupported",
          "relaxed SIMD"
        )
      }
      r.fail(`illegal opcode ${fmt(first)} ${fmt(sub)}`, at)
    }
    opcode = first * 0x10000 + sub
    kind = info.imm
  } else {
    const info = SINGLE[first]
    if (info === undefined) {
      const feature = UNSUPPORTED_SINGLE[first]
      if (feature !== undefined) {
        throw new WasmBinaryError(
          at,
          `illegal opcode ${fmt(first)} (${feature} is not in Node 20)`,
          "unsupported",
          feature
        )
      }
      r.fail(`illegal opcode ${fmt(first)}`, at)
    }
    kind = info.imm
  }
  switch (kind) {
    case Imm.none:
      break
    case Imm.blockType: {
      const b = r.peek()
      if (b === 0x40 || isValueType(b)) r.offset++
      else if (unsupportedValueType(b) !== undefined) unsupportedType(r, b)
      else {
        const start = r.offset
        if (r.s33() < 0) r.fail("malformed block type", start)
      }
      break
    }
    case Imm.label:
      imm.label = r.u32()
      break
    case Imm.brTable: {
      const n = r.u32()
      if (n > r.remaining) r.fail(BODY_END, r.end)
      const labels = imm.labels
      for (let i = 0; i < n; i++) labels[i] = r.u32()
      imm.labelCount = n
      imm.label = r.u32()
      break
    }
    case Imm.index:
      imm.index = r.u32()
      break
    case Imm.index2:
      imm.index = r.u32()
      r.u32()
      break
    case Imm.memarg:
      memarg(r)
      break
    case Imm.memargLane:
      memarg(r)
      r.u8()
      break
    case Imm.i32:
      r.s32()
      break
    case Imm.i64:
      r.skipS64()
      break
    case Imm.f32:
      r.skip(4)
      break
    case Imm.f64:
      r.skip(8)
      break
    case Imm.bytes16:
      r.skip(16)
      break
    case Imm.lane:
    case Imm.byte:
      r.u8()
      break
    case Imm.selectTypes: {
      const n = r.u32()
      for (let i = 0; i < n; i++) {
        const t = r.offset
        const b = r.u8()
        if (!isValueType(b)) {
          r.offset = t
          if (unsupportedValueType(b) !== undefined) unsupportedType(r, b)
          r.fail("malformed value type", t)
        }
      }
      break
    }
    case Imm.heapType: {
      const t = r.offset
      const h = r.s33()
      // func (0x70) and extern (0x6f) only; every other heap type is GC or exnref
      if (h !== -0x10 && h !== -0x11) {
        const feature = h === -0x17 || h === -0x0c ? "exception handling (exnref)" : "gc"
        throw new WasmBinaryError(
          t,
          `heap type ${h >= 0 ? `type ${h}` : fmt(h & 0x7f)} (${feature} is not in Node 20)`,
          "unsupported",
          feature
        )
      }
      break
    }
  }
  return opcode
}

/**
 * Reads the local declarations of a body (§5.5.13) at `r.offset`.
 *
 * @internal
 */
export const readLocals = (r: ByteReader): Array<LocalDeclaration> => {
  const n = r.count()
  const out: Array<LocalDeclaration> = []
  let total = 0
  for (let i = 0; i < n; i++) {
    const at = r.offset
    const count = r.u32()
    total += count
    if (total > 0xffffffff) r.fail("too many locals", at)
    const t = r.offset
    const type = r.u8()
    if (!isValueType(type)) {
      r.offset = t
      if (unsupportedValueType(type) !== undefined) unsupportedType(r, type)
      r.fail("malformed value type", t)
    }
    out.push({ count, type })
  }
  return out
}

/** Opcodes that open a block (§5.4.1 + legacy `try`). */
export const opensBlock = (op: Opcode): boolean => op === 0x02 || op === 0x03 || op === 0x04 || op === 0x06

const decodeBody = (r: ByteReader): FunctionBody => {
  const offset = r.offset
  const locals = readLocals(r)
  const codeOffset = r.offset
  const imm = new Immediates()
  const instructions: Array<Instruction> = []
  let depth = 0
  for (;;) {
    if (r.atEnd) r.fail("END opcode expected", r.end)
    const at = r.offset
    const op = decodeInstruction(r, imm)
    instructions.push({ opcode: op, name: (opcodeInfo(op) as { name: string }).name, offset: at, end: r.offset })
    if (opensBlock(op)) depth++
    else if (op === 0x0b || op === 0x18) {
      if (depth === 0) {
        if (op === 0x18) r.fail("delegate outside a try block", at)
        break
      }
      depth--
    }
  }
  if (!r.atEnd) r.fail("section size mismatch", r.offset)
  return { offset, codeOffset, end: r.offset, locals, instructions }
}
