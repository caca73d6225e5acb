import { describe, expect, it } from "@effect/vitest"
import { readReferenceModule, referenceModules } from "@agent-runtime/reference-modules"
import { customSections, functionType, readModule, removeCustomSections, type ModuleInfo } from "../src/index.js"

const ok = (bytes: Uint8Array): ModuleInfo => {
  const r = readModule(bytes)
  if (!r.ok) throw new Error(`expected ok, got ${r.error.message}`)
  return r.value
}

describe("real modules from npm packages", () => {
  for (const ref of referenceModules) {
    describe(ref.name, () => {
      const bytes = ref.read()
      const module = new WebAssembly.Module(bytes)

      it("reads, and agrees with V8 on export and import names and kinds", () => {
        const m = ok(bytes)
        expect(m.exports.map((e) => ({ name: e.name, kind: e.type.kind }))).toEqual(WebAssembly.Module.exports(module))
        expect(m.imports.map((i) => ({ module: i.module, name: i.name, kind: i.type.kind }))).toEqual(
          WebAssembly.Module.imports(module)
        )
        const sections = m.sections
        const end = sections.at(-1)
        expect(end === undefined ? 8 : end.payloadOffset + end.size).toBe(bytes.length)
      })

      it("lists the same custom sections as V8", () => {
        const m = ok(bytes)
        const scanned = customSections(bytes)
        if (!scanned.ok) throw scanned.error
        expect(scanned.value).toEqual(m.customSections)
        for (const s of m.customSections) {
          const v8 = WebAssembly.Module.customSections(module, s.name)
          expect(v8.map((b) => Array.from(new Uint8Array(b)))).toContainEqual(
            Array.from(bytes.subarray(s.dataOffset, s.dataOffset + s.dataLength))
          )
        }
      })

      it("removing custom sections keeps every other byte and a valid module", () => {
        const m = ok(bytes)
        let current = bytes
        for (const name of new Set(m.customSections.map((s) => s.name))) {
          const r = removeCustomSections(current, name)
          if (!r.ok) throw r.error
          current = r.value
        }
        expect(WebAssembly.validate(current)).toBe(true)
        const stripped = ok(current)
        expect(stripped.customSections).toEqual([])
        expect(stripped.exports).toEqual(m.exports)
        const nonCustom = (b: Uint8Array, info: ModuleInfo) =>
          info.sections.filter((s) => s.id !== 0).map((s) => Array.from(b.subarray(s.offset, s.payloadOffset + s.size)))
        expect(nonCustom(current, stripped)).toEqual(nonCustom(bytes, m))
      })
    })
  }

  it("as-sha256: a memory and typed functions", () => {
    const m = ok(readReferenceModule("as-sha256"))
    const memory = m.exports.find((e) => e.type.kind === "memory")
    expect(memory?.type).toMatchObject({ kind: "memory", shared: false, memory64: false })
    const types = Object.fromEntries(
      m.exports.filter((e) => e.type.kind === "function").map((e) => [e.name, functionType(m, e.name)])
    )
    expect(types).toMatchObject({
      init: { params: [], results: [] },
      update: { params: ["i32", "i32"], results: [] },
      final: { params: ["i32"], results: [] },
      digest: { params: ["i32"], results: [] },
      digest64: { params: ["i32", "i32"], results: [] }
    })
    expect(m.imports).toEqual([
      { module: "env", name: "abort", type: { kind: "function", params: ["i32", "i32", "i32", "i32"], results: [] } }
    ])
  })

  it("as-sha256 (SIMD build): v128 code reads", () => {
    const m = ok(readReferenceModule("as-sha256-simd"))
    expect(m.exports.some((e) => e.type.kind === "function")).toBe(true)
  })

  it("sqlite3: imports from env and wasi_snapshot_preview1", () => {
    const m = ok(readReferenceModule("sqlite3"))
    const modules = new Set(m.imports.map((i) => i.module))
    expect(modules).toEqual(new Set(["env", "wasi_snapshot_preview1"]))
    expect(m.imports.find((i) => i.name === "fd_write")?.type).toEqual({
      kind: "function",
      params: ["i32", "i32", "i32", "i32"],
      results: ["i32"]
    })
    expect(functionType(m, "sqlite3_libversion_number")).toEqual({ params: [], results: ["i32"] })
    expect(functionType(m, "sqlite3_open_v2")).toEqual({ params: ["i32", "i32", "i32", "i32"], results: ["i32"] })
  })

  it("brotli (wasm-bindgen): exports a memory", () => {
    const m = ok(readReferenceModule("brotli"))
    expect(m.exports.find((e) => e.name === "memory")?.type.kind).toBe("memory")
  })

  it("web-tree-sitter (Emscripten side module): imports memory and table, dylink.0 section", () => {
    const m = ok(readReferenceModule("web-tree-sitter"))
    const kinds = new Set(m.imports.map((i) => i.type.kind))
    expect(kinds.has("function")).toBe(true)
    expect(kinds.has("global")).toBe(true)
    expect(m.customSections.map((s) => s.name)).toContain("dylink.0")
  })
})
