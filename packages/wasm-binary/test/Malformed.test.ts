/**
 * Malformed and invalid modules, in the spirit of the spec test suite's
 * binary.wast, binary-leb128.wast and custom.wast. Every case checks the
 * reason and the byte offset, and that V8 rejects the module too.
 */
import { describe, expect, it } from "@effect/vitest"
import { customSections, readModule, WasmBinaryError } from "../src/index.js"
import {
  bytes,
  codeSection,
  emptyBody,
  functionSection,
  functype,
  module,
  name,
  type Part,
  rawName,
  section,
  T,
  typeSection,
  u32,
  vec
} from "./helpers/ModuleBuilder.js"

interface Case {
  readonly name: string
  readonly bytes: Uint8Array<ArrayBuffer>
  readonly reason: string
  readonly offset: number
}

const rep = (b: number, n: number): Array<number> => Array.from({ length: n }, () => b)
const voidType = typeSection(functype([], [])) // bytes 8..13
/** Type [] -> [] + one function: bytes 8..17, so the next section starts at 18. */
const oneFunction = bytes(voidType, functionSection(0))
/** A global section with one global of type `t` initialised by `init` (the init expression starts at 13). */
const global = (t: number, ...init: ReadonlyArray<Part>) => section(6, vec(bytes(t, 0x00, ...init)))
/** A code section with one body of raw `locals` + instructions (the body starts at byte 22). */
const body = (...b: ReadonlyArray<number | Uint8Array>) => codeSection(bytes(...b))

const cases: ReadonlyArray<Case> = [
  // preamble
  { name: "empty", bytes: bytes(), reason: "unexpected end", offset: 0 },
  { name: "truncated magic", bytes: bytes(0x00, 0x61, 0x73), reason: "unexpected end", offset: 3 },
  {
    name: "bad magic",
    bytes: bytes(0x00, 0x61, 0x73, 0x6e, 1, 0, 0, 0),
    reason: "magic header not detected",
    offset: 0
  },
  { name: "magic only", bytes: bytes(0x00, 0x61, 0x73, 0x6d), reason: "unexpected end", offset: 4 },
  { name: "truncated version", bytes: bytes(0x00, 0x61, 0x73, 0x6d, 1, 0), reason: "unexpected end", offset: 6 },
  {
    name: "bad version",
    bytes: bytes(0x00, 0x61, 0x73, 0x6d, 2, 0, 0, 0),
    reason: "unknown binary version",
    offset: 4
  },
  {
    name: "version 0x0d (pre-MVP)",
    bytes: bytes(0x00, 0x61, 0x73, 0x6d, 0x0d, 0, 0, 0),
    reason: "unknown binary version",
    offset: 4
  },

  // LEB128: u32
  {
    name: "u32 in 6 bytes",
    bytes: module(1, 6, rep(0x80, 5), 0x00),
    reason: "integer representation too long",
    offset: 10
  },
  {
    name: "section size u32 in 6 bytes",
    bytes: module(1, rep(0x80, 5), 0x00),
    reason: "integer representation too long",
    offset: 9
  },
  { name: "u32 5th byte 0x10", bytes: module(1, 5, rep(0x80, 4), 0x10), reason: "integer too large", offset: 10 },
  { name: "u32 5th byte 0x70", bytes: module(1, 5, rep(0xff, 4), 0x7f), reason: "integer too large", offset: 10 },
  { name: "u32 truncated", bytes: module(1, 2, 0x80, 0x80), reason: "section size mismatch", offset: 12 },
  { name: "u32 truncated at end of module", bytes: module(1, 0x80), reason: "unexpected end", offset: 10 },
  // LEB128: s32 (i32.const in a global initializer, the immediate at byte 14)
  {
    name: "s32 in 6 bytes",
    bytes: module(global(T.i32, 0x41, rep(0x80, 5), 0x00, 0x0b)),
    reason: "integer representation too long",
    offset: 14
  },
  {
    name: "s32 negative, bad sign bits",
    bytes: module(global(T.i32, 0x41, rep(0xff, 4), 0x4f, 0x0b)),
    reason: "integer too large",
    offset: 14
  },
  {
    name: "s32 positive, bad sign bits",
    bytes: module(global(T.i32, 0x41, rep(0x80, 4), 0x70, 0x0b)),
    reason: "integer too large",
    offset: 14
  },
  {
    name: "s32 positive, 5th byte 0x08",
    bytes: module(global(T.i32, 0x41, rep(0x80, 4), 0x08, 0x0b)),
    reason: "integer too large",
    offset: 14
  },
  // LEB128: s64
  {
    name: "s64 in 11 bytes",
    bytes: module(global(T.i64, 0x42, rep(0x80, 10), 0x00, 0x0b)),
    reason: "integer representation too long",
    offset: 14
  },
  {
    name: "s64 10th byte 0x01",
    bytes: module(global(T.i64, 0x42, rep(0x80, 9), 0x01, 0x0b)),
    reason: "integer too large",
    offset: 14
  },
  {
    name: "s64 10th byte 0x7e",
    bytes: module(global(T.i64, 0x42, rep(0xff, 9), 0x7e, 0x0b)),
    reason: "integer too large",
    offset: 14
  },

  // section framing
  { name: "section size past the end", bytes: module(1, 5, 0x01, 0x60), reason: "unexpected end", offset: 12 },
  {
    name: "section content overruns its size",
    bytes: module(1, 1, 0x01, 0x60, 0x00, 0x00),
    reason: "section size mismatch",
    offset: 11
  },
  {
    name: "section content underruns its size",
    bytes: module(1, 2, 0x00, 0x00),
    reason: "section size mismatch",
    offset: 11
  },
  {
    name: "function section underrun",
    bytes: module(voidType, 3, 3, 1, 0, 0, codeSection(emptyBody)),
    reason: "section size mismatch",
    offset: 18
  },
  { name: "unknown section id 14", bytes: module(14, 0), reason: "malformed section id", offset: 8 },
  { name: "unknown section id 0x7f", bytes: module(voidType, 0x7f, 0), reason: "malformed section id", offset: 14 },
  {
    name: "out of order: type after function",
    bytes: module(section(3, vec()), section(1, vec())),
    reason: "unexpected type section after function section",
    offset: 11
  },
  {
    name: "out of order: tag after global",
    bytes: module(section(6, vec()), section(13, vec())),
    reason: "unexpected tag section after global section",
    offset: 11
  },
  {
    name: "out of order: data count after code",
    bytes: module(section(10, vec()), section(12, u32(0))),
    reason: "unexpected data count section after code section",
    offset: 11
  },
  {
    name: "duplicate type section",
    bytes: module(section(1, vec()), section(1, vec())),
    reason: "duplicate type section",
    offset: 11
  },
  {
    name: "duplicate memory section around a custom section",
    bytes: module(section(5, vec()), section(0, name("x")), section(5, vec())),
    reason: "duplicate memory section",
    offset: 15
  },

  // counts
  {
    name: "function section without code section",
    bytes: module(oneFunction),
    reason: "function and code section have inconsistent lengths",
    offset: 18
  },
  {
    name: "code section with more bodies",
    bytes: module(oneFunction, codeSection(emptyBody, emptyBody)),
    reason: "function and code section have inconsistent lengths",
    offset: 20
  },
  {
    name: "code section without function section",
    bytes: module(voidType, codeSection(emptyBody)),
    reason: "function and code section have inconsistent lengths",
    offset: 16
  },
  {
    name: "data count 2, one data segment",
    bytes: module(section(12, u32(2)), section(11, vec(bytes(0x01, vec())))),
    reason: "data count and data section have inconsistent lengths",
    offset: 13
  },
  {
    name: "data count 1, no data section",
    bytes: module(section(12, u32(1))),
    reason: "data count and data section have inconsistent lengths",
    offset: 11
  },

  // names
  {
    name: "export name: overlong UTF-8",
    bytes: module(oneFunction, section(7, vec(bytes(rawName(0xc0, 0x80), 0x00, 0x00))), codeSection(emptyBody)),
    reason: "malformed UTF-8 encoding",
    offset: 22
  },
  {
    name: "import module name: 0xff",
    bytes: module(voidType, section(2, vec(bytes(rawName(0xff), name("f"), 0x00, 0x00)))),
    reason: "malformed UTF-8 encoding",
    offset: 18
  },
  {
    name: "import field name: surrogate",
    bytes: module(voidType, section(2, vec(bytes(name("m"), rawName(0xed, 0xa0, 0x80), 0x00, 0x00)))),
    reason: "malformed UTF-8 encoding",
    offset: 20
  },
  {
    name: "custom section name: truncated sequence",
    bytes: module(section(0, rawName(0xe0, 0xa0), 1, 2)),
    reason: "malformed UTF-8 encoding",
    offset: 11
  },
  {
    name: "custom section name overruns the section",
    bytes: module(0, 3, 5, 0x61, 0x62),
    reason: "length out of bounds",
    offset: 10
  },
  { name: "custom section without a name", bytes: module(0, 0), reason: "section size mismatch", offset: 10 },
  {
    name: "duplicate export name",
    bytes: module(oneFunction, section(7, vec(bytes(name("a"), 0, 0), bytes(name("a"), 0, 0))), codeSection(emptyBody)),
    reason: "duplicate export name",
    offset: 25
  },

  // types
  {
    name: "invalid value type 0x7a",
    bytes: module(typeSection(functype([0x7a], []))),
    reason: "malformed value type",
    offset: 13
  },
  {
    name: "invalid result type 0x40",
    bytes: module(typeSection(functype([], [0x40]))),
    reason: "malformed value type",
    offset: 14
  },
  {
    name: "bad function type form",
    bytes: module(section(1, vec(bytes(0x40, 0, 0)))),
    reason: "malformed function type form 0x40",
    offset: 11
  },
  {
    name: "invalid local type",
    bytes: module(oneFunction, body(1, 1, 0x7a, 0x0b)),
    reason: "malformed value type",
    offset: 24
  },
  {
    name: "unknown type index",
    bytes: module(functionSection(0), codeSection(emptyBody)),
    reason: "unknown type 0",
    offset: 11
  },
  {
    name: "malformed import kind",
    bytes: module(section(2, vec(bytes(name("m"), name("f"), 0x05)))),
    reason: "malformed import kind",
    offset: 15
  },
  {
    name: "malformed export kind",
    bytes: module(section(7, vec(bytes(name("m"), 0x05, 0)))),
    reason: "malformed export kind",
    offset: 13
  },
  {
    name: "malformed mutability",
    bytes: module(global(T.i32, 0x41, 0x00, 0x0b).map((b, i) => (i === 4 ? 0x02 : b))),
    reason: "malformed mutability",
    offset: 12
  },

  // limits
  {
    name: "memory limits flag 0x08",
    bytes: module(section(5, vec(bytes(0x08, 0)))),
    reason: "malformed limits flags",
    offset: 11
  },
  {
    name: "table limits flag 0x02",
    bytes: module(section(4, vec(bytes(0x70, 0x02, 0, 0)))),
    reason: "malformed limits flags",
    offset: 12
  },
  {
    name: "table element type 0x7f",
    bytes: module(section(4, vec(bytes(0x7f, 0x00, 0)))),
    reason: "malformed reference type",
    offset: 11
  },
  {
    name: "shared memory without maximum",
    bytes: module(section(5, vec(bytes(0x02, 1)))),
    reason: "shared memory must have maximum",
    offset: 11
  },
  {
    name: "memory min > max",
    bytes: module(section(5, vec(bytes(0x01, 2, 1)))),
    reason: "size minimum must not be greater than maximum",
    offset: 13
  },
  {
    name: "table min > max",
    bytes: module(section(4, vec(bytes(0x70, 0x01, 2, 1)))),
    reason: "size minimum must not be greater than maximum",
    offset: 14
  },
  {
    name: "memory min 65537 pages",
    bytes: module(section(5, vec(bytes(0x00, u32(65_537))))),
    reason: "memory size must be at most 65536 pages (4GiB)",
    offset: 12
  },
  {
    name: "memory max 65537 pages",
    bytes: module(section(5, vec(bytes(0x01, 0, u32(65_537))))),
    reason: "memory size must be at most 65536 pages (4GiB)",
    offset: 13
  },
  {
    name: "imported memory limits flag 0x08",
    bytes: module(section(2, vec(bytes(name("m"), name("f"), 0x02, 0x08, 0)))),
    reason: "malformed limits flags",
    offset: 16
  },

  // locals
  {
    name: "too many locals (one group)",
    bytes: module(oneFunction, body(1, u32(50_001), T.i32, 0x0b)),
    reason: "too many locals",
    offset: 23
  },
  {
    name: "too many locals (two groups)",
    bytes: module(oneFunction, body(2, u32(25_000), T.i32, u32(25_001), T.i64, 0x0b)),
    reason: "too many locals",
    offset: 27
  },
  {
    name: "too many locals (u32 overflow)",
    bytes: module(oneFunction, body(2, u32(0xffff_ffff), T.i32, u32(2), T.i64, 0x0b)),
    reason: "too many locals",
    offset: 23
  },
  {
    name: "function body without end",
    bytes: module(oneFunction, body(0, 0x01)),
    reason: "END opcode expected",
    offset: 23
  },
  {
    name: "empty function body",
    bytes: module(oneFunction, codeSection(bytes())),
    reason: "unexpected end of section or function",
    offset: 22
  },
  {
    name: "function body overruns the section",
    bytes: module(oneFunction, 10, 4, 1, 5, 0, 0x0b),
    reason: "section size mismatch",
    offset: 21
  },

  // indices and constant expressions
  {
    name: "export of a missing function",
    bytes: module(oneFunction, section(7, vec(bytes(name("f"), 0, 1))), codeSection(emptyBody)),
    reason: "unknown function 1",
    offset: 24
  },
  {
    name: "export of a missing memory",
    bytes: module(section(7, vec(bytes(name("m"), 2, 0)))),
    reason: "unknown memory 0",
    offset: 14
  },
  {
    name: "export of a missing global",
    bytes: module(section(7, vec(bytes(name("g"), 3, 0)))),
    reason: "unknown global 0",
    offset: 14
  },
  { name: "start function out of range", bytes: module(section(8, u32(0))), reason: "unknown function 0", offset: 10 },
  {
    name: "start function with parameters",
    bytes: module(typeSection(functype([T.i32], [])), functionSection(0), section(8, u32(0)), codeSection(emptyBody)),
    reason: "start function must have type [] -> []",
    offset: 21
  },
  {
    name: "non-constant initializer",
    bytes: module(global(T.i32, 0x01, 0x0b)),
    reason: "constant expression required",
    offset: 13
  },
  {
    name: "initializer of the wrong type",
    bytes: module(global(T.i32, 0x42, 0x00, 0x0b)),
    reason: "type mismatch",
    offset: 15
  },
  {
    name: "initializer with two values",
    bytes: module(global(T.i32, 0x41, 0x00, 0x41, 0x00, 0x0b)),
    reason: "type mismatch",
    offset: 17
  },
  {
    name: "initializer reading a mutable global",
    bytes: module(section(2, vec(bytes(name("m"), name("g"), 0x03, T.i32, 0x01))), global(T.i32, 0x23, 0x00, 0x0b)),
    reason: "constant expression required",
    offset: 23
  },
  {
    name: "initializer reading a missing global",
    bytes: module(global(T.i32, 0x23, 0x00, 0x0b)),
    reason: "unknown global 0",
    offset: 14
  },
  {
    name: "initializer without end",
    bytes: module(section(6, vec(bytes(T.i32, 0x00, 0x41, 0x00)))),
    reason: "section size mismatch",
    offset: 15
  },
  {
    name: "element segment kind 8",
    bytes: module(section(9, vec(u32(8)))),
    reason: "malformed elements segment kind",
    offset: 11
  },
  {
    name: "active element segment without table",
    bytes: module(section(9, vec(bytes(0x00, 0x41, 0x00, 0x0b, vec())))),
    reason: "unknown table 0",
    offset: 12
  },
  {
    name: "active data segment without memory",
    bytes: module(section(11, vec(bytes(0x00, 0x41, 0x00, 0x0b, vec())))),
    reason: "unknown memory 0",
    offset: 12
  },
  {
    name: "data segment kind 3",
    bytes: module(section(11, vec(bytes(0x03)))),
    reason: "malformed data segment kind",
    offset: 11
  },
  {
    name: "data segment longer than its section",
    bytes: module(section(5, vec(bytes(0, 1))), section(11, vec(bytes(0x00, 0x41, 0x00, 0x0b, 10, 1, 2)))),
    reason: "length out of bounds",
    offset: 20
  }
]

describe("malformed modules", () => {
  for (const c of cases) {
    it(c.name, () => {
      const r = readModule(c.bytes)
      expect(r.ok).toBe(false)
      if (r.ok) return
      expect(r.error).toBeInstanceOf(WasmBinaryError)
      expect(r.error._tag).toBe("WasmBinaryError")
      expect({ reason: r.error.reason, offset: r.error.offset }).toEqual({ reason: c.reason, offset: c.offset })
      expect(r.error.message).toBe(`${c.reason} at byte ${c.offset}`)
      expect(WebAssembly.validate(c.bytes)).toBe(false)
    })
  }

  it("customSections reports framing errors with the same reason and offset", () => {
    for (const c of cases.filter((x) => x.bytes.length <= 8 || /^custom|section id|past the end/.test(x.name))) {
      const r = customSections(c.bytes)
      expect(r.ok, c.name).toBe(false)
      if (!r.ok)
        expect({ reason: r.error.reason, offset: r.error.offset }, c.name).toEqual({
          reason: c.reason,
          offset: c.offset
        })
    }
  })
})
