import { describe, expect, it } from "@effect/vitest"
import {
  appendCustomSection,
  customSections,
  encodeCustomSection,
  readModule,
  removeCustomSections,
  type CustomSection
} from "../src/index.js"
import {
  bytes,
  codeSection,
  emptyBody,
  functionSection,
  functype,
  module,
  name,
  section,
  typeSection,
  vec
} from "./helpers/ModuleBuilder.js"

const unwrap = <A>(r: { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: Error }): A => {
  if (!r.ok) throw r.error
  return r.value
}

const payloadOf = (b: Uint8Array, s: CustomSection): Array<number> =>
  Array.from(b.subarray(s.dataOffset, s.dataOffset + s.dataLength))

const v8CustomSections = (b: Uint8Array<ArrayBuffer>, sectionName: string): Array<Array<number>> =>
  WebAssembly.Module.customSections(new WebAssembly.Module(b), sectionName).map((x) => Array.from(new Uint8Array(x)))

/** type, function, export "f", code + custom sections "a", "b", "a" around them. */
const sample = module(
  section(0, name("a"), 1),
  typeSection(functype([], [])),
  section(0, name("b"), 2, 2),
  functionSection(0),
  section(7, vec(bytes(name("f"), 0, 0))),
  codeSection(emptyBody),
  section(0, name("a"), 3, 3, 3)
)

describe("custom sections", () => {
  it("encodeCustomSection: id, size, name, payload", () => {
    expect(Array.from(encodeCustomSection("a", new Uint8Array([1])))).toEqual([0x00, 0x03, 0x01, 0x61, 0x01])
    const big = encodeCustomSection("sig", new Uint8Array(200).fill(7))
    expect(Array.from(big.subarray(0, 4))).toEqual([0x00, (204 & 0x7f) | 0x80, 204 >> 7, 3])
    expect(big.length).toBe(1 + 2 + 204)
    expect(Array.from(encodeCustomSection("é", new Uint8Array()))).toEqual([0x00, 0x03, 0x02, 0xc3, 0xa9])
  })

  it("customSections lists names and byte ranges in file order", () => {
    expect(WebAssembly.validate(sample)).toBe(true)
    const sections = unwrap(customSections(sample))
    expect(sections.map((s) => [s.name, payloadOf(sample, s)])).toEqual([
      ["a", [1]],
      ["b", [2, 2]],
      ["a", [3, 3, 3]]
    ])
    expect(sections[0]).toEqual({ name: "a", offset: 8, length: 5, dataOffset: 12, dataLength: 1 })
    expect(unwrap(readModule(sample)).customSections).toEqual(sections)
  })

  it("appendCustomSection: appended at the end, read back by us and by V8", () => {
    const payload = new Uint8Array(1000).map((_, i) => i & 0xff)
    const out = unwrap(appendCustomSection(sample, "agent-runtime.signature", payload))
    expect(Array.from(out.subarray(0, sample.length))).toEqual(Array.from(sample))
    expect(WebAssembly.validate(out)).toBe(true)
    const last = unwrap(customSections(out)).at(-1)!
    expect(last.name).toBe("agent-runtime.signature")
    expect(last.offset).toBe(sample.length)
    expect(last.offset + last.length).toBe(out.length)
    expect(payloadOf(out, last)).toEqual(Array.from(payload))
    expect(v8CustomSections(out, "agent-runtime.signature")).toEqual([Array.from(payload)])
    expect(unwrap(readModule(out)).exports.map((e) => e.name)).toEqual(["f"])
  })

  it("appendCustomSection: to the empty module, with an empty payload and a Unicode name", () => {
    const out = unwrap(appendCustomSection(module(), "名前", new Uint8Array()))
    expect(WebAssembly.validate(out)).toBe(true)
    expect(unwrap(customSections(out)).map((s) => [s.name, s.dataLength])).toEqual([["名前", 0]])
  })

  it("appendCustomSection refuses malformed input", () => {
    const r = appendCustomSection(bytes(1, 2, 3), "x", new Uint8Array())
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.error.reason).toBe("magic header not detected")
    const truncated = appendCustomSection(sample.subarray(0, sample.length - 1), "x", new Uint8Array())
    expect(truncated.ok).toBe(false)
  })

  it("removeCustomSections removes every section of that name and keeps every other byte", () => {
    const out = unwrap(removeCustomSections(sample, "a"))
    expect(WebAssembly.validate(out)).toBe(true)
    expect(unwrap(customSections(out)).map((s) => s.name)).toEqual(["b"])
    const nonCustom = (b: Uint8Array) =>
      unwrap(readModule(b))
        .sections.filter((s) => s.id !== 0)
        .map((s) => Array.from(b.subarray(s.offset, s.payloadOffset + s.size)))
    expect(nonCustom(out)).toEqual(nonCustom(sample))
    expect(out.length).toBe(sample.length - 5 - 7)
    expect(v8CustomSections(out, "a")).toEqual([])
    expect(v8CustomSections(out, "b")).toEqual([[2, 2]])
  })

  it("removeCustomSections of an absent name returns an equal copy", () => {
    const out = unwrap(removeCustomSections(sample, "nope"))
    expect(out).not.toBe(sample)
    expect(Array.from(out)).toEqual(Array.from(sample))
  })

  it("append then remove round-trips", () => {
    const signed = unwrap(appendCustomSection(sample, "sig", new Uint8Array([9, 9])))
    expect(Array.from(unwrap(removeCustomSections(signed, "sig")))).toEqual(Array.from(sample))
  })
})
