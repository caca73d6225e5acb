/**
 * The instruction opcode tables: for every instruction Node 20 (V8 11.3)
 * compiles, its name (the text-format mnemonic) and the shape of its
 * immediates. Built from the WebAssembly core spec §5.4 "Instructions"
 * (binary format, MVP + sign-extension + non-trapping float-to-int + bulk
 * memory + reference types + multi-value + SIMD, all merged into the core
 * spec 2.0) and the proposal overviews that Node 20 ships: threads
 * (`0xFE` prefix, threads/Overview.md "Binary encoding"), tail calls
 * (`return_call` 0x12, `return_call_indirect` 0x13) and the legacy
 * exception-handling encoding (`try` 0x06, `catch` 0x07, `throw` 0x08,
 * `rethrow` 0x09, `delegate` 0x18, `catch_all` 0x19).
 *
 * Not in Node 20 and therefore absent (an "illegal opcode" when met):
 * relaxed SIMD (`0xFD` 0x100–0x113), typed function references / GC
 * (`call_ref`, `br_on_null`, `0xFB`), the exnref exception encoding
 * (`try_table`, `throw_ref`), memory64-only or multi-memory instructions
 * beyond the shared encodings.
 *
 * An opcode is a number: the byte itself for one-byte opcodes, and
 * `prefix * 0x10000 + subopcode` for prefixed ones (`0xFC0008` is
 * `memory.init`, `0xFD000C` is `v128.const`).
 *
 * @internal
 */

/** The shape of an instruction's immediates, after its opcode. */
export const Imm = {
  /** nothing */
  none: 0,
  /** block type: 0x40, a value type, or an s33 type index */
  blockType: 1,
  /** one label index (u32) */
  label: 2,
  /** br_table: vec(label) then a default label */
  brTable: 3,
  /** one index (u32): function, local, global, table, tag, elem, data, memory */
  index: 4,
  /** two indices (u32 u32) */
  index2: 5,
  /** memarg: align u32 (bit 6: a memory index follows), offset (u64 LEB) */
  memarg: 6,
  /** memarg then one lane byte */
  memargLane: 7,
  /** s32 */
  i32: 8,
  /** s64 */
  i64: 9,
  /** 4 raw bytes */
  f32: 10,
  /** 8 raw bytes */
  f64: 11,
  /** 16 raw bytes (v128.const, i8x16.shuffle lanes) */
  bytes16: 12,
  /** one lane byte */
  lane: 13,
  /** typed select: vec(valtype) */
  selectTypes: 14,
  /** heap type (s33) */
  heapType: 15,
  /** one reserved byte (atomic.fence) */
  byte: 16
} as const

export type Imm = (typeof Imm)[keyof typeof Imm]

/** Opcode prefixes (§5.4: 0xFC misc, 0xFD vector; threads: 0xFE atomic). */
export const Prefix = { misc: 0xfc, simd: 0xfd, atomic: 0xfe } as const

/** A table entry: the mnemonic and the immediates. */
export interface OpcodeInfo {
  readonly name: string
  readonly imm: Imm
}

type Table = Array<OpcodeInfo | undefined>

const table = (entries: ReadonlyArray<readonly [number, string, Imm?]>): Table => {
  const out: Table = []
  for (const [code, name, imm] of entries) out[code] = { name, imm: imm ?? Imm.none }
  return out
}

/** Consecutive opcodes `from`, `from + 1`, … with no immediates. */
const run = (from: number, names: ReadonlyArray<string>, imm: Imm = Imm.none): Array<readonly [number, string, Imm]> =>
  names.map((name, i) => [from + i, name, imm] as const)

/** One-byte opcodes (§5.4.1–§5.4.7). */
export const SINGLE: Table = table([
  // control (§5.4.1), tail calls, legacy exception handling
  [0x00, "unreachable"],
  [0x01, "nop"],
  [0x02, "block", Imm.blockType],
  [0x03, "loop", Imm.blockType],
  [0x04, "if", Imm.blockType],
  [0x05, "else"],
  [0x06, "try", Imm.blockType],
  [0x07, "catch", Imm.index],
  [0x08, "throw", Imm.index],
  [0x09, "rethrow", Imm.label],
  [0x0b, "end"],
  [0x0c, "br", Imm.label],
  [0x0d, "br_if", Imm.label],
  [0x0e, "br_table", Imm.brTable],
  [0x0f, "return"],
  [0x10, "call", Imm.index],
  [0x11, "call_indirect", Imm.index2],
  [0x12, "return_call", Imm.index],
  [0x13, "return_call_indirect", Imm.index2],
  [0x18, "delegate", Imm.label],
  [0x19, "catch_all"],
  // parametric (§5.4.3)
  [0x1a, "drop"],
  [0x1b, "select"],
  [0x1c, "select", Imm.selectTypes],
  // variable (§5.4.4), table (§5.4.5)
  [0x20, "local.get", Imm.index],
  [0x21, "local.set", Imm.index],
  [0x22, "local.tee", Imm.index],
  [0x23, "global.get", Imm.index],
  [0x24, "global.set", Imm.index],
  [0x25, "table.get", Imm.index],
  [0x26, "table.set", Imm.index],
  // memory (§5.4.6)
  ...run(
    0x28,
    [
      "i32.load",
      "i64.load",
      "f32.load",
      "f64.load",
      "i32.load8_s",
      "i32.load8_u",
      "i32.load16_s",
      "i32.load16_u",
      "i64.load8_s",
      "i64.load8_u",
      "i64.load16_s",
      "i64.load16_u",
      "i64.load32_s",
      "i64.load32_u",
      "i32.store",
      "i64.store",
      "f32.store",
      "f64.store",
      "i32.store8",
      "i32.store16",
      "i64.store8",
      "i64.store16",
      "i64.store32"
    ],
    Imm.memarg
  ),
  [0x3f, "memory.size", Imm.index],
  [0x40, "memory.grow", Imm.index],
  // numeric (§5.4.7)
  [0x41, "i32.const", Imm.i32],
  [0x42, "i64.const", Imm.i64],
  [0x43, "f32.const", Imm.f32],
  [0x44, "f64.const", Imm.f64],
  ...run(0x45, ["i32.eqz", "i32.eq", "i32.ne", "i32.lt_s", "i32.lt_u", "i32.gt_s", "i32.gt_u"]),
  ...run(0x4c, ["i32.le_s", "i32.le_u", "i32.ge_s", "i32.ge_u"]),
  ...run(0x50, ["i64.eqz", "i64.eq", "i64.ne", "i64.lt_s", "i64.lt_u", "i64.gt_s", "i64.gt_u"]),
  ...run(0x57, ["i64.le_s", "i64.le_u", "i64.ge_s", "i64.ge_u"]),
  ...run(0x5b, ["f32.eq", "f32.ne", "f32.lt", "f32.gt", "f32.le", "f32.ge"]),
  ...run(0x61, ["f64.eq", "f64.ne", "f64.lt", "f64.gt", "f64.le", "f64.ge"]),
  ...run(0x67, ["i32.clz", "i32.ctz", "i32.popcnt", "i32.add", "i32.sub", "i32.mul", "i32.div_s", "i32.div_u"]),
  ...run(0x6f, ["i32.rem_s", "i32.rem_u", "i32.and", "i32.or", "i32.xor", "i32.shl", "i32.shr_s", "i32.shr_u"]),
  ...run(0x77, ["i32.rotl", "i32.rotr"]),
  ...run(0x79, ["i64.clz", "i64.ctz", "i64.popcnt", "i64.add", "i64.sub", "i64.mul", "i64.div_s", "i64.div_u"]),
  ...run(0x81, ["i64.rem_s", "i64.rem_u", "i64.and", "i64.or", "i64.xor", "i64.shl", "i64.shr_s", "i64.shr_u"]),
  ...run(0x89, ["i64.rotl", "i64.rotr"]),
  ...run(0x8b, ["f32.abs", "f32.neg", "f32.ceil", "f32.floor", "f32.trunc", "f32.nearest", "f32.sqrt"]),
  ...run(0x92, ["f32.add", "f32.sub", "f32.mul", "f32.div", "f32.min", "f32.max", "f32.copysign"]),
  ...run(0x99, ["f64.abs", "f64.neg", "f64.ceil", "f64.floor", "f64.trunc", "f64.nearest", "f64.sqrt"]),
  ...run(0xa0, ["f64.add", "f64.sub", "f64.mul", "f64.div", "f64.min", "f64.max", "f64.copysign"]),
  ...run(0xa7, [
    "i32.wrap_i64",
    "i32.trunc_f32_s",
    "i32.trunc_f32_u",
    "i32.trunc_f64_s",
    "i32.trunc_f64_u",
    "i64.extend_i32_s",
    "i64.extend_i32_u",
    "i64.trunc_f32_s",
    "i64.trunc_f32_u",
    "i64.trunc_f64_s",
    "i64.trunc_f64_u",
    "f32.convert_i32_s",
    "f32.convert_i32_u",
    "f32.convert_i64_s",
    "f32.convert_i64_u",
    "f32.demote_f64",
    "f64.convert_i32_s",
    "f64.convert_i32_u",
    "f64.convert_i64_s",
    "f64.convert_i64_u",
    "f64.promote_f32",
    "i32.reinterpret_f32",
    "i64.reinterpret_f64",
    "f32.reinterpret_i32",
    "f64.reinterpret_i64"
  ]),
  // sign-extension operators
  ...run(0xc0, ["i32.extend8_s", "i32.extend16_s", "i64.extend8_s", "i64.extend16_s", "i64.extend32_s"]),
  // reference (§5.4.2)
  [0xd0, "ref.null", Imm.heapType],
  [0xd1, "ref.is_null"],
  [0xd2, "ref.func", Imm.index]
])

/** `0xFC` prefix: saturating truncation (0–7), bulk memory and table instructions (8–17). */
export const MISC: Table = table([
  ...run(0, [
    "i32.trunc_sat_f32_s",
    "i32.trunc_sat_f32_u",
    "i32.trunc_sat_f64_s",
    "i32.trunc_sat_f64_u",
    "i64.trunc_sat_f32_s",
    "i64.trunc_sat_f32_u",
    "i64.trunc_sat_f64_s",
    "i64.trunc_sat_f64_u"
  ]),
  [8, "memory.init", Imm.index2], // dataidx, memidx
  [9, "data.drop", Imm.index],
  [10, "memory.copy", Imm.index2], // memidx, memidx
  [11, "memory.fill", Imm.index], // memidx
  [12, "table.init", Imm.index2], // elemidx, tableidx
  [13, "elem.drop", Imm.index],
  [14, "table.copy", Imm.index2],
  [15, "table.grow", Imm.index],
  [16, "table.size", Imm.index],
  [17, "table.fill", Imm.index]
])

const cmp = (shape: string, ops: ReadonlyArray<string>): Array<string> => ops.map((op) => `${shape}.${op}`)
const INT_CMP = ["eq", "ne", "lt_s", "lt_u", "gt_s", "gt_u", "le_s", "le_u", "ge_s", "ge_u"]
const FLOAT_CMP = ["eq", "ne", "lt", "gt", "le", "ge"]

/** `0xFD` prefix: fixed-width SIMD (§5.4.8, opcodes 0x00–0xFF; 0x9A, 0xA2, 0xA5, … are unassigned). */
export const SIMD: Table = table([
  ...run(
    0x00,
    [
      "v128.load",
      "v128.load8x8_s",
      "v128.load8x8_u",
      "v128.load16x4_s",
      "v128.load16x4_u",
      "v128.load32x2_s",
      "v128.load32x2_u",
      "v128.load8_splat",
      "v128.load16_splat",
      "v128.load32_splat",
      "v128.load64_splat",
      "v128.store"
    ],
    Imm.memarg
  ),
  [0x0c, "v128.const", Imm.bytes16],
  [0x0d, "i8x16.shuffle", Imm.bytes16],
  [0x0e, "i8x16.swizzle"],
  ...run(0x0f, ["i8x16.splat", "i16x8.splat", "i32x4.splat", "i64x2.splat", "f32x4.splat", "f64x2.splat"]),
  ...run(
    0x15,
    [
      "i8x16.extract_lane_s",
      "i8x16.extract_lane_u",
      "i8x16.replace_lane",
      "i16x8.extract_lane_s",
      "i16x8.extract_lane_u",
      "i16x8.replace_lane",
      "i32x4.extract_lane",
      "i32x4.replace_lane",
      "i64x2.extract_lane",
      "i64x2.replace_lane",
      "f32x4.extract_lane",
      "f32x4.replace_lane",
      "f64x2.extract_lane",
      "f64x2.replace_lane"
    ],
    Imm.lane
  ),
  ...run(0x23, cmp("i8x16", INT_CMP)),
  ...run(0x2d, cmp("i16x8", INT_CMP)),
  ...run(0x37, cmp("i32x4", INT_CMP)),
  ...run(0x41, cmp("f32x4", FLOAT_CMP)),
  ...run(0x47, cmp("f64x2", FLOAT_CMP)),
  ...run(0x4d, ["v128.not", "v128.and", "v128.andnot", "v128.or", "v128.xor", "v128.bitselect", "v128.any_true"]),
  ...run(
    0x54,
    [
      "v128.load8_lane",
      "v128.load16_lane",
      "v128.load32_lane",
      "v128.load64_lane",
      "v128.store8_lane",
      "v128.store16_lane",
      "v128.store32_lane",
      "v128.store64_lane"
    ],
    Imm.memargLane
  ),
  ...run(0x5c, ["v128.load32_zero", "v128.load64_zero"], Imm.memarg),
  ...run(0x5e, ["f32x4.demote_f64x2_zero", "f64x2.promote_low_f32x4"]),
  ...run(0x60, [
    "i8x16.abs",
    "i8x16.neg",
    "i8x16.popcnt",
    "i8x16.all_true",
    "i8x16.bitmask",
    "i8x16.narrow_i16x8_s",
    "i8x16.narrow_i16x8_u",
    "f32x4.ceil",
    "f32x4.floor",
    "f32x4.trunc",
    "f32x4.nearest",
    "i8x16.shl",
    "i8x16.shr_s",
    "i8x16.shr_u",
    "i8x16.add",
    "i8x16.add_sat_s",
    "i8x16.add_sat_u",
    "i8x16.sub",
    "i8x16.sub_sat_s",
    "i8x16.sub_sat_u",
    "f64x2.ceil",
    "f64x2.floor",
    "i8x16.min_s",
    "i8x16.min_u",
    "i8x16.max_s",
    "i8x16.max_u",
    "f64x2.trunc",
    "i8x16.avgr_u",
    "i16x8.extadd_pairwise_i8x16_s",
    "i16x8.extadd_pairwise_i8x16_u",
    "i32x4.extadd_pairwise_i16x8_s",
    "i32x4.extadd_pairwise_i16x8_u"
  ]),
  ...run(0x80, [
    "i16x8.abs",
    "i16x8.neg",
    "i16x8.q15mulr_sat_s",
    "i16x8.all_true",
    "i16x8.bitmask",
    "i16x8.narrow_i32x4_s",
    "i16x8.narrow_i32x4_u",
    "i16x8.extend_low_i8x16_s",
    "i16x8.extend_high_i8x16_s",
    "i16x8.extend_low_i8x16_u",
    "i16x8.extend_high_i8x16_u",
    "i16x8.shl",
    "i16x8.shr_s",
    "i16x8.shr_u",
    "i16x8.add",
    "i16x8.add_sat_s",
    "i16x8.add_sat_u",
    "i16x8.sub",
    "i16x8.sub_sat_s",
    "i16x8.sub_sat_u",
    "f64x2.nearest",
    "i16x8.mul",
    "i16x8.min_s",
    "i16x8.min_u",
    "i16x8.max_s",
    "i16x8.max_u"
  ]),
  ...run(0x9b, [
    "i16x8.avgr_u",
    "i16x8.extmul_low_i8x16_s",
    "i16x8.extmul_high_i8x16_s",
    "i16x8.extmul_low_i8x16_u",
    "i16x8.extmul_high_i8x16_u"
  ]),
  ...run(0xa0, ["i32x4.abs", "i32x4.neg"]),
  ...run(0xa3, ["i32x4.all_true", "i32x4.bitmask"]),
  ...run(0xa7, [
    "i32x4.extend_low_i16x8_s",
    "i32x4.extend_high_i16x8_s",
    "i32x4.extend_low_i16x8_u",
    "i32x4.extend_high_i16x8_u",
    "i32x4.shl",
    "i32x4.shr_s",
    "i32x4.shr_u",
    "i32x4.add"
  ]),
  [0xb1, "i32x4.sub"],
  ...run(0xb5, ["i32x4.mul", "i32x4.min_s", "i32x4.min_u", "i32x4.max_s", "i32x4.max_u", "i32x4.dot_i16x8_s"]),
  ...run(0xbc, [
    "i32x4.extmul_low_i16x8_s",
    "i32x4.extmul_high_i16x8_s",
    "i32x4.extmul_low_i16x8_u",
    "i32x4.extmul_high_i16x8_u"
  ]),
  ...run(0xc0, ["i64x2.abs", "i64x2.neg"]),
  ...run(0xc3, ["i64x2.all_true", "i64x2.bitmask"]),
  ...run(0xc7, [
    "i64x2.extend_low_i32x4_s",
    "i64x2.extend_high_i32x4_s",
    "i64x2.extend_low_i32x4_u",
    "i64x2.extend_high_i32x4_u",
    "i64x2.shl",
    "i64x2.shr_s",
    "i64x2.shr_u",
    "i64x2.add"
  ]),
  [0xd1, "i64x2.sub"],
  ...run(0xd5, [
    "i64x2.mul",
    "i64x2.eq",
    "i64x2.ne",
    "i64x2.lt_s",
    "i64x2.gt_s",
    "i64x2.le_s",
    "i64x2.ge_s",
    "i64x2.extmul_low_i32x4_s",
    "i64x2.extmul_high_i32x4_s",
    "i64x2.extmul_low_i32x4_u",
    "i64x2.extmul_high_i32x4_u"
  ]),
  ...run(0xe0, ["f32x4.abs", "f32x4.neg"]),
  ...run(0xe3, cmp("f32x4", ["sqrt", "add", "sub", "mul", "div", "min", "max", "pmin", "pmax"])),
  ...run(0xec, ["f64x2.abs", "f64x2.neg"]),
  ...run(0xef, cmp("f64x2", ["sqrt", "add", "sub", "mul", "div", "min", "max", "pmin", "pmax"])),
  ...run(0xf8, [
    "i32x4.trunc_sat_f32x4_s",
    "i32x4.trunc_sat_f32x4_u",
    "f32x4.convert_i32x4_s",
    "f32x4.convert_i32x4_u",
    "i32x4.trunc_sat_f64x2_s_zero",
    "i32x4.trunc_sat_f64x2_u_zero",
    "f64x2.convert_low_i32x4_s",
    "f64x2.convert_low_i32x4_u"
  ])
])

const RMW_SHAPES = [
  ["i32.atomic.rmw", ""],
  ["i64.atomic.rmw", ""],
  ["i32.atomic.rmw8", "_u"],
  ["i32.atomic.rmw16", "_u"],
  ["i64.atomic.rmw8", "_u"],
  ["i64.atomic.rmw16", "_u"],
  ["i64.atomic.rmw32", "_u"]
] as const
const rmw = (op: string): Array<string> => RMW_SHAPES.map(([shape, suffix]) => `${shape}.${op}${suffix}`)

/** `0xFE` prefix: threads proposal atomics (0x00–0x03, 0x10–0x4E). */
export const ATOMIC: Table = table([
  ...run(0x00, ["memory.atomic.notify", "memory.atomic.wait32", "memory.atomic.wait64"], Imm.memarg),
  [0x03, "atomic.fence", Imm.byte],
  ...run(
    0x10,
    [
      "i32.atomic.load",
      "i64.atomic.load",
      "i32.atomic.load8_u",
      "i32.atomic.load16_u",
      "i64.atomic.load8_u",
      "i64.atomic.load16_u",
      "i64.atomic.load32_u",
      "i32.atomic.store",
      "i64.atomic.store",
      "i32.atomic.store8",
      "i32.atomic.store16",
      "i64.atomic.store8",
      "i64.atomic.store16",
      "i64.atomic.store32",
      ...rmw("add"),
      ...rmw("sub"),
      ...rmw("and"),
      ...rmw("or"),
      ...rmw("xor"),
      ...rmw("xchg"),
      ...rmw("cmpxchg")
    ],
    Imm.memarg
  )
])

/** The table entry of an opcode number (see the module doc), or undefined for an unknown opcode. */
export const opcodeInfo = (opcode: number): OpcodeInfo | undefined => {
  if (opcode < 0x100)
    return opcode === Prefix.misc || opcode === Prefix.simd || opcode === Prefix.atomic ? undefined : SINGLE[opcode]
  const prefix = Math.floor(opcode / 0x10000)
  const sub = opcode % 0x10000
  switch (prefix) {
    case Prefix.misc:
      return MISC[sub]
    case Prefix.simd:
      return SIMD[sub]
    case Prefix.atomic:
      return ATOMIC[sub]
    default:
      return undefined
  }
}

/** Every known opcode number, in ascending order. */
export const allOpcodes = (): Array<number> => {
  const out: Array<number> = []
  const add = (base: number, t: Table) => t.forEach((info, i) => info !== undefined && out.push(base + i))
  add(0, SINGLE)
  add(Prefix.misc * 0x10000, MISC)
  add(Prefix.simd * 0x10000, SIMD)
  add(Prefix.atomic * 0x10000, ATOMIC)
  return out
}

/** Marks a one-byte opcode without a table entry (illegal, or a prefix) in `SINGLE_IMM`. */
export const NO_SINGLE = 0xff

/**
 * The `Imm` kind of every one-byte opcode, `NO_SINGLE` where `SINGLE` has no
 * entry (prefixes and illegal opcodes): a flat table for the reader's hot loop.
 */
export const SINGLE_IMM: Uint8Array = (() => {
  const t = new Uint8Array(256).fill(NO_SINGLE)
  SINGLE.forEach((info, op) => {
    if (info !== undefined) t[op] = info.imm
  })
  return t
})()

/** Opcodes of the control and variable instructions the rewrites look for (§5.4.1, §5.4.4). */
export const UNREACHABLE = 0x00
export const BLOCK = 0x02
export const LOOP = 0x03
export const IF = 0x04
export const ELSE = 0x05
export const TRY = 0x06
export const CATCH = 0x07
export const THROW = 0x08
export const RETHROW = 0x09
export const END = 0x0b
export const BR = 0x0c
export const BR_IF = 0x0d
export const BR_TABLE = 0x0e
export const RETURN = 0x0f
export const CALL = 0x10
export const CALL_INDIRECT = 0x11
export const RETURN_CALL = 0x12
export const RETURN_CALL_INDIRECT = 0x13
export const DELEGATE = 0x18
export const CATCH_ALL = 0x19
export const LOCAL_GET = 0x20
export const LOCAL_SET = 0x21
export const LOCAL_TEE = 0x22
export const GLOBAL_GET = 0x23
export const GLOBAL_SET = 0x24
