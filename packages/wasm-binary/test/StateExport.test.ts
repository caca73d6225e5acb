import { describe, expect, it } from "@effect/vitest"
import { readReferenceModule, referenceModules } from "@agent-runtime/reference-modules"
import { createHash } from "node:crypto"
import {
  exportState,
  FUEL_EXPORT,
  globalExportName,
  MEMORY_EXPORT,
  type StateGlobal,
  type UnsnapshottableGlobal
} from "../src/index.js"
import {
  capture,
  fn,
  info,
  instantiate,
  memoryOf,
  pseudoRandomBytes,
  readAgent,
  restore,
  runScript,
  unwrap,
  type Call,
  type Exports
} from "./helpers/Agents.js"
import { wat } from "./helpers/Wat.js"

describe("exportState", () => {
  it("exports internal mutable globals of every number type and the internal memory; exported ones keep their names", async () => {
    const bytes = await wat(`
      (module
        (memory 1)
        (global $c i32 (i32.const 5))
        (global $a (mut i32) (i32.const 1))
        (global $b (mut i64) (i64.const -2))
        (global $f (mut f32) (f32.const 1.5))
        (global $d (mut f64) (f64.const 2.25))
        (global $e (export "visible") (mut i32) (i32.const 9))
        (func (export "bump") (result i32)
          (global.set $a (i32.add (global.get $a) (global.get $c)))
          (global.set $b (i64.sub (global.get $b) (i64.const 1)))
          (i32.store (i32.const 8) (global.get $a))
          (global.get $a))
        (func (export "b") (result i64) (global.get $b))
        (func (export "load") (result i32) (i32.load (i32.const 8))))`)
    const r = unwrap(exportState(bytes))
    expect(r.globals).toEqual<Array<StateGlobal>>([
      { index: 1, name: globalExportName(1), valueType: "i32", added: true, imported: false },
      { index: 2, name: globalExportName(2), valueType: "i64", added: true, imported: false },
      { index: 3, name: globalExportName(3), valueType: "f32", added: true, imported: false },
      { index: 4, name: globalExportName(4), valueType: "f64", added: true, imported: false },
      { index: 5, name: "visible", valueType: "i32", added: false, imported: false }
    ])
    expect(r.memoryExport).toBe(MEMORY_EXPORT)
    expect(r.unsnapshottable).toEqual([])
    expect(info(r.bytes).exports.map((e) => e.name)).toEqual([
      "visible",
      "bump",
      "b",
      "load",
      "agent-runtime:global:1",
      "agent-runtime:global:2",
      "agent-runtime:global:3",
      "agent-runtime:global:4",
      MEMORY_EXPORT
    ])

    const exports = instantiate(r.bytes)
    const g = (i: number) => exports[globalExportName(i)] as WebAssembly.Global
    expect([g(1).value, g(2).value, g(3).value, g(4).value]).toEqual([1, -2n, 1.5, 2.25])
    expect(fn(exports, "bump")()).toBe(6)
    expect([g(1).value, g(2).value]).toEqual([6, -3n])
    // The exports are the guest's state itself: writes are seen by the guest.
    g(1).value = 100
    g(2).value = 7n
    expect(fn(exports, "bump")()).toBe(105)
    expect(fn(exports, "b")()).toBe(6n)
    expect(new DataView(memoryOf(exports, MEMORY_EXPORT).buffer).getInt32(8, true)).toBe(105)
    expect(() => (exports["visible"] as WebAssembly.Global).value).not.toThrow()
  })

  it("uses the module's own memory export and adds nothing when all state is already visible", async () => {
    const bytes = await wat(
      `(module (memory (export "mem") 1) (global (export "g") (mut i32) (i32.const 0)) (global i32 (i32.const 1)))`
    )
    const r = unwrap(exportState(bytes))
    expect(r.memoryExport).toBe("mem")
    expect(r.globals).toEqual([{ index: 0, name: "g", valueType: "i32", added: false, imported: false }])
    expect(Array.from(r.bytes)).toEqual(Array.from(bytes))
  })

  it("creates an export section at its canonical place when the module has none", async () => {
    const bytes = await wat(`
      (module
        (memory 1)
        (global $g (mut i32) (i32.const 3))
        (func $start (global.set $g (i32.const 4)))
        (start $start)
        (data (i32.const 0) "hi"))`)
    expect(info(bytes).exports).toEqual([])
    const r = unwrap(exportState(bytes))
    const ids = info(r.bytes).sections.map((s) => s.id)
    expect(ids.indexOf(7)).toBe(ids.indexOf(6) + 1)
    expect(ids.indexOf(8)).toBe(ids.indexOf(7) + 1)
    const exports = instantiate(r.bytes)
    expect((exports[globalExportName(0)] as WebAssembly.Global).value).toBe(4)
    expect(Array.from(new Uint8Array(memoryOf(exports, MEMORY_EXPORT).buffer, 0, 2))).toEqual([0x68, 0x69])
  })

  it("re-exports imported mutable globals and an imported memory", async () => {
    const bytes = await wat(`
      (module
        (import "env" "sp" (global $sp (mut i32)))
        (import "env" "k" (global $k i32))
        (import "env" "memory" (memory 1))
        (global $own (mut i64) (i64.const 0))
        (func (export "push") (global.set $sp (i32.sub (global.get $sp) (i32.const 16)))))`)
    const r = unwrap(exportState(bytes))
    expect(r.globals).toEqual([
      { index: 0, name: globalExportName(0), valueType: "i32", added: true, imported: true },
      { index: 2, name: globalExportName(2), valueType: "i64", added: true, imported: false }
    ])
    expect(r.memoryExport).toBe(MEMORY_EXPORT)
    const sp = new WebAssembly.Global({ value: "i32", mutable: true }, 1024)
    const memory = new WebAssembly.Memory({ initial: 1 })
    const exports = instantiate(r.bytes, { env: { sp, k: 1, memory } })
    fn(exports, "push")()
    expect((exports[globalExportName(0)] as WebAssembly.Global).value).toBe(1008)
    expect(exports[MEMORY_EXPORT]).toBe(memory)
  })

  it("reports v128 and reference mutable globals as unsnapshottable (no export added for them)", async () => {
    const bytes = await wat(`
      (module
        (global $v (mut v128) (v128.const i32x4 1 2 3 4))
        (global $f (mut funcref) (ref.null func))
        (global $x (export "x") (mut externref) (ref.null extern))
        (global $i (mut i32) (i32.const 0)))`)
    const r = unwrap(exportState(bytes))
    expect(r.unsnapshottable).toEqual<Array<UnsnapshottableGlobal>>([
      { index: 0, valueType: "v128", name: undefined, reason: "v128" },
      { index: 1, valueType: "funcref", name: undefined, reason: "reference" },
      { index: 2, valueType: "externref", name: "x", reason: "reference" }
    ])
    expect(r.globals.map((g) => g.name)).toEqual([globalExportName(3)])
    expect(info(r.bytes).exports.map((e) => e.name)).toEqual(["x", globalExportName(3)])
    instantiate(r.bytes)

    const simd = unwrap(exportState(readReferenceModule("as-sha256-simd")))
    expect(simd.unsnapshottable.length).toBe(19)
    expect(simd.unsnapshottable.every((g) => g.valueType === "v128")).toBe(true)
    expect(simd.globals.length).toBeGreaterThan(30)
  })

  it("refuses a module that already exports a reserved name", async () => {
    for (const name of [MEMORY_EXPORT, FUEL_EXPORT, "agent-runtime:anything"]) {
      const bytes = await wat(`(module (global (export "${name}") (mut i32) (i32.const 0)))`)
      const r = exportState(bytes)
      expect(r.ok ? "ok" : r.error.reason).toBe(
        `module already exports the reserved name "${name}" (prefix "agent-runtime:")`
      )
    }
    const bad = exportState(new Uint8Array([0, 0x61, 0x73]))
    expect(bad.ok).toBe(false)
  })

  it("keeps every fixture agent and reference module valid with its interface as a prefix", () => {
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
      const r = unwrap(exportState(bytes))
      expect(WebAssembly.validate(r.bytes), name).toBe(true)
      const a = WebAssembly.Module.exports(new WebAssembly.Module(bytes))
      const b = WebAssembly.Module.exports(new WebAssembly.Module(r.bytes))
      expect(b.slice(0, a.length), name).toEqual(a)
      const hidden = b.slice(a.length)
      expect(hidden.map((e) => e.name).sort(), name).toEqual(
        [
          ...r.globals.filter((g) => g.added).map((g) => g.name),
          ...(r.memoryExport === MEMORY_EXPORT ? [MEMORY_EXPORT] : [])
        ].sort()
      )
      // Every mutable global is either readable through an export or reported.
      const mutable = [
        ...before.imports
          .filter((i) => i.type.kind === "global")
          .flatMap((i, n) => (i.type.kind === "global" && i.type.mutable ? [n] : [])),
        ...before.globals.filter((g) => g.type.mutable).map((g) => g.index)
      ]
      expect(
        [...r.globals.map((g) => g.index), ...r.unsnapshottable.map((g) => g.index)].sort((x, y) => x - y),
        name
      ).toEqual(mutable)
      expect(r.memoryExport === undefined, name).toBe(
        before.memories.length === 0 && !before.imports.some((i) => i.type.kind === "memory")
      )
      // Only the export section changed.
      const others = (m: Uint8Array) =>
        info(m)
          .sections.filter((s) => s.id !== 7)
          .map((s) => Array.from(m.subarray(s.payloadOffset, s.payloadOffset + s.size)))
      expect(others(r.bytes), name).toEqual(others(bytes))
    }
  })
})

/** Runs the same script on the original and the rewritten module, expecting identical results. */
const differential = (
  bytes: Uint8Array<ArrayBuffer>,
  script: ReadonlyArray<Call>,
  imports: WebAssembly.Imports = {}
) => {
  const r = unwrap(exportState(bytes))
  const a = runScript(instantiate(bytes, imports), script)
  const b = runScript(instantiate(r.bytes, imports), script)
  expect(b).toEqual(a)
  return a
}

describe("exportState preserves behaviour (differential)", () => {
  it("fixture agents give the same results rewritten and not", () => {
    expect(
      differential(readAgent("counter"), [
        ["increment"],
        ["add", 41],
        ["get"],
        ["add_i64", 2n ** 62n, 2n ** 62n],
        ["reset"],
        ["get"]
      ])
    ).toEqual([1, 42, 42, -(2n ** 63n), undefined, 0])
    expect(
      differential(readAgent("lifecycle"), [
        ["state"],
        ["_initialize"],
        ["bump"],
        ["break_health"],
        ["_health_check"],
        ["_recover"],
        ["_health_check"],
        ["_cleanup"],
        ["initialized"],
        ["cleanups_count"]
      ])
    ).toEqual([0, undefined, 101, undefined, 2, 0, 0, undefined, 0, 1])
    const multi = differential(readAgent("multi"), [
      ["swap", 1, 2n],
      ["divmod", 7, 2],
      ["divmod", 1, 0],
      ["add_f32", 0.1, 0.2],
      ["all_types"]
    ])
    expect(multi[0]).toEqual([2n, 1])
    expect(multi[2]).toMatch(/^trap: RuntimeError/)
    expect(
      differential(readAgent("no-memory"), [
        ["accumulate", 5],
        ["accumulate", 7],
        ["factorial", 20n],
        ["add", 2, 3]
      ])
    ).toEqual([5, 12, 2432902008176640000n, 5])
    expect(
      differential(readAgent("grower"), [
        ["grow", 2],
        ["grow", 2],
        ["size"],
        ["poke", 100, 42],
        ["peek", 100],
        ["peek", 4 * 65_536]
      ]).slice(0, 5)
    ).toEqual([1, -1, 3, undefined, 42])
    expect(
      differential(readAgent("leaky"), [["leak", 100], ["leak", 200], ["leaked"], ["calls_made"], ["pages"]])
    ).toEqual([100, 300, 300, 2, 7])
    expect(differential(readAgent("looper"), [["spin_n", 1000], ["spin_n", -1], ["iterations"]])).toEqual([
      1000,
      0,
      1000n
    ])
  })

  it("as-sha256 (and its SIMD build) hash real inputs like node:crypto, one-shot and streaming", () => {
    for (const name of ["as-sha256", "as-sha256-simd"]) {
      const bytes = readReferenceModule(name)
      const rewritten = unwrap(exportState(bytes)).bytes
      for (const module of [bytes, rewritten]) {
        const exports = instantiate(module, { env: { abort: () => {} } })
        for (const [seed, length] of [
          [1, 0],
          [2, 1],
          [3, 55],
          [4, 64],
          [5, 1000],
          [6, 100_000]
        ] as const) {
          const data = pseudoRandomBytes(seed, length)
          expect(sha256(exports, data), `${name} ${length}`).toBe(createHash("sha256").update(data).digest("hex"))
        }
      }
    }
  })
})

/** Streams `data` through as-sha256's init / update / final. */
const sha256 = (exports: Exports, data: Uint8Array, stop?: number): string => {
  fn(exports, "init")()
  update(exports, data.subarray(0, stop ?? data.length))
  return stop === undefined ? final(exports) : ""
}

const update = (exports: Exports, data: Uint8Array): void => {
  const inputLength = (exports["INPUT_LENGTH"] as WebAssembly.Global).value as number
  const input = (exports["input"] as WebAssembly.Global).value as number
  for (let i = 0; i < data.length; i += inputLength) {
    const chunk = data.subarray(i, i + inputLength)
    new Uint8Array(memoryOf(exports, "memory").buffer).set(chunk, input)
    fn(exports, "update")(input, chunk.length)
  }
}

const final = (exports: Exports): string => {
  const output = (exports["output"] as WebAssembly.Global).value as number
  fn(exports, "final")(output)
  return Buffer.from(new Uint8Array(memoryOf(exports, "memory").buffer, output, 32)).toString("hex")
}

describe("a snapshot of as-sha256 mid-stream", () => {
  it("restored into a fresh instance finishes the hash like node:crypto; without the hidden globals it does not", () => {
    const bytes = readReferenceModule("as-sha256")
    const r = unwrap(exportState(bytes))
    const names = r.globals.map((g) => g.name)
    // as-sha256's update takes whole 64-byte blocks until the last call (its JS wrapper feeds 512-byte chunks).
    const data = pseudoRandomBytes(42, 50_000)
    const expected = createHash("sha256").update(data).digest("hex")

    const first = instantiate(r.bytes, { env: { abort: () => {} } })
    sha256(first, data, 20_480)
    const state = capture(first, r.memoryExport, names)
    expect(state.globals.size).toBe(r.globals.length)

    const fresh = instantiate(r.bytes, { env: { abort: () => {} } })
    restore(fresh, r.memoryExport, state)
    update(fresh, data.subarray(20_480))
    expect(final(fresh)).toBe(expected)

    // The original continues identically.
    update(first, data.subarray(20_480))
    expect(final(first)).toBe(expected)

    // Memory alone is not the whole state: the hash state lives in internal globals.
    const memoryOnly = instantiate(r.bytes, { env: { abort: () => {} } })
    restore(memoryOnly, r.memoryExport, { memory: state.memory, globals: new Map() })
    update(memoryOnly, data.subarray(20_480))
    expect(final(memoryOnly)).not.toBe(expected)
  })
})
