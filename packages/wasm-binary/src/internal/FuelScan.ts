/**
 * The fuel pass's hot loop (`Fuel.ts`): one linear scan of a function body
 * over the input bytes, writing the instrumented body straight into the
 * output `ByteWriter`'s buffer.
 *
 * The scan needs opcode boundaries, block structure, label depths and the
 * indices of `local.*` / `global.*` — not the other immediates, which it
 * skips with inline LEB128 checks (core spec §5.2.2) driven by flat
 * per-opcode tables built from `Opcodes.ts` (one `Uint8Array` for one-byte
 * opcodes, one for the `0xFC`/`0xFD`/`0xFE` sub-opcodes). No object, array
 * or closure per instruction; an unchanged run of input bytes is copied once,
 * when the next injected sequence (fuel load, charge, check, store) is
 * written.
 *
 * It is a fast path, not a second decoder with its own error messages: on
 * anything it does not handle — any malformed or unsupported encoding, an
 * out-of-range local or global index, a non-shortest encoding it does not
 * follow, a custom cost that is not a non-negative safe integer — it gives
 * up on the body (`body` returns false, the output is rolled back) and the
 * caller rewrites that body with the checked decoder (`decodeInstruction`),
 * which produces the same output or throws the typed `WasmBinaryError`
 * (kind, reason, offset) the pass has always thrown. The fast path therefore
 * only ever completes bodies the checked path accepts, and then writes the
 * same bytes (see `test/FuelScan.test.ts`).
 *
 * @internal
 */
import type { ByteWriter } from "./ByteWriter.js"
import { ATOMIC, Imm, MISC, type OpcodeInfo, SIMD, SINGLE } from "./Opcodes.js"

/** The most locals (parameters included) V8 accepts in a function (`kV8MaxWasmFunctionLocals`). */
const MAX_LOCALS = 50_000

// What a one-byte opcode is to the scan (`KIND`). Below `K_CONTROL`: straight-line code, charged and skipped.
const K_BAIL = 0 // illegal, unsupported or unknown here: the checked path decides
const K_NONE = 1
const K_U32 = 2 // one u32 immediate (index)
const K_MEMARG = 3
const K_I32 = 4
const K_I64 = 5
const K_F32 = 6
const K_F64 = 7
const K_LOCAL = 8
const K_GLOBAL = 9
const K_BLOCK = 10 // block, try: block type, opens a block, no new basic block
const K_SELECT_T = 11
const K_REF_NULL = 12
const K_PREFIX = 13
const K_CONTROL = 20
const K_LOOP = 20
const K_IF = 21
const K_ELSE = 22
const K_CATCH = 23 // catch (tag index), catch_all
const K_END = 24
const K_DELEGATE = 25
const K_BR = 26
const K_BR_IF = 27
const K_BR_TABLE = 28
const K_RETURN = 29 // return, return_call, return_call_indirect
const K_TRAP = 30 // unreachable, throw, rethrow
const K_CALL = 31 // call, call_indirect

export const KIND: Uint8Array = (() => {
  const t = new Uint8Array(256) // K_BAIL
  const byImm: Partial<Record<number, number>> = {
    [Imm.none]: K_NONE,
    [Imm.index]: K_U32,
    [Imm.memarg]: K_MEMARG,
    [Imm.i32]: K_I32,
    [Imm.i64]: K_I64,
    [Imm.f32]: K_F32,
    [Imm.f64]: K_F64,
    [Imm.selectTypes]: K_SELECT_T,
    [Imm.heapType]: K_REF_NULL
  }
  SINGLE.forEach((info: OpcodeInfo | undefined, op) => {
    if (info !== undefined) t[op] = byImm[info.imm] ?? K_BAIL
  })
  const control: ReadonlyArray<readonly [number, number]> = [
    [0x00, K_TRAP], // unreachable
    [0x02, K_BLOCK],
    [0x03, K_LOOP],
    [0x04, K_IF],
    [0x05, K_ELSE],
    [0x06, K_BLOCK], // try
    [0x07, K_CATCH],
    [0x08, K_TRAP], // throw
    [0x09, K_TRAP], // rethrow
    [0x0b, K_END],
    [0x0c, K_BR],
    [0x0d, K_BR_IF],
    [0x0e, K_BR_TABLE],
    [0x0f, K_RETURN],
    [0x10, K_CALL],
    [0x11, K_CALL], // call_indirect
    [0x12, K_RETURN], // return_call
    [0x13, K_RETURN], // return_call_indirect
    [0x18, K_DELEGATE],
    [0x19, K_CATCH], // catch_all
    [0x20, K_LOCAL],
    [0x21, K_LOCAL],
    [0x22, K_LOCAL],
    [0x23, K_GLOBAL],
    [0x24, K_GLOBAL],
    [0xfc, K_PREFIX],
    [0xfd, K_PREFIX],
    [0xfe, K_PREFIX]
  ]
  for (const [op, kind] of control) t[op] = kind
  return t
})()

/** How many u32 immediates a control opcode carries (skipped, not needed): call_indirect and return_call_indirect 2. */
export const CONTROL_U32: Uint8Array = (() => {
  const t = new Uint8Array(256)
  for (const op of [0x07, 0x08, 0x09, 0x10, 0x12, 0x18]) t[op] = 1 // catch, throw, rethrow, call, return_call, delegate
  for (const op of [0x11, 0x13]) t[op] = 2
  return t
})()

// Immediate shapes of prefixed opcodes (`PREFIXED`, index (prefix - 0xfc) * 256 + sub); 0: the checked path decides.
const P_NONE = 1
const P_U32 = 2
const P_U32X2 = 3
const P_MEMARG = 4
const P_MEMARG_LANE = 5
const P_BYTES16 = 6
const P_BYTE = 7

export const PREFIXED: Uint8Array = (() => {
  const t = new Uint8Array(3 * 256)
  const byImm: Partial<Record<number, number>> = {
    [Imm.none]: P_NONE,
    [Imm.index]: P_U32,
    [Imm.index2]: P_U32X2,
    [Imm.memarg]: P_MEMARG,
    [Imm.memargLane]: P_MEMARG_LANE,
    [Imm.bytes16]: P_BYTES16,
    [Imm.lane]: P_BYTE,
    [Imm.byte]: P_BYTE
  }
  const fill = (base: number, table: ReadonlyArray<OpcodeInfo | undefined>) =>
    table.forEach((info, sub) => {
      if (info !== undefined && sub < 256) t[base + sub] = byImm[info.imm] ?? 0
    })
  fill(0, MISC)
  fill(256, SIMD)
  fill(512, ATOMIC)
  return t
})()

/** Value types Node 20 knows (§5.3): i32 i64 f32 f64 v128 funcref externref. */
export const VALTYPE: Uint8Array = (() => {
  const t = new Uint8Array(256)
  for (const b of [0x7f, 0x7e, 0x7d, 0x7c, 0x7b, 0x70, 0x6f]) t[b] = 1
  return t
})()

/** One-byte block types (§5.4.1): empty (0x40), a value type, or a type index 0..63 (a one-byte s33 ≥ 0). */
export const BLOCKTYPE1: Uint8Array = (() => {
  const t = new Uint8Array(256)
  for (let b = 0; b < 0x40; b++) t[b] = 1
  t[0x40] = 1
  for (let b = 0; b < 256; b++) if (VALTYPE[b] === 1) t[b] = 1
  return t
})()

/** Wasmtime's default costs (see `defaultOperatorCost` in Fuel.ts): one-byte opcodes. */
export const DEFAULT_SINGLE: Float64Array = (() => {
  const t = new Float64Array(256).fill(1)
  for (const op of [0x00, 0x01, 0x02, 0x03, 0x05, 0x0b, 0x0f, 0x1a]) t[op] = 0
  return t
})()
/** Default costs of prefixed opcodes: all 1. */
const DEFAULT_PREFIXED: Float64Array = new Float64Array(3 * 256).fill(1)

/** Position after the last `readU32` (the scan's second return value; no allocation). */
let pos = 0

/** A u32 LEB128 at `p` with `ByteReader.u32`'s checks (≤ 5 bytes, the 5th ≤ 0x0f); -1 when they fail. */
const readU32 = (bytes: Uint8Array, p: number): number => {
  let result = 0
  let scale = 1
  for (let i = 0; i < 4; i++) {
    const b = bytes[p++] as number
    result += (b & 0x7f) * scale
    if (b < 0x80) {
      pos = p
      return result
    }
    scale *= 128
  }
  const b = bytes[p++] as number
  if (!(b <= 0x0f)) return -1 // also undefined past the buffer
  pos = p
  return result + b * scale
}

/** Skips a u64 LEB128 at `p` (`skipU64`: ≤ 10 bytes, the 10th ≤ 0x01); the next position, or -1. */
const skipU64 = (bytes: Uint8Array, p: number): number => {
  for (let i = 0; i < 9; i++) if (!((bytes[p++] as number) >= 0x80)) return p
  return (bytes[p++] as number) <= 0x01 ? p : -1
}

/** Skips an s32 LEB128 at `p` (`s32`: ≤ 5 bytes, the 5th's unused bits equal to its sign bit); the next position, or -1. */
const skipS32 = (bytes: Uint8Array, p: number): number => {
  for (let i = 0; i < 4; i++) if (!((bytes[p++] as number) >= 0x80)) return p
  const b = bytes[p++] as number
  if (!(b < 0x80)) return -1
  const high = b & 0x78
  return high === 0 || high === 0x78 ? p : -1
}

/** Skips an s64 LEB128 at `p` (`skipS64`: ≤ 10 bytes, the 10th 0x00 or 0x7f); the next position, or -1. */
const skipS64 = (bytes: Uint8Array, p: number): number => {
  for (let i = 0; i < 9; i++) if (!((bytes[p++] as number) >= 0x80)) return p
  const b = bytes[p++] as number
  return b === 0x00 || b === 0x7f ? p : -1
}

/** Skips a multi-byte s33 ≥ 0 at `p` (a block type's type index ≥ 64); the next position, or -1. */
const skipTypeIndex = (bytes: Uint8Array, p: number): number => {
  for (let i = 0; i < 4; i++) {
    const b = bytes[p++] as number
    if (!(b >= 0x80)) return b === undefined || (b & 0x40) !== 0 ? -1 : p
  }
  const b = bytes[p++] as number
  return b < 0x80 && (b & 0x70) === 0 ? p : -1
}

/** Bytes of the shortest u32 LEB128 of `v`. */
const lebWidth = (v: number): number => (v < 0x80 ? 1 : v < 0x4000 ? 2 : v < 0x200000 ? 3 : v < 0x10000000 ? 4 : 5)

/** Writes the shortest u32 LEB128 of `v` at `o`; returns the next position. */
const putU32 = (buf: Uint8Array, o: number, v: number): number => {
  while (v >= 0x80) {
    buf[o++] = (v & 0x7f) | 0x80
    v >>>= 7
  }
  buf[o++] = v
  return o
}

/** Writes the shortest signed LEB128 (`s32`/`s64`) of a non-negative safe integer `v` at `o`. */
const putCost = (buf: Uint8Array, o: number, v: number): number => {
  if (v < 0x40) {
    buf[o] = v
    return o + 1
  }
  if (v < 0x2000) {
    buf[o] = (v & 0x7f) | 0x80
    buf[o + 1] = v >> 7
    return o + 2
  }
  for (;;) {
    const b = v % 128
    v = (v - b) / 128
    if (v === 0 && b < 0x40) {
      buf[o++] = b
      return o
    }
    buf[o++] = b | 0x80
  }
}

/**
 * Copies `src[from, to)` to `o` in 4-byte words through DataViews (one
 * inlined load and store per word instead of per byte; a long run is one
 * native copy). Over-reads `src` and over-writes the output by up to 3
 * bytes: the caller guarantees `to + 3 < srcLength` and 3 bytes of slack
 * after `o + (to - from)` (the overwritten bytes are written again next).
 */
const copyWords = (
  outView: DataView,
  buf: Uint8Array,
  o: number,
  srcView: DataView,
  src: Uint8Array,
  from: number,
  to: number
): number => {
  if (to - from >= 64) {
    buf.set(src.subarray(from, to), o)
    return o + (to - from)
  }
  let i = from
  while (i < to) {
    outView.setUint32(o, srcView.getUint32(i, true), true)
    i += 4
    o += 4
  }
  return o - (i - to)
}

/** Copies `src[from, to)` to `o` byte by byte (near the end of the input, where words would over-read). */
const copyBytes = (buf: Uint8Array, o: number, src: Uint8Array, from: number, to: number): number => {
  for (let i = from; i < to; i++) buf[o++] = src[i] as number
  return o
}

/**
 * Room kept free past a write: the most bytes injected at one point (a
 * prologue: global.get 6 + i64.const 1 + cost ≤ 8 + i64.sub 1 + local.tee
 * and check 26) and the 3 bytes a word copy may write past its end.
 */
const MAX_INJECTION = 72

/**
 * The fast fuel rewrite of one module's bodies: the fuel global's index
 * and the cost of every opcode are fixed for the module.
 */
export class FuelScan {
  private readonly single: Float64Array
  private readonly prefixed: Float64Array
  private readonly tpl = new Uint8Array(128)
  private readonly tplView: DataView = new DataView(this.tpl.buffer)
  private readonly global: Uint8Array
  private readonly view: DataView
  /** Input bytes before which a word copy may read (3 bytes past its end). */
  private readonly wordsBefore: number
  private outBuffer: Uint8Array | undefined
  private outView: DataView = this.tplView

  /**
   * @param bytes the module
   * @param fuelGlobal index of the fuel counter global
   * @param costOf the caller's `costs`, or undefined for the default costs; it is called once per
   *   opcode met (memoised), and a value that is not a non-negative safe integer leaves that body
   *   to the checked path (which reports it at the instruction)
   */
  constructor(
    readonly bytes: Uint8Array,
    readonly fuelGlobal: number,
    private readonly costOf: ((opcode: number) => number) | undefined
  ) {
    this.single = costOf === undefined ? DEFAULT_SINGLE : new Float64Array(256).fill(-1).fill(0, 0xfc, 0xff) // prefixes: see `prefixed`
    this.prefixed = costOf === undefined ? DEFAULT_PREFIXED : new Float64Array(3 * 256).fill(-1)
    const g = new Uint8Array(5)
    this.global = g.subarray(0, putU32(g, 0, fuelGlobal))
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    this.wordsBefore = bytes.length - 3
  }

  /** A DataView of the output buffer `buf` (kept until the buffer grows). */
  private viewOf(buf: Uint8Array): DataView {
    if (this.outBuffer !== buf) {
      this.outBuffer = buf
      this.outView = new DataView(buf.buffer, buf.byteOffset, buf.byteLength)
    }
    return this.outView
  }

  /** The cost of `opcode` from the caller's `costs` (memoised in `table[at]`), or -1 when it is not valid. */
  private resolve(table: Float64Array, at: number, opcode: number): number {
    const c = (this.costOf as (opcode: number) => number)(opcode)
    const valid = Number.isSafeInteger(c) && c >= 0
    table[at] = valid ? c : -2 // -2: invalid, stays invalid (the checked path throws at the instruction)
    return valid ? c : -1
  }

  /**
   * Rewrites the body `[start, end)` (after its size field) of a function
   * with `params` parameters, appending it to `w` with its size field
   * (shortest u32). Returns false when the body needs the checked path:
   * the caller then drops what was written past its own `w.size` (the
   * buffer may have grown meanwhile).
   */
  body(start: number, end: number, params: number, w: ByteWriter): boolean {
    const bytes = this.bytes
    const view = this.view
    const tplView = this.tplView
    const wordsBefore = this.wordsBefore
    let p = start
    // --- local declarations (§5.5.13): count, then (u32 count, value type) runs
    let runs = bytes[p++] as number
    if (runs >= 0x80) {
      runs = readU32(bytes, p - 1)
      if (runs < 0) return false
      p = pos
    }
    const declStart = p
    let declared = 0
    for (let i = 0; i < runs; i++) {
      if (p >= end) return false
      let n = bytes[p++] as number
      if (n >= 0x80) {
        n = readU32(bytes, p - 1)
        if (n < 0) return false
        p = pos
      }
      declared += n
      if (declared > 0xffffffff || VALTYPE[bytes[p++] as number] !== 1) return false
    }
    if (p > end) return false
    const fuelLocal = params + declared
    if (fuelLocal + 1 > MAX_LOCALS) return false
    const fuelGlobal = this.fuelGlobal

    // --- templates of the injected sequences for this function's fuel local (see `Fuel.ts`):
    // a block's prologue is one expression — [global.get $fuel | local.get $f] [i64.const c; i64.sub]
    // (local.set $f | local.tee $f; check) — or, with neither a reload nor a charge, the plain check
    const tpl = this.tpl
    const g = this.global
    let t = 0
    tpl[t++] = 0x23 // global.get $fuel; i64.const
    t = copyBytes(tpl, t, g, 0, g.length)
    tpl[t++] = 0x42
    const GET_END = t
    tpl[t++] = 0x20 // local.get $f; i64.const
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x42
    const HEAD_END = t
    tpl[t++] = 0x7d // i64.sub; local.set $f
    tpl[t++] = 0x21
    t = putU32(tpl, t, fuelLocal)
    const SET_END = t
    // i64.sub; local.tee $f; i64.const 0; i64.lt_s; if; local.get $f; global.set $fuel; unreachable; end
    tpl[t++] = 0x7d
    tpl[t++] = 0x22
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x42
    tpl[t++] = 0x00
    tpl[t++] = 0x53
    tpl[t++] = 0x04
    tpl[t++] = 0x40
    tpl[t++] = 0x20
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x24
    t = copyBytes(tpl, t, g, 0, g.length)
    tpl[t++] = 0x00
    tpl[t++] = 0x0b
    const TEE_END = t
    // local.get $f; i64.const 0; i64.lt_s; if; local.get $f; global.set $fuel; unreachable; end
    tpl[t++] = 0x20
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x42
    tpl[t++] = 0x00
    tpl[t++] = 0x53
    tpl[t++] = 0x04
    tpl[t++] = 0x40
    tpl[t++] = 0x20
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x24
    t = copyBytes(tpl, t, g, 0, g.length)
    tpl[t++] = 0x00
    tpl[t++] = 0x0b
    const CHECK_END = t
    // local.get $f; global.set $fuel
    tpl[t++] = 0x20
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x24
    t = copyBytes(tpl, t, g, 0, g.length)
    const STORE_END = t
    // local.get $f; i64.const 0; i64.lt_s; if; unreachable; end
    tpl[t++] = 0x20
    t = putU32(tpl, t, fuelLocal)
    tpl[t++] = 0x42
    tpl[t++] = 0x00
    tpl[t++] = 0x53
    tpl[t++] = 0x04
    tpl[t++] = 0x40
    tpl[t++] = 0x00
    tpl[t++] = 0x0b
    const EXIT_END = t

    // --- output: the size field (its width guessed from the input's size, fixed at the end), the locals
    const sizeAt = w.size
    let width = lebWidth(Math.min(0xffffffff, 2 * (end - start) + 16))
    let buf = w.room(width + (p - declStart) + 16 + MAX_INJECTION)
    let out = this.viewOf(buf)
    let o = putU32(buf, sizeAt + width, runs + 1)
    o = copyBytes(buf, o, bytes, declStart, p)
    buf[o++] = 0x01 // 1 × i64: the fuel local
    buf[o++] = 0x7e

    // --- the instructions
    const single = this.single
    const prefixed = this.prefixed
    let depth = 0 // open blocks; a label equal to `depth` is the function's own
    let segStart = p // first byte of the current basic block
    let segCost = 0 // its summed cost
    let segLoad = true // reload the local from the global first (entry, after calls, handlers)
    let segCheck = true // check after the charge (function entry, loop header)
    let segDead = false // unreachable code: nothing inserted
    let copyFrom = p // first input byte not copied to the output yet
    for (;;) {
      if (p >= end) return false
      const at = p
      const op = bytes[p++] as number
      const kind = KIND[op] as number
      if (kind === K_BAIL) return false
      let cost = single[op] as number
      if (cost < 0) {
        if (cost === -2) return false
        cost = this.resolve(single, op, op)
        if (cost < 0) return false
      }
      if (kind < K_CONTROL) {
        switch (kind) {
          case K_NONE:
            break
          case K_LOCAL:
          case K_GLOBAL: {
            // the fuel local and global come after every index the body may name
            let index = bytes[p++] as number
            if (index >= 0x80) {
              index = readU32(bytes, p - 1)
              if (index < 0) return false
              p = pos
            }
            if (index >= (kind === K_LOCAL ? fuelLocal : fuelGlobal)) return false
            break
          }
          case K_U32: {
            if ((bytes[p++] as number) >= 0x80) {
              if (readU32(bytes, p - 1) < 0) return false
              p = pos
            }
            break
          }
          case K_MEMARG: {
            // align < 0x40 (no memory index), offset u64
            if (!((bytes[p++] as number) < 0x40)) return false
            if ((bytes[p++] as number) >= 0x80) {
              p = skipU64(bytes, p - 1)
              if (p < 0) return false
            }
            break
          }
          case K_I32:
            if ((bytes[p++] as number) >= 0x80) {
              p = skipS32(bytes, p - 1)
              if (p < 0) return false
            }
            break
          case K_I64:
            if ((bytes[p++] as number) >= 0x80) {
              p = skipS64(bytes, p - 1)
              if (p < 0) return false
            }
            break
          case K_F32:
            p += 4
            break
          case K_F64:
            p += 8
            break
          case K_BLOCK: {
            const b = bytes[p] as number
            if (BLOCKTYPE1[b] === 1) p++
            else if (b >= 0x80) {
              p = skipTypeIndex(bytes, p)
              if (p < 0) return false
            } else return false
            depth++
            break
          }
          case K_SELECT_T: {
            const n = bytes[p++] as number
            if (n >= 0x80 || n > end - p) return false
            for (let i = 0; i < n; i++) if (VALTYPE[bytes[p++] as number] !== 1) return false
            break
          }
          case K_REF_NULL: {
            const h = bytes[p++] as number
            if (h !== 0x70 && h !== 0x6f) return false
            break
          }
          case K_PREFIX: {
            let sub = bytes[p++] as number
            if (sub >= 0x80) {
              sub = readU32(bytes, p - 1)
              if (sub < 0) return false
              p = pos
            }
            if (sub >= 256) return false
            const at2 = (op - 0xfc) * 256 + sub
            const shape = PREFIXED[at2] as number
            if (shape === 0) return false
            cost = prefixed[at2] as number
            if (cost < 0) {
              if (cost === -2) return false
              cost = this.resolve(prefixed, at2, op * 0x10000 + sub)
              if (cost < 0) return false
            }
            switch (shape) {
              case P_NONE:
                break
              case P_U32:
              case P_U32X2:
                for (let k = shape === P_U32 ? 1 : 2; k > 0; k--) {
                  if ((bytes[p++] as number) >= 0x80) {
                    if (readU32(bytes, p - 1) < 0) return false
                    p = pos
                  }
                }
                break
              case P_MEMARG:
              case P_MEMARG_LANE:
                if (!((bytes[p++] as number) < 0x40)) return false
                if ((bytes[p++] as number) >= 0x80) {
                  p = skipU64(bytes, p - 1)
                  if (p < 0) return false
                }
                if (shape === P_MEMARG_LANE) p++
                break
              case P_BYTES16:
                p += 16
                break
              case P_BYTE:
                p++
                break
              default:
                return false
            }
            break
          }
          default:
            return false
        }
        segCost += cost
        continue
      }

      // --- control: the instruction ends a basic block
      for (let k = CONTROL_U32[op] as number; k > 0; k--) {
        if ((bytes[p++] as number) >= 0x80) {
          if (readU32(bytes, p - 1) < 0) return false
          p = pos
        }
      }
      let blockEnd = p // where the basic block ends (after the instruction; `catch` ends it before)
      let markAt = -1 // the fuel is stored before the instruction at markAt…
      let exit = false // …and checked (a way out of the function)
      switch (kind) {
        case K_LOOP:
        case K_IF: {
          const b = bytes[p] as number
          if (BLOCKTYPE1[b] === 1) p++
          else if (b >= 0x80) {
            p = skipTypeIndex(bytes, p)
            if (p < 0) return false
          } else return false
          depth++
          segCost += cost
          blockEnd = p
          break
        }
        case K_ELSE:
          segCost += cost
          break
        case K_CATCH:
          // the handler runs from after the instruction, reloading; the catch's cost is charged to it
          blockEnd = at
          break
        case K_END:
          segCost += cost
          if (depth === 0) {
            markAt = at
            exit = true
          } else depth--
          break
        case K_DELEGATE:
          if (depth === 0) return false
          depth--
          segCost += cost
          break
        case K_BR:
        case K_BR_IF: {
          let label = bytes[p++] as number
          if (label >= 0x80) {
            label = readU32(bytes, p - 1)
            if (label < 0) return false
            p = pos
          }
          if (label === depth) {
            markAt = at
            exit = true
          }
          segCost += cost
          blockEnd = p
          break
        }
        case K_BR_TABLE: {
          let n = bytes[p++] as number
          if (n >= 0x80) {
            n = readU32(bytes, p - 1)
            if (n < 0) return false
            p = pos
          }
          if (n > end - p) return false
          let toFunction = false
          for (let i = 0; i <= n; i++) {
            // n labels, then the default
            let label = bytes[p++] as number
            if (label >= 0x80) {
              label = readU32(bytes, p - 1)
              if (label < 0) return false
              p = pos
            }
            if (label === depth) toFunction = true
          }
          if (toFunction) {
            markAt = at
            exit = true
          }
          segCost += cost
          blockEnd = p
          break
        }
        case K_RETURN:
          markAt = at
          exit = true
          segCost += cost
          blockEnd = p
          break
        case K_TRAP:
        case K_CALL:
          markAt = at
          segCost += cost
          blockEnd = p
          break
        default:
          return false
      }

      // --- end the basic block [segStart, blockEnd): inject at its start (load, charge, check) and at its mark
      if (segCost > Number.MAX_SAFE_INTEGER) return false
      if (!segDead) {
        if (segLoad || segCheck || segCost > 0) {
          if (o + (segStart - copyFrom) + MAX_INJECTION > buf.length) {
            w.setSize(o)
            buf = w.room(segStart - copyFrom + MAX_INJECTION)
            out = this.viewOf(buf)
          }
          o =
            segStart < wordsBefore
              ? copyWords(out, buf, o, view, bytes, copyFrom, segStart)
              : copyBytes(buf, o, bytes, copyFrom, segStart)
          if (segCost > 0) {
            o = segLoad
              ? copyWords(out, buf, o, tplView, tpl, 0, GET_END)
              : copyWords(out, buf, o, tplView, tpl, GET_END, HEAD_END)
            o = putCost(buf, o, segCost)
            o = segCheck
              ? copyWords(out, buf, o, tplView, tpl, SET_END, TEE_END)
              : copyWords(out, buf, o, tplView, tpl, HEAD_END, SET_END)
          } else if (segLoad) {
            // global.get $fuel, then (local.set | local.tee; check) without the i64.sub
            o = copyWords(out, buf, o, tplView, tpl, 0, GET_END - 1)
            o = segCheck
              ? copyWords(out, buf, o, tplView, tpl, SET_END + 1, TEE_END)
              : copyWords(out, buf, o, tplView, tpl, HEAD_END + 1, SET_END)
          } else if (segCheck) o = copyWords(out, buf, o, tplView, tpl, TEE_END, CHECK_END)
          copyFrom = segStart
        }
        if (markAt >= 0) {
          if (o + (markAt - copyFrom) + MAX_INJECTION > buf.length) {
            w.setSize(o)
            buf = w.room(markAt - copyFrom + MAX_INJECTION)
            out = this.viewOf(buf)
          }
          o =
            markAt < wordsBefore
              ? copyWords(out, buf, o, view, bytes, copyFrom, markAt)
              : copyBytes(buf, o, bytes, copyFrom, markAt)
          o = copyWords(out, buf, o, tplView, tpl, CHECK_END, exit ? EXIT_END : STORE_END)
          copyFrom = markAt
        }
      }
      segStart = blockEnd
      segCost = 0
      segLoad = false
      segCheck = false
      segDead = false
      switch (kind) {
        case K_LOOP:
          segCheck = true
          break
        case K_CATCH:
          segStart = p
          segCost = cost
          segLoad = true
          break
        case K_END:
          if (depth === 0 && exit) {
            // the function's final `end`: it must close the body exactly at its last byte
            if (p !== end) return false
            if (o + (end - copyFrom) + MAX_INJECTION > buf.length) {
              w.setSize(o)
              buf = w.room(end - copyFrom + MAX_INJECTION)
              out = this.viewOf(buf)
            }
            o =
              end < wordsBefore
                ? copyWords(out, buf, o, view, bytes, copyFrom, end)
                : copyBytes(buf, o, bytes, copyFrom, end)
            // the size field: shortest form; move the body when the guessed width was wrong
            const bodyStart = sizeAt + width
            const size = o - bodyStart
            const actual = lebWidth(size)
            if (actual !== width) {
              buf.copyWithin(sizeAt + actual, bodyStart, o)
              o += actual - width
              width = actual
            }
            putU32(buf, sizeAt, size)
            w.setSize(o)
            return true
          }
          break
        case K_BR:
        case K_BR_TABLE:
        case K_RETURN:
        case K_TRAP:
          segDead = true
          break
        case K_CALL:
          segLoad = true
          break
      }
    }
  }
}
