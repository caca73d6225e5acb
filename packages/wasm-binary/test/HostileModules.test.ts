/**
 * Issue 12 (hostile trials), the parts of this package:
 *
 * - item 2: the fuel rewriter turned invalid modules into valid ones that
 *   refill their own fuel (a `local.set` of the index the fuel local takes, a
 *   `global.set` of the index the fuel global takes). Now the reader, the
 *   rewriter's own bookkeeping and the `WebAssembly.validate` contract each
 *   refuse them.
 * - item 6: the reader accepted spec `assert_malformed` modules (illegal
 *   opcodes in bodies, `memory.init` without a data count section, overlong
 *   LEB128 immediates) and memory64 limits V8 on Node 20 rejects.
 * - item 8 (reader part): features Node 20 cannot run are refused as
 *   `unsupported`, naming the feature, not as malformed.
 */
import { describe, expect, it } from "@effect/vitest"
import { referenceModules } from "@agent-runtime/reference-modules"
import {
  capMemory,
  exportState,
  instrumentFuel,
  readModule,
  rewriteModule,
  type UnsupportedFeature,
  WasmBinaryError
} from "../src/index.js"
import { instrumentFuelOf } from "../src/Fuel.js"
import { readAgent } from "./helpers/Agents.js"
import { instantiateMetered } from "./helpers/FuelCounter.js"
import {
  bytes,
  codeSection,
  functionSection,
  functype,
  module,
  name,
  s64,
  section,
  T,
  typeSection,
  vec
} from "./helpers/ModuleBuilder.js"
import { mutate, prng } from "./helpers/Mutate.js"

const voidType = typeSection(functype([], [])) // bytes 8..13
const exportRun = section(7, vec(bytes(name("run"), 0x00, 0x00)))
/** `(func (export "run") <body>)`: type section 8..13, function section 14..17, export 18..26, code from 27 (body at 31). */
const oneFunction = (...body: ReadonlyArray<number | Uint8Array>) =>
  module(voidType, functionSection(0), exportRun, codeSection(bytes(...body)))

/** Issue 12 item 2, first module: no locals; `loop (local.set 0 (i64.const 1e9)) br 0`. */
const localRefill = oneFunction(0x00, 0x03, 0x40, 0x42, s64(1_000_000_000n), 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b)
/** Offset of its `local.set 0`: body at 31 (locals count), loop 32–33, i64.const 34–39. */
const localSetAt = 40

/** Issue 12 item 2, second module: one global (mut i64); the loop sets global 1, one past the module's globals. */
const globalRefill = module(
  voidType,
  functionSection(0),
  section(6, vec(bytes(T.i64, 0x01, 0x42, 0x00, 0x0b))),
  exportRun,
  codeSection(bytes(0x00, 0x03, 0x40, 0x42, s64(1_000_000_000n), 0x24, 0x01, 0x0c, 0x00, 0x0b, 0x0b))
)
/** The same with `global.get 0` in a module without globals. */
const globalRead = oneFunction(0x00, 0x23, 0x00, 0x1a, 0x0b)

const refusal = (r: { readonly ok: boolean; readonly error?: WasmBinaryError }) => {
  expect(r.ok).toBe(false)
  const e = r.error as WasmBinaryError
  expect(e).toBeInstanceOf(WasmBinaryError)
  return { kind: e.kind, reason: e.reason, offset: e.offset }
}

describe("issue 12 item 2: no rewrite turns an invalid module into a valid one", () => {
  const escapes = [
    {
      name: "local.set 0 in a function without locals (loop refilling the fuel local)",
      bytes: localRefill,
      local: true
    },
    {
      name: "global.set one past the module's globals (loop refilling the fuel global)",
      bytes: globalRefill,
      local: false
    },
    { name: "global.get 0 in a module without globals", bytes: globalRead, local: false }
  ]
  for (const c of escapes) {
    it(c.name, () => {
      expect(WebAssembly.validate(c.bytes)).toBe(false)
      // the reader: a typed `invalid` error at the instruction
      const read = refusal(readModule(c.bytes))
      expect(read.kind).toBe("invalid")
      expect(read.reason).toMatch(c.local ? /^unknown local 0$/ : /^unknown global [01]$/)
      // the rewriter's own bookkeeping, without reader or validator: the index would alias the counter
      const own = refusal(instrumentFuelOf(c.bytes))
      expect(own.kind).toBe("invalid")
      expect(own.reason).toBe(read.reason)
      expect(own.offset).toBe(read.offset)
      // every public rewrite refuses
      for (const r of [
        instrumentFuel(c.bytes),
        rewriteModule(c.bytes, { fuel: true }),
        rewriteModule(c.bytes, { maxMemoryPages: 16, exportState: true }),
        capMemory(c.bytes, 16),
        exportState(c.bytes)
      ]) {
        expect(refusal(r).kind).toBe("invalid")
      }
    })
  }

  it("the exact offset of the refusal is the offending instruction", () => {
    expect(refusal(readModule(localRefill))).toEqual({ kind: "invalid", reason: "unknown local 0", offset: localSetAt })
  })

  it("the same loop with a declared i64 local is valid, and metered: the fuel counter gets an index of its own", () => {
    // Documents the escape: the fuel local is index 0 here, so `local.set 0` refills it. The rewriter now refuses it
    // before writing anything; the same body with a declared i64 local is valid and gets metered.
    const declared = oneFunction(
      0x01,
      0x01,
      T.i64,
      0x03,
      0x40,
      0x42,
      s64(1_000_000_000n),
      0x21,
      0x00,
      0x0c,
      0x00,
      0x0b,
      0x0b
    )
    expect(WebAssembly.validate(declared)).toBe(true)
    const r = rewriteModule(declared, { fuel: true })
    if (!r.ok) throw r.error
    const i = instantiateMetered(r.value.bytes)
    ;(i.exports["agent-runtime:fuel"] as WebAssembly.Global).value = 10_000n
    expect(() => (i.exports.run as () => void)()).toThrow(WebAssembly.RuntimeError)
    expect((i.exports["agent-runtime:fuel"] as WebAssembly.Global).value).toBeLessThan(0n)
  })

  it("a module only V8 refuses (a type error the reader does not check) is refused with V8's reason and offset", () => {
    // (func (result i32) i64.const 1 i32.const 2 i32.add): i32.add of an i64
    const typeError = module(
      typeSection(functype([], [T.i32])),
      functionSection(0),
      codeSection(bytes(0x00, 0x42, 0x01, 0x41, 0x02, 0x6a, 0x0b))
    )
    expect(readModule(typeError).ok).toBe(true)
    expect(WebAssembly.validate(typeError)).toBe(false)
    for (const r of [
      instrumentFuel(typeError),
      rewriteModule(typeError, { fuel: true }),
      capMemory(typeError, 1),
      exportState(typeError)
    ]) {
      const e = refusal(r)
      expect(e.kind).toBe("invalid")
      expect(e.reason).toMatch(/^module does not validate: .*i32\.add/)
      expect(e.offset).toBeGreaterThan(8)
      expect(e.offset).toBeLessThanOrEqual(typeError.length)
    }
  })

  it("contract over mutants of real modules: a rewrite succeeds only when input and output both validate", () => {
    const random = prng(0x12_0002)
    const sources = [
      readAgent("counter"),
      readAgent("grower"),
      ...referenceModules
        .filter((m) => m.read().length < 50_000)
        .slice(0, 2)
        .map((m) => m.read())
    ]
    let rewritten = 0
    let refused = 0
    for (let i = 0; i < 600; i++) {
      const source = sources[i % sources.length] as Uint8Array<ArrayBuffer>
      const mutant = mutate(source, random).bytes
      const r = rewriteModule(mutant, { maxMemoryPages: 65_536, exportState: true, fuel: true })
      if (r.ok) {
        rewritten++
        expect(WebAssembly.validate(mutant)).toBe(true)
        expect(WebAssembly.validate(r.value.bytes)).toBe(true)
      } else {
        refused++
        expect(r.error).toBeInstanceOf(WasmBinaryError)
        expect(r.error.reason).not.toMatch(/^internal error|rewriter bug/)
      }
    }
    console.log(
      `rewrite contract over 600 mutants: ${rewritten} rewritten (input and output validate), ${refused} refused (typed)`
    )
    expect(rewritten + refused).toBe(600)
  })
})

interface ReaderCase {
  readonly name: string
  readonly bytes: Uint8Array<ArrayBuffer>
  readonly reason: string
  readonly offset: number
}

/** One memory (bytes 18..22) then a code section whose single body starts at byte 27. */
const withMemory = (...body: ReadonlyArray<number | Uint8Array>) =>
  module(voidType, functionSection(0), section(5, vec(bytes(0x00, 0x01))), codeSection(bytes(...body)))

describe("issue 12 item 6: the reader agrees with the spec on malformed bodies", () => {
  const cases: ReadonlyArray<ReaderCase> = [
    // binary.wast "illegal opcode ff": unreachable, 0xff, unreachable, unreachable, end (body at 31, 0xff at 33)
    {
      name: "illegal opcode 0xff in a body",
      bytes: oneFunction(0x00, 0x00, 0xff, 0x00, 0x00, 0x0b),
      reason: "illegal opcode 0xff",
      offset: 33
    },
    {
      name: "illegal opcode 0x27 in a body",
      bytes: oneFunction(0x00, 0x27, 0x0b),
      reason: "illegal opcode 0x27",
      offset: 32
    },
    {
      name: "illegal prefixed opcode 0xfc 0x12",
      bytes: oneFunction(0x00, 0xfc, 0x12, 0x0b),
      reason: "illegal opcode 0xfc 0x12",
      offset: 32
    },
    // binary.wast "data count section required": memory.init without a data count section
    {
      name: "memory.init without a data count section",
      bytes: module(
        voidType,
        functionSection(0),
        section(5, vec(bytes(0x00, 0x00))),
        codeSection(bytes(0x00, 0x41, 0x00, 0x41, 0x00, 0x41, 0x00, 0xfc, 0x08, 0x00, 0x00, 0x0b)),
        section(11, vec(bytes(0x01, vec())))
      ),
      reason: "data count section required",
      offset: 34
    },
    {
      name: "data.drop without a data count section",
      bytes: module(
        voidType,
        functionSection(0),
        codeSection(bytes(0x00, 0xfc, 0x09, 0x00, 0x0b)),
        section(11, vec(bytes(0x01, vec())))
      ),
      reason: "data count section required",
      offset: 23
    },
    // binary-leb128.wast: memarg alignment in 6 bytes, with unused bits, an overlong prefixed opcode
    {
      name: "memarg alignment u32 in 6 bytes",
      bytes: withMemory(0x00, 0x41, 0x00, 0x28, 0x82, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00, 0x1a, 0x0b),
      reason: "integer representation too long",
      offset: 31
    },
    {
      name: "memarg alignment with unused bits set",
      bytes: withMemory(0x00, 0x41, 0x00, 0x28, 0x82, 0x80, 0x80, 0x80, 0x10, 0x00, 0x1a, 0x0b),
      reason: "integer too large",
      offset: 31
    },
    {
      name: "memarg flags 0x80 (align.wast)",
      bytes: withMemory(0x00, 0x41, 0x00, 0x28, 0x80, 0x01, 0x00, 0x1a, 0x0b),
      reason: "malformed memop flags",
      offset: 31
    },
    {
      name: "prefixed opcode in 6 bytes",
      bytes: oneFunction(0x00, 0x00, 0xfc, 0x87, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00, 0x0b),
      reason: "integer representation too long",
      offset: 34
    },
    {
      name: "i32.const s32 in 6 bytes",
      bytes: oneFunction(0x00, 0x41, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x1a, 0x0b),
      reason: "integer representation too long",
      offset: 33
    },
    {
      name: "an end before the body's last byte",
      bytes: oneFunction(0x00, 0x0b, 0x01, 0x0b),
      reason: "section size mismatch",
      offset: 33
    },
    { name: "unclosed block", bytes: oneFunction(0x00, 0x02, 0x40, 0x0b), reason: "END opcode expected", offset: 35 }
  ]
  for (const c of cases) {
    it(c.name, () => {
      expect(WebAssembly.validate(c.bytes)).toBe(false)
      const r = readModule(c.bytes)
      expect(r.ok).toBe(false)
      if (r.ok) return
      expect({ kind: r.error.kind, reason: r.error.reason, offset: r.error.offset }).toEqual({
        kind: "malformed",
        reason: c.reason,
        offset: c.offset
      })
    })
  }
})

interface UnsupportedCase {
  readonly name: string
  readonly bytes: Uint8Array<ArrayBuffer>
  readonly feature: UnsupportedFeature
}

describe("issue 12 item 8 (reader): features Node 20 cannot run are unsupported, by name", () => {
  const cases: ReadonlyArray<UnsupportedCase> = [
    { name: "memory64 limits", bytes: module(section(5, vec(bytes(0x04, 0x01)))), feature: "memory64" },
    {
      name: "memory64 limits with a maximum",
      bytes: module(section(5, vec(bytes(0x05, 0x01, 0x02)))),
      feature: "memory64"
    },
    {
      name: "imported memory64",
      bytes: module(section(2, vec(bytes(name("env"), name("m"), 0x02, 0x04, 0x01)))),
      feature: "memory64"
    },
    { name: "table64 limits", bytes: module(section(4, vec(bytes(T.funcref, 0x04, 0x01)))), feature: "memory64" },
    {
      name: "a second memory",
      bytes: module(section(5, vec(bytes(0x00, 0x01), bytes(0x00, 0x01)))),
      feature: "multi-memory"
    },
    { name: "GC struct type", bytes: module(section(1, vec(bytes(0x5f, vec())))), feature: "gc" },
    { name: "GC rec group", bytes: module(section(1, vec(bytes(0x4e, vec())))), feature: "gc" },
    {
      name: "typed reference value type (ref null 0)",
      bytes: module(typeSection(bytes(0x60, vec(bytes(0x63, 0x00)), vec()))),
      feature: "gc"
    },
    { name: "anyref global", bytes: module(section(6, vec(bytes(0x6e, 0x00, 0xd0, 0x6e, 0x0b)))), feature: "gc" },
    { name: "0xfb GC opcode in a body", bytes: oneFunction(0x00, 0xfb, 0x00, 0x00, 0x0b), feature: "gc" },
    { name: "call_ref", bytes: oneFunction(0x00, 0x14, 0x00, 0x0b), feature: "gc" },
    {
      name: "table with an initializer expression",
      bytes: module(section(4, vec(bytes(0x40, 0x00, T.funcref, 0x00, 0x01, 0xd0, 0x70, 0x0b)))),
      feature: "gc"
    },
    {
      name: "exnref value type",
      bytes: module(typeSection(functype([0x69], []))),
      feature: "exception handling (exnref)"
    },
    {
      name: "try_table",
      bytes: oneFunction(0x00, 0x1f, 0x40, 0x00, 0x0b, 0x0b),
      feature: "exception handling (exnref)"
    },
    { name: "throw_ref", bytes: oneFunction(0x00, 0x0a, 0x0b), feature: "exception handling (exnref)" },
    { name: "relaxed SIMD", bytes: oneFunction(0x00, 0xfd, 0x80, 0x02, 0x0b), feature: "relaxed SIMD" },
    {
      name: "memarg with a memory index",
      bytes: withMemory(0x00, 0x41, 0x00, 0x28, 0x42, 0x00, 0x00, 0x1a, 0x0b),
      feature: "multi-memory"
    },
    {
      name: "extended constant expression",
      bytes: module(section(6, vec(bytes(T.i32, 0x00, 0x41, 0x01, 0x41, 0x02, 0x6a, 0x0b)))),
      feature: "extended-const"
    }
  ]
  for (const c of cases) {
    it(c.name, () => {
      expect(WebAssembly.validate(c.bytes)).toBe(false)
      const r = readModule(c.bytes)
      expect(r.ok).toBe(false)
      if (r.ok) return
      expect({ kind: r.error.kind, feature: r.error.feature }).toEqual({ kind: "unsupported", feature: c.feature })
      expect(r.error.message).toContain(c.feature)
      // the rewriters refuse with the same typed error
      const w = rewriteModule(c.bytes, { fuel: true })
      expect(w.ok ? undefined : w.error.feature).toBe(c.feature)
    })
  }

  it("memory64 and extended-const can be decoded on request", () => {
    expect(readModule(module(section(5, vec(bytes(0x05, 0x01, 0x02)))), { memory64: true }).ok).toBe(true)
    expect(
      readModule(module(section(6, vec(bytes(T.i32, 0x00, 0x41, 0x01, 0x41, 0x02, 0x6a, 0x0b)))), {
        extendedConst: true
      }).ok
    ).toBe(true)
  })

  it("malformed stays malformed: an unknown value type byte", () => {
    const r = readModule(module(typeSection(functype([0x7a], []))))
    expect(r.ok ? undefined : [r.error.kind, r.error.feature]).toEqual(["malformed", undefined])
  })
})
