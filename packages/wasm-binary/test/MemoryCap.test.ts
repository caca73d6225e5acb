import { describe, expect, it } from "@effect/vitest"
import { readReferenceModule, referenceModules } from "@agent-runtime/reference-modules"
import { capMemory, customSections, MAX_MEMORY32_PAGES, type MemoryCapInfo, readModule } from "../src/index.js"
import { capMemoryOf } from "../src/MemoryCap.js"
import { fn, info, instantiate, memoryOf, readAgent, runScript, unwrap, type Call } from "./helpers/Agents.js"
import { wat } from "./helpers/Wat.js"

const PAGE = 65_536

const growable = (memory: string) => `
  (module
    ${memory}
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "size") (result i32) (memory.size)))`

/** Every section except the memory section, as bytes. */
const otherSections = (bytes: Uint8Array): Array<Array<number>> =>
  info(bytes)
    .sections.filter((s) => s.id !== 5)
    .map((s) => Array.from(bytes.subarray(s.offset, s.payloadOffset + s.size)))

describe("capMemory", () => {
  it("gives a memory without a maximum the cap as maximum; memory.grow past it returns -1 in the guest", async () => {
    const bytes = await wat(growable(`(memory (export "memory") 1)`))
    const { bytes: capped, memory } = unwrap(capMemory(bytes, 3))
    expect(memory).toEqual<MemoryCapInfo>({
      kind: "defined",
      minPages: 1,
      maxPages: 3,
      declaredMaxPages: undefined,
      shared: false,
      memory64: false,
      rewritten: true
    })
    expect(info(capped).memories).toEqual([{ minPages: 1, maxPages: 3, shared: false, memory64: false }])
    expect(otherSections(capped)).toEqual(otherSections(bytes))

    const original = instantiate(bytes)
    expect(runScript(original, [["grow", 2], ["grow", 1], ["size"]])).toEqual([1, 3, 4])

    const exports = instantiate(capped)
    expect(runScript(exports, [["grow", 2], ["grow", 1], ["grow", 100], ["size"]])).toEqual([1, -1, -1, 3])
    const mem = memoryOf(exports, "memory")
    expect(() => mem.grow(1)).toThrow(RangeError)
    expect(mem.buffer.byteLength).toBe(3 * PAGE)
  })

  it("lowers a maximum above the cap, and keeps one already within it (bytes unchanged)", async () => {
    const above = await wat(growable(`(memory 2 100)`))
    const r1 = unwrap(capMemory(above, 5))
    expect(r1.memory).toMatchObject({
      kind: "defined",
      minPages: 2,
      maxPages: 5,
      declaredMaxPages: 100,
      rewritten: true
    })
    expect(info(r1.bytes).memories[0]).toMatchObject({ minPages: 2, maxPages: 5 })
    expect(runScript(instantiate(r1.bytes), [["grow", 3], ["grow", 1], ["size"]])).toEqual([2, -1, 5])

    const within = await wat(growable(`(memory 1 4)`))
    const r2 = unwrap(capMemory(within, 10))
    expect(r2.memory).toMatchObject({ kind: "defined", maxPages: 4, declaredMaxPages: 4, rewritten: false })
    expect(Array.from(r2.bytes)).toEqual(Array.from(within))
    const r3 = unwrap(capMemory(within, 4))
    expect(r3.memory.rewritten).toBe(false)
  })

  it("keeps a shared memory shared (flag 0x03) with the cap as maximum", async () => {
    const bytes = await wat(growable(`(memory (export "memory") 1 100 shared)`))
    const { bytes: capped, memory } = unwrap(capMemory(bytes, 8))
    expect(memory).toMatchObject({ kind: "defined", minPages: 1, maxPages: 8, shared: true, rewritten: true })
    expect(info(capped).memories).toEqual([{ minPages: 1, maxPages: 8, shared: true, memory64: false }])
    const section = info(capped).sections.find((s) => s.id === 5)!
    expect(Array.from(capped.subarray(section.payloadOffset, section.payloadOffset + section.size))).toEqual([
      1, 0x03, 1, 8
    ])
    const exports = instantiate(capped)
    expect(memoryOf(exports, "memory").buffer).toBeInstanceOf(SharedArrayBuffer)
    expect(runScript(exports, [["grow", 7], ["grow", 1], ["size"]])).toEqual([1, -1, 8])
  })

  it("refuses an initial size above the cap with a clear reason at the memory type", async () => {
    const bytes = await wat(growable(`(memory 10)`))
    const r = capMemory(bytes, 4)
    expect(r.ok).toBe(false)
    if (r.ok) return
    expect(r.error.reason).toBe("initial memory 10 pages exceeds the cap 4 pages")
    const section = info(bytes).sections.find((s) => s.id === 5)!
    expect(r.error.offset).toBe(section.payloadOffset + 1)
    expect(bytes[r.error.offset]).toBe(0x00) // the limits flags byte
    // An initial size equal to the cap is fine.
    expect(unwrap(capMemory(bytes, 10)).memory.maxPages).toBe(10)
  })

  it("reports an imported memory (bytes unchanged) with the maximum the host must give it", async () => {
    const bytes = await wat(`
      (module
        (import "env" "memory" (memory 2))
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0))))`)
    const { bytes: out, memory } = unwrap(capMemory(bytes, 6))
    expect(Array.from(out)).toEqual(Array.from(bytes))
    expect(memory).toEqual<MemoryCapInfo>({
      kind: "imported",
      minPages: 2,
      maxPages: 6,
      declaredMaxPages: undefined,
      shared: false,
      memory64: false,
      rewritten: false
    })
    // The host creates the memory as reported: the guest cannot grow past the cap.
    const host = new WebAssembly.Memory({ initial: memory.minPages, maximum: memory.maxPages! })
    const exports = instantiate(out, { env: { memory: host } })
    expect(
      runScript(exports, [
        ["grow", 4],
        ["grow", 1]
      ])
    ).toEqual([2, -1])
    expect(host.buffer.byteLength).toBe(6 * PAGE)

    const declared = await wat(`(module (import "env" "memory" (memory 1 4)))`)
    expect(unwrap(capMemory(declared, 6)).memory).toMatchObject({ kind: "imported", maxPages: 4, declaredMaxPages: 4 })
    const tooBig = capMemory(await wat(`(module (import "env" "memory" (memory 10)))`), 4)
    expect(tooBig.ok ? "ok" : tooBig.error.reason).toBe("initial memory 10 pages exceeds the cap 4 pages")
  })

  it("leaves a module without memory unchanged", () => {
    const bytes = readAgent("multi")
    const r = unwrap(capMemory(bytes, 1))
    expect(r.memory).toEqual<MemoryCapInfo>({
      kind: "none",
      minPages: 0,
      maxPages: undefined,
      declaredMaxPages: undefined,
      shared: false,
      memory64: false,
      rewritten: false
    })
    expect(Array.from(r.bytes)).toEqual(Array.from(bytes))
  })

  it("rejects an invalid cap and clamps one above 4 GiB to 65 536 pages", async () => {
    const bytes = await wat(growable(`(memory 1)`))
    for (const cap of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const r = capMemory(bytes, cap)
      expect(r.ok ? "ok" : r.error.reason).toMatch(/^invalid memory cap/)
    }
    const r = unwrap(capMemory(bytes, 1_000_000))
    expect(r.memory.maxPages).toBe(MAX_MEMORY32_PAGES)
    expect(info(r.bytes).memories[0]?.maxPages).toBe(MAX_MEMORY32_PAGES)
    expect(WebAssembly.validate(r.bytes)).toBe(true)
  })

  it("a cap of 0 pages: a 0-page memory can never grow", () => {
    const { bytes, memory } = unwrap(capMemory(readAgent("counter"), 0))
    expect(memory).toMatchObject({ minPages: 0, maxPages: 0, rewritten: true })
    const exports = instantiate(bytes)
    expect(runScript(exports, [["increment"], ["increment"], ["get"]])).toEqual([1, 2, 2])
    expect(() => memoryOf(exports, "memory").grow(1)).toThrow(RangeError)
  })

  it("rewrites memory64 limits as u64 (flag 0x04 → 0x05); the public capMemory refuses memory64 as unsupported on Node 20", async () => {
    const bytes = await wat(`(module (memory i64 1))`)
    const read = readModule(bytes, { memory64: true })
    if (!read.ok) throw new Error(read.error.message)
    const r = unwrap(capMemoryOf(bytes, read.value, 3))
    expect(r.memory).toMatchObject({ kind: "defined", memory64: true, maxPages: 3, rewritten: true })
    const capped = readModule(r.bytes, { memory64: true })
    expect(capped.ok && capped.value.memories).toEqual([{ minPages: 1, maxPages: 3, shared: false, memory64: true }])
    const refused = capMemory(bytes, 3)
    expect(refused.ok ? "ok" : [refused.error.kind, refused.error.feature]).toEqual(["unsupported", "memory64"])
  })

  it("refuses more than one memory, and malformed modules", async () => {
    const two = await wat(`(module (import "env" "m" (memory 1)) (memory 1))`)
    const r = capMemory(two, 4)
    // The reader refuses a second memory first (multi-memory is not in Node 20); the cap's own check stays behind it.
    expect(r.ok ? "ok" : [r.error.kind, r.error.feature]).toEqual(["unsupported", "multi-memory"])
    // The cap's own check, given a module description with two memories:
    const one = await wat(`(module (memory 1))`)
    const oneInfo = info(one)
    const twoInfo = { ...oneInfo, memories: [...oneInfo.memories, ...oneInfo.memories] }
    const own = capMemoryOf(one, twoInfo, 4)
    expect(own.ok ? "ok" : own.error.reason).toBe("the memory cap supports one memory, the module has 2")
    const bad = capMemory(new Uint8Array([0, 0x61, 0x73, 0x6d, 2, 0, 0, 0]), 4)
    expect(bad.ok ? "ok" : bad.error.reason).toBe("unknown binary version")
  })

  it("grower agent: a cap below its declared maximum of 4 pages", () => {
    const bytes = readAgent("grower")
    const script: Array<Call> = [["grow", 1], ["grow", 1], ["grow", 1], ["size"], ["poke", 65_536, 7], ["peek", 65_536]]
    expect(runScript(instantiate(bytes), script)).toEqual([1, 2, 3, 4, undefined, 7])
    const { bytes: capped, memory } = unwrap(capMemory(bytes, 2))
    expect(memory).toMatchObject({ minPages: 1, maxPages: 2, declaredMaxPages: 4 })
    expect(runScript(instantiate(capped), script)).toEqual([1, -1, -1, 2, undefined, 7])
  })

  it("leaky agent: its leak stops at the cap (a trap) and the host never allocates past it", () => {
    const bytes = readAgent("leaky")
    const cap = 4
    const { bytes: capped } = unwrap(capMemory(bytes, cap))
    const original = instantiate(bytes)
    const exports = instantiate(capped)
    const memory = memoryOf(exports, "memory")
    const results: Array<unknown> = []
    let trapped: unknown
    for (let i = 0; i < 64 && trapped === undefined; i++) {
      try {
        results.push(fn(exports, "leak")(16))
      } catch (e) {
        trapped = e
      }
      expect(memory.buffer.byteLength).toBeLessThanOrEqual(cap * PAGE)
    }
    expect(trapped).toBeInstanceOf(WebAssembly.RuntimeError)
    expect(String(trapped)).toMatch(/unreachable/)
    // Until the cap was hit, the capped agent behaved like the original.
    expect(results.length).toBeGreaterThan(4)
    expect(results).toEqual(results.map(() => fn(original, "leak")(16)))
    expect(fn(exports, "pages")()).toBe(cap)
    expect(fn(exports, "leaked")()).toBe(results.at(-1))
    // The uncapped original keeps growing past the cap.
    for (let i = 0; i < 16; i++) fn(original, "leak")(16)
    expect(fn(original, "pages")()).toBeGreaterThan(cap)
  })

  it("keeps every fixture agent and reference module valid, with the same interface and all other sections", () => {
    const modules: Array<[string, Uint8Array<ArrayBuffer>]> = [
      ...[
        "counter",
        "text",
        "leaky",
        "lifecycle",
        "multi",
        "no-memory",
        "grower",
        "looper",
        "host-caller",
        "flaky",
        "trapper"
      ].map((n): [string, Uint8Array<ArrayBuffer>] => [n, readAgent(n, true)]),
      ...referenceModules.map((m): [string, Uint8Array<ArrayBuffer>] => [m.name, m.read()])
    ]
    for (const [name, bytes] of modules) {
      const before = info(bytes)
      const min = before.memories[0]?.minPages ?? 0
      const r = unwrap(capMemory(bytes, Math.max(min, 1024)))
      expect(WebAssembly.validate(r.bytes), name).toBe(true)
      const a = new WebAssembly.Module(bytes)
      const b = new WebAssembly.Module(r.bytes)
      expect(WebAssembly.Module.exports(b), name).toEqual(WebAssembly.Module.exports(a))
      expect(WebAssembly.Module.imports(b), name).toEqual(WebAssembly.Module.imports(a))
      expect(otherSections(r.bytes), name).toEqual(otherSections(bytes))
      expect(
        unwrap(customSections(r.bytes)).map((s) => s.name),
        name
      ).toEqual(before.customSections.map((s) => s.name))
      if (r.memory.kind === "defined") expect(info(r.bytes).memories[0]?.maxPages, name).toBe(r.memory.maxPages)
    }
  })

  it("as-sha256 capped at its initial size still hashes like node:crypto", async () => {
    const { createHash } = await import("node:crypto")
    const bytes = readReferenceModule("as-sha256")
    const { bytes: capped } = unwrap(capMemory(bytes, info(bytes).memories[0]!.minPages))
    const exports = instantiate(capped, { env: { abort: () => {} } })
    const input = (exports["input"] as WebAssembly.Global).value as number
    const output = (exports["output"] as WebAssembly.Global).value as number
    const data = new TextEncoder().encode("The quick brown fox jumps over the lazy dog")
    new Uint8Array(memoryOf(exports, "memory").buffer).set(data, input)
    fn(exports, "digest")(data.length)
    const digest = new Uint8Array(memoryOf(exports, "memory").buffer, output, 32)
    expect(Buffer.from(digest).toString("hex")).toBe(createHash("sha256").update(data).digest("hex"))
  })
})
