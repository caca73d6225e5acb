/**
 * The instruction decoder against three independent oracles:
 * - wabt: one module per feature, assembled from text that uses every opcode
 *   of the feature; the decoder must read back the same mnemonics in the same
 *   order (so wabt's opcode numbers agree with our table) and end each body
 *   exactly at its last byte (so the immediates' shapes agree);
 * - V8 (Node 20): every opcode our table lacks is one V8 rejects as an
 *   invalid/disabled opcode, and every opcode it has V8 knows (completeness);
 * - real modules (npm reference modules, fixture agents): every body decodes,
 *   and for the small ones the mnemonics equal wabt's disassembly.
 */
import { describe, expect, it } from "@effect/vitest"
import { readReferenceModule, referenceModules } from "@agent-runtime/reference-modules"
import {
  decodeCodeSection,
  decodeFunctionBody,
  type FunctionBody,
  knownOpcodes,
  opcodeName,
  readModule
} from "../src/index.js"
import {
  AGENTS,
  bodies,
  FEATURES,
  featureModule,
  mnemonics,
  readAgentFixture as readAgent,
  wabtMnemonics
} from "./helpers/OpcodeModules.js"
import { wat } from "./helpers/Wat.js"

describe("decoding every opcode of every feature Node 20 compiles (assembled by wabt)", () => {
  const seen = new Set<number>()
  for (const feature of FEATURES) {
    it(feature.name, async () => {
      const { bytes, expected } = await featureModule(feature)
      expect(WebAssembly.validate(bytes)).toBe(true) // V8 (Node 20) compiles every instruction used
      const all = bodies(bytes)
      expect(all).toHaveLength(2)
      const body = all[1] as FunctionBody
      expect(mnemonics(body)).toEqual(expected)
      expect(body.instructions.at(-1)?.name).toBe("end")
      expect(body.instructions.at(-1)?.end).toBe(body.end)
      // instructions tile the expression with no gap
      let at = body.codeOffset
      for (const i of body.instructions) {
        expect(i.offset).toBe(at)
        at = i.end
      }
      for (const i of body.instructions) seen.add(i.opcode)
      expect(await wabtMnemonics(bytes)).toEqual([[], expected])
    })
  }
  it("the feature modules together use every opcode of the table", async () => {
    for (const feature of FEATURES)
      for (const i of (bodies((await featureModule(feature)).bytes)[1] as FunctionBody).instructions) seen.add(i.opcode)
    expect(
      knownOpcodes()
        .filter((op) => !seen.has(op))
        .map((op) => opcodeName(op))
    ).toEqual([])
  })
})

describe("the table agrees with V8 (Node 20) on which opcodes exist", () => {
  /** A module whose one function is `unreachable; <raw>; end`. */
  const probe = (raw: ReadonlyArray<number>): Uint8Array<ArrayBuffer> => {
    const code = [0x00, 0x00, ...raw, 0x0b] // no locals, unreachable, raw
    return new Uint8Array([
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...[0x01, 0x04, 0x01, 0x60, 0x00, 0x00], // type () -> ()
      ...[0x03, 0x02, 0x01, 0x00], // one function
      ...[0x05, 0x04, 0x01, 0x03, 0x01, 0x01], // shared memory 1..1
      ...[0x0a, code.length + 2, 0x01, code.length, ...code]
    ])
  }
  const v8Unknown = (raw: ReadonlyArray<number>): boolean => {
    try {
      new WebAssembly.Module(probe(raw))
      return false
    } catch (e) {
      const message = e instanceof Error ? e.message : String(e)
      return /invalid opcode|invalid (simd|atomic|numeric) opcode|simd opcode not available/i.test(message)
    }
  }
  const leb = (n: number): Array<number> => (n < 0x80 ? [n] : [(n & 0x7f) | 0x80, n >> 7])

  it("one-byte opcodes", () => {
    const disagree: Array<string> = []
    for (let b = 0; b < 0x100; b++) {
      if (b === 0xfc || b === 0xfd || b === 0xfe) continue
      const ours = opcodeName(b) !== undefined
      if (ours === v8Unknown([b])) disagree.push(`0x${b.toString(16)}: ours ${ours}`)
    }
    expect(disagree).toEqual([])
  })

  for (const [prefix, limit] of [
    [0xfc, 0x40],
    [0xfd, 0x140],
    [0xfe, 0x80]
  ] as const) {
    it(`0x${prefix.toString(16)}-prefixed opcodes 0..0x${limit.toString(16)}`, () => {
      const disagree: Array<string> = []
      for (let sub = 0; sub < limit; sub++) {
        const ours = opcodeName(prefix * 0x10000 + sub) !== undefined
        if (ours === v8Unknown([prefix, ...leb(sub)])) disagree.push(`0x${sub.toString(16)}: ours ${ours}`)
      }
      expect(disagree).toEqual([])
    })
  }
})

describe("real modules", () => {
  for (const ref of referenceModules) {
    it(`${ref.name}: every function body decodes to its end`, () => {
      const bytes = ref.read()
      const info = readModule(bytes)
      if (!info.ok) throw info.error
      const all = bodies(bytes)
      expect(all.length).toBe(info.value.functions.length)
      for (const b of all) expect(b.instructions.at(-1)?.end).toBe(b.end)
      expect(all.reduce((n, b) => n + b.instructions.length, 0)).toBeGreaterThan(all.length)
    })
  }

  for (const name of ["as-sha256", "as-sha256-simd", "zstd"] as const) {
    it(`${name}: mnemonics equal wabt's disassembly`, async () => {
      const bytes = readReferenceModule(name)
      expect(bodies(bytes).map(mnemonics)).toEqual(await wabtMnemonics(bytes))
    })
  }

  for (const name of AGENTS) {
    it(`agent ${name}: every body decodes, mnemonics equal wabt's`, async () => {
      const bytes = readAgent(name)
      expect(bodies(bytes).map(mnemonics)).toEqual(await wabtMnemonics(bytes))
    })
  }
})

describe("malformed bodies are typed errors with the offset", () => {
  const fails = (body: ReadonlyArray<number>, reason: RegExp, offset: number) => {
    const r = decodeFunctionBody(new Uint8Array(body))
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.error._tag).toBe("WasmBinaryError")
    expect(r.error.reason).toMatch(reason)
    expect(r.error.offset).toBe(offset)
  }

  it("an unknown one-byte opcode", () => fails([0x00, 0x41, 0x01, 0x27, 0x0b], /illegal opcode 0x27/, 3))
  it("an unknown prefixed opcode", () => fails([0x00, 0x01, 0xfc, 0x12, 0x0b], /illegal opcode 0xfc 0x12/, 2))
  it("relaxed SIMD (not in Node 20)", () => fails([0x00, 0xfd, 0x85, 0x02, 0x0b], /relaxed SIMD/, 1))
  it("GC / typed function references (not in Node 20)", () => fails([0x00, 0xfb, 0x00, 0x0b], /illegal opcode 0xfb/, 1))
  it("a truncated immediate", () => fails([0x00, 0x41, 0x80], /unexpected end/, 3))
  it("a truncated v128.const", () => fails([0x00, 0xfd, 0x0c, 1, 2, 3], /unexpected end/, 6))
  it("a body without its final end", () => fails([0x00, 0x02, 0x40, 0x0b], /END opcode expected/, 4))
  it("bytes after the final end", () => fails([0x00, 0x0b, 0x01], /section size mismatch/, 2))
  it("an over-long LEB128 index", () =>
    fails([0x00, 0x20, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00, 0x0b], /integer representation too long/, 2))
  it("a negative type-index block type", () => fails([0x00, 0x02, 0x60, 0x0b, 0x0b], /malformed block type/, 2))
  it("a bad local type", () => fails([0x01, 0x01, 0x55, 0x0b], /malformed value type/, 2))
  it("a delegate outside try", () => fails([0x00, 0x18, 0x00, 0x0b], /delegate/, 1))
  it("offsets count from the start of the buffer", () => {
    const r = decodeFunctionBody(new Uint8Array([0xff, 0xff, 0x00, 0x27, 0x0b]), 2, 5)
    expect(r.ok ? -1 : r.error.offset).toBe(3)
  })
  it("a module with a malformed code section", async () => {
    const bytes = await wat(`(module (func (result i32) (i32.const 1)))`)
    const copy = bytes.slice()
    const at = copy.lastIndexOf(0x41)
    copy[at] = 0x27
    const r = decodeCodeSection(copy)
    expect(r.ok ? -1 : r.error.offset).toBe(at)
  })
})
