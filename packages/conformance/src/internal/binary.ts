/**
 * Just enough of the WebAssembly binary format (core spec §5.5) to find a
 * section's payload, so the suite can tamper with one byte of a real signed
 * module or make its contents malformed while keeping its framing intact.
 *
 * @internal
 */

/** One section: its id and the byte range of its payload. */
export interface SectionRange {
  readonly id: number
  /** Offset of the first payload byte. */
  readonly start: number
  /** Offset one past the last payload byte. */
  readonly end: number
}

/** Reads an unsigned LEB128 u32 at `offset`: the value and the offset after it. */
export const readU32 = (bytes: Uint8Array, offset: number): { readonly value: number; readonly next: number } => {
  let value = 0
  let shift = 0
  let i = offset
  for (;;) {
    const b = bytes[i++]
    if (b === undefined) throw new RangeError(`LEB128 runs past the end at byte ${offset}`)
    value |= (b & 0x7f) << shift
    if ((b & 0x80) === 0) return { value: value >>> 0, next: i }
    shift += 7
  }
}

/** The sections of a well-formed module, in order. */
export const sections = (bytes: Uint8Array): ReadonlyArray<SectionRange> => {
  const out: Array<SectionRange> = []
  let i = 8
  while (i < bytes.length) {
    const id = bytes[i]!
    const size = readU32(bytes, i + 1)
    out.push({ id, start: size.next, end: size.next + size.value })
    i = size.next + size.value
  }
  return out
}

/** The first section with this id; throws when the module has none. */
export const section = (bytes: Uint8Array, id: number): SectionRange => {
  const found = sections(bytes).find((s) => s.id === id)
  if (found === undefined) throw new RangeError(`module has no section ${id}`)
  return found
}

/** Section ids (core spec §5.5.2). */
export const SectionId = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  memory: 5,
  export: 7,
  start: 8,
  code: 10,
  data: 11
} as const

// -- encoders for the hand-assembled modules below (WebAssembly binary format, §5) ----------------------

/** A name: its length (one byte: names here are short) and its characters. */
const hStr = (s: string) => [s.length, ...[...s].map((c) => c.charCodeAt(0))]
const hSection = (id: number, payload: ReadonlyArray<number>) => [id, ...uleb(payload.length), ...payload]
const uleb = (n: number): Array<number> => {
  const out: Array<number> = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}
/** The magic and version 1. */
const HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

/**
 * A minimal module (hand-assembled) whose only content is a memory of
 * `pages` initial pages (64 KiB each) exported as "memory".
 */
export const memoryOnlyModule = (pages: number): Uint8Array =>
  Uint8Array.from([
    ...HEADER,
    ...hSection(SectionId.memory, [0x01, 0x00, ...uleb(pages)]),
    ...hSection(SectionId.export, [0x01, ...hStr("memory"), 0x02, 0x00])
  ])

/**
 * `(module (import "env" "memory" (memory 1)) (func (export "grow") (param i32) (result i32)
 * local.get 0 memory.grow) (func (export "size") (result i32) memory.size))` — a module whose
 * linear memory is imported: the runtime has the engine create it with the budget as maximum.
 */
export const importedMemoryModule = (): Uint8Array => {
  return Uint8Array.from([
    ...HEADER,
    ...hSection(SectionId.type, [0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f]),
    ...hSection(SectionId.import, [0x01, ...hStr("env"), ...hStr("memory"), 0x02, 0x00, 0x01]),
    ...hSection(SectionId.function, [0x02, 0x00, 0x01]),
    ...hSection(SectionId.export, [0x02, ...hStr("grow"), 0x00, 0x00, ...hStr("size"), 0x00, 0x01]),
    ...hSection(SectionId.code, [0x02, 0x06, 0x00, 0x20, 0x00, 0x40, 0x00, 0x0b, 0x04, 0x00, 0x3f, 0x00, 0x0b])
  ])
}

/**
 * A minimal module (hand-assembled) whose start function loops forever
 * (`(start $f)` with `loop br 0`): its instantiation never ends unless the
 * host preempts it. Compiling it succeeds.
 */
export const startLoopModule = (): Uint8Array =>
  new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    0x01,
    0x04,
    0x01,
    0x60,
    0x00,
    0x00, // type 0: [] -> []
    0x03,
    0x02,
    0x01,
    0x00, // func 0: type 0
    0x08,
    0x01,
    0x00, // start: func 0
    0x0a,
    0x09,
    0x01,
    0x07,
    0x00,
    0x03,
    0x40,
    0x0c,
    0x00,
    0x0b,
    0x0b // loop br 0 end end
  ])

/**
 * The table bomb of issue 12 item 1 (hand-assembled, 75 bytes unsigned):
 * `(module (table (export "table") 1 funcref)
 *   (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0)))
 *   (func (export "size") (result i32) (table.size 0)))`. Without a table cap
 * `grow(9_999_999)` costs the host ~270 MiB of table entries; the table is
 * exported so the agent's reported memory includes it.
 */
export const tableBombModule = (): Uint8Array => {
  const grow = [0x00, 0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x00, 0x0b] // ref.null func, local.get 0, table.grow 0
  const size = [0x00, 0xfc, 0x10, 0x00, 0x0b] // table.size 0
  return Uint8Array.from([
    ...HEADER,
    ...hSection(SectionId.type, [0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f]),
    ...hSection(SectionId.function, [0x02, 0x00, 0x01]),
    ...hSection(4, [0x01, 0x70, 0x00, 0x01]), // table section: one funcref table, min 1, no maximum
    ...hSection(SectionId.export, [
      0x03,
      ...hStr("table"),
      0x01,
      0x00,
      ...hStr("grow"),
      0x00,
      0x00,
      ...hStr("size"),
      0x00,
      0x01
    ]),
    ...hSection(SectionId.code, [0x02, grow.length, ...grow, size.length, ...size])
  ])
}

// -- hostile modules (issue 12 items 2 and 6) ---------------------------------------------------------------

/** `i64.const 1_000_000_000` (signed LEB128 immediate). */
const I64_1E9 = [0x42, 0x80, 0x94, 0xeb, 0xdc, 0x03]

/**
 * `(func (export "run") <body>)` with type `[] -> []` and optional extra sections between the function and the
 * export sections (e.g. a global section). `body` is the raw function body: locals vector, then instructions.
 * Layout without extras: type section bytes 8..13, function 14..17, export 18..26, code from 27 (body at 31).
 */
const runModule = (
  body: ReadonlyArray<number>,
  extra: ReadonlyArray<number> = [],
  after: ReadonlyArray<number> = []
): Uint8Array =>
  Uint8Array.from([
    ...HEADER,
    ...hSection(SectionId.type, [0x01, 0x60, 0x00, 0x00]),
    ...hSection(SectionId.function, [0x01, 0x00]),
    ...extra,
    ...hSection(SectionId.export, [0x01, ...hStr("run"), 0x00, 0x00]),
    ...hSection(SectionId.code, [0x01, ...uleb(body.length), ...body]),
    ...after
  ])

/**
 * The fuel escapes of issue 12 item 2 — invalid modules that a fuel rewrite without its own index checks turned into
 * valid ones whose loop refills its own fuel — with the byte offset of the offending instruction:
 * - `localRefill`: no locals; `loop (local.set 0 (i64.const 1e9)) br 0` (local 0 would be the fuel counter);
 * - `globalRefill`: one `(mut i64)` global; the loop sets global 1, one past the module's globals;
 * - `globalRead`: `global.get 0` in a module without globals.
 */
export const fuelEscapeModules = (): ReadonlyArray<{
  readonly name: string
  readonly bytes: Uint8Array
  readonly offset: number
  readonly reason: RegExp
}> => [
  {
    name: "local.set one past the locals",
    bytes: runModule([0x00, 0x03, 0x40, ...I64_1E9, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b]),
    offset: 40,
    reason: /unknown local 0/
  },
  {
    name: "global.set one past the globals",
    bytes: runModule(
      [0x00, 0x03, 0x40, ...I64_1E9, 0x24, 0x01, 0x0c, 0x00, 0x0b, 0x0b],
      hSection(6, [0x01, 0x7e, 0x01, 0x42, 0x00, 0x0b])
    ),
    offset: 48,
    reason: /unknown global 1/
  },
  {
    name: "global.get one past the globals",
    bytes: runModule([0x00, 0x23, 0x00, 0x1a, 0x0b]),
    offset: 32,
    reason: /unknown global 0/
  }
]

/**
 * The valid twin of the local escape: the same `loop (local.set 0 (i64.const 1e9)) br 0` with a declared i64 local
 * (`(func (export "run") (local i64) ...)`): it never ends by itself, so fuel metering must stop it (`FuelExhausted`).
 */
export const fuelLoopModule = (): Uint8Array =>
  runModule([0x01, 0x01, 0x7e, 0x03, 0x40, ...I64_1E9, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b])

/**
 * A few `assert_malformed` shapes of the WebAssembly spec test suite (binary.wast, binary-leb128.wast) and a limits
 * encoding Node 20's V8 cannot run (memory64), each with the reader's byte offset and reason and the
 * `CompileError.kind` it must carry. The section framing stays intact, so the modules can be signed.
 */
export const malformedModules = (): ReadonlyArray<{
  readonly name: string
  readonly bytes: Uint8Array
  readonly kind: "malformed" | "unsupported"
  readonly offset: number
  readonly reason: RegExp
}> => [
  // binary.wast "illegal opcode": unreachable, 0xff, unreachable, end — 0xff at byte 33
  {
    name: "illegal opcode 0xff in a body",
    bytes: runModule([0x00, 0x00, 0xff, 0x00, 0x0b]),
    kind: "malformed",
    offset: 33,
    reason: /illegal opcode 0xff/
  },
  // binary.wast "data count section required": memory.init with a data section and no data count section
  {
    name: "memory.init without a data count section",
    bytes: runModule(
      [0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x08, 0x00, 0x00, 0x0b],
      hSection(SectionId.memory, [0x01, 0x00, 0x01]),
      hSection(SectionId.data, [0x01, 0x01, 0x00])
    ),
    kind: "malformed",
    offset: 43,
    reason: /data count section required/
  },
  // binary-leb128.wast: an i32.const immediate in 6 bytes (a u32/s32 LEB128 has at most 5)
  {
    name: "overlong LEB128 (i32.const in 6 bytes)",
    bytes: runModule([0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b]),
    kind: "malformed",
    offset: 33,
    reason: /integer representation too long/
  },
  // memory64 limits (flags 0x04): Node 20's V8 rejects them; refused as unsupported, naming the feature
  {
    name: "memory64 limits",
    bytes: Uint8Array.from([...HEADER, ...hSection(SectionId.memory, [0x01, 0x04, 0x01])]),
    kind: "unsupported",
    offset: 11,
    reason: /memory64/
  }
]

/**
 * `(module (import "env" "table" (table 1 funcref))
 *   (func (export "grow") (param i32) (result i32) (table.grow 0 (ref.null func) (local.get 0)))
 *   (func (export "size") (result i32) (table.size 0)))` — the table bomb over a caller-supplied table
 * (issue 12 item 1): the budget cannot be written into a table the caller creates, so the engine must check it.
 */
export const importedTableModule = (): Uint8Array => {
  const grow = [0x00, 0xd0, 0x70, 0x20, 0x00, 0xfc, 0x0f, 0x00, 0x0b]
  const size = [0x00, 0xfc, 0x10, 0x00, 0x0b]
  return Uint8Array.from([
    ...HEADER,
    ...hSection(SectionId.type, [0x02, 0x60, 0x01, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x01, 0x7f]),
    ...hSection(SectionId.import, [0x01, ...hStr("env"), ...hStr("table"), 0x01, 0x70, 0x00, 0x01]),
    ...hSection(SectionId.function, [0x02, 0x00, 0x01]),
    ...hSection(SectionId.export, [0x02, ...hStr("grow"), 0x00, 0x00, ...hStr("size"), 0x00, 0x01]),
    ...hSection(SectionId.code, [0x02, grow.length, ...grow, size.length, ...size])
  ])
}
