import { describe, expect, it } from "@effect/vitest"
import { readReferenceModule, referenceModules } from "@agent-runtime/reference-modules"
import { createHash } from "node:crypto"
import { FUEL_EXPORT, globalExportName, MEMORY_EXPORT, readModule, rewriteModule } from "../src/index.js"
import {
  fn,
  info,
  instantiate,
  memoryOf,
  pseudoRandomBytes,
  readAgent,
  runScript,
  unwrap,
  type Call,
  type Exports
} from "./helpers/Agents.js"
import { wat } from "./helpers/Wat.js"

/** Hidden export names of a module, in export order. */
const hiddenExports = (bytes: Uint8Array) =>
  info(bytes)
    .exports.map((e) => e.name)
    .filter((n) => n.startsWith("agent-runtime:"))

const setFuel = (exports: Exports, fuel: bigint) => ((exports[FUEL_EXPORT] as WebAssembly.Global).value = fuel)

describe("rewriteModule", () => {
  it("given `validated` (the caller validated the input), writes the same bytes and facts as the checked rewrite", () => {
    for (const ref of referenceModules) {
      const bytes = readReferenceModule(ref.name)
      const validated = unwrap(readModule(bytes, { bodies: false }))
      for (const options of [
        { fuel: true },
        { maxMemoryPages: 4096 },
        { maxMemoryPages: 4096, fuel: true, exportState: true }
      ]) {
        const checked = rewriteModule(bytes, options)
        const trusted = rewriteModule(bytes, { ...options, validated })
        expect(trusted.ok, `${ref.name} ${JSON.stringify(options)}`).toBe(checked.ok)
        if (checked.ok && trusted.ok) {
          expect(createHash("sha256").update(trusted.value.bytes).digest("hex"), ref.name).toBe(
            createHash("sha256").update(checked.value.bytes).digest("hex")
          )
          const { bytes: _a, ...facts } = trusted.value
          const { bytes: _b, ...expected } = checked.value
          expect(facts).toEqual(expected)
        } else if (!checked.ok && !trusted.ok) {
          expect(trusted.error.reason).toBe(checked.error.reason)
        }
      }
    }
  })

  it("with no options returns the module unchanged", () => {
    const bytes = readAgent("text")
    const r = unwrap(rewriteModule(bytes, {}))
    expect(Array.from(r.bytes)).toEqual(Array.from(bytes))
    expect(r).toMatchObject({ memory: undefined, state: undefined, fuelExport: undefined, addedExports: [] })
    expect(unwrap(rewriteModule(bytes, { fuel: false, exportState: false })).addedExports).toEqual([])
  })

  it("never returns (or writes) the caller's bytes: no options give a copy, a rewrite leaves the input as it was", () => {
    const bytes = readReferenceModule("as-sha256")
    const before = Uint8Array.from(bytes)
    for (const options of [
      {},
      { fuel: true },
      { fuel: true, validated: unwrap(readModule(bytes, { bodies: false })) }
    ]) {
      const out = unwrap(rewriteModule(bytes, options)).bytes
      expect(out.buffer).not.toBe(bytes.buffer)
      expect(bytes).toEqual(before)
      out.fill(0) // the result is the caller's to change
      expect(bytes).toEqual(before)
    }
  })

  it("caps memory and exports state in one call, even when the cap moves the export section", async () => {
    // The cap adds a maximum, growing the memory section: the export section that follows moves.
    const bytes = await wat(`
      (module
        (memory 1)
        (global $g (mut i32) (i32.const 0))
        (func (export "grow") (param i32) (result i32)
          (global.set $g (i32.add (global.get $g) (i32.const 1)))
          (memory.grow (local.get 0))))`)
    const r = unwrap(rewriteModule(bytes, { maxMemoryPages: 200, exportState: true }))
    expect(r.memory).toMatchObject({ kind: "defined", maxPages: 200, rewritten: true })
    expect(r.state).toEqual({
      globals: [{ index: 0, name: globalExportName(0), valueType: "i32", added: true, imported: false }],
      memoryExport: MEMORY_EXPORT,
      unsnapshottable: []
    })
    expect(r.addedExports).toEqual([globalExportName(0), MEMORY_EXPORT])
    expect(hiddenExports(r.bytes)).toEqual(r.addedExports)
    expect(info(r.bytes).memories[0]).toMatchObject({ minPages: 1, maxPages: 200 })
    const exports = instantiate(r.bytes)
    expect(
      runScript(exports, [
        ["grow", 199],
        ["grow", 1]
      ])
    ).toEqual([1, -1])
    expect((exports[globalExportName(0)] as WebAssembly.Global).value).toBe(2)
    expect(memoryOf(exports, MEMORY_EXPORT).buffer.byteLength).toBe(200 * 65_536)
  })

  it("adds fuel metering with a cap and state exports; the fuel counter is not listed as state", () => {
    const bytes = readAgent("counter")
    const r = unwrap(rewriteModule(bytes, { maxMemoryPages: 1, exportState: true, fuel: true }))
    expect(r.fuelExport).toBe(FUEL_EXPORT)
    expect(r.addedExports).toEqual([FUEL_EXPORT, globalExportName(0)])
    expect(hiddenExports(r.bytes)).toEqual(r.addedExports)
    expect(r.state!.globals.map((g) => g.name)).toEqual([globalExportName(0)])
    expect(r.memory).toMatchObject({ kind: "defined", maxPages: 1 })

    const exports = instantiate(r.bytes)
    setFuel(exports, 1_000n)
    const script: Array<Call> = [["increment"], ["add", 41], ["get"], ["add_i64", 1n, 2n]]
    expect(runScript(exports, script)).toEqual(runScript(instantiate(bytes), script))
    const left = (exports[FUEL_EXPORT] as WebAssembly.Global).value as bigint
    expect(left).toBeLessThan(1_000n)
    expect(left).toBeGreaterThanOrEqual(0n)
    expect((exports[globalExportName(0)] as WebAssembly.Global).value).toBe(42)
  })

  it("fuel stops the looper's infinite loop; the same fuel stops it at the same point", () => {
    const r = unwrap(rewriteModule(readAgent("looper"), { exportState: true, fuel: true }))
    const runs = [0, 1].map(() => {
      const exports = instantiate(r.bytes)
      setFuel(exports, 100_000n)
      expect(() => fn(exports, "spin")()).toThrow(WebAssembly.RuntimeError)
      expect((exports[FUEL_EXPORT] as WebAssembly.Global).value as bigint).toBeLessThan(0n)
      // With its fuel still negative the next call traps at once; refuelled, it answers.
      expect(() => fn(exports, "iterations")()).toThrow(WebAssembly.RuntimeError)
      setFuel(exports, 100n)
      return [fn(exports, "iterations")(), (exports[globalExportName(0)] as WebAssembly.Global).value]
    })
    expect(runs[0]![0]).toBeGreaterThan(1000n)
    expect(runs[1]).toEqual(runs[0])
    expect(runs[0]![1]).toBe(runs[0]![0]) // the loop counter is the hidden global
  })

  it("as-sha256 with every rewrite hashes like node:crypto", () => {
    const bytes = readReferenceModule("as-sha256")
    // Its start function runs at instantiation, before the host can set the counter: give it initial fuel.
    const r = unwrap(rewriteModule(bytes, { maxMemoryPages: 2, exportState: true, fuel: { initialFuel: 1_000_000n } }))
    const exports = instantiate(r.bytes, { env: { abort: () => {} } })
    const input = (exports["input"] as WebAssembly.Global).value as number
    const output = (exports["output"] as WebAssembly.Global).value as number
    for (const [seed, length] of [
      [1, 0],
      [2, 3],
      [3, 64],
      [4, 400]
    ] as const) {
      const data = pseudoRandomBytes(seed, length)
      setFuel(exports, 10_000_000n)
      new Uint8Array(memoryOf(exports, "memory").buffer).set(data, input)
      fn(exports, "digest")(data.length)
      const hex = Buffer.from(new Uint8Array(memoryOf(exports, "memory").buffer, output, 32)).toString("hex")
      expect(hex).toBe(createHash("sha256").update(data).digest("hex"))
    }
  })

  it("keeps every reference module and fixture agent valid under all rewrites", () => {
    const modules: Array<[string, Uint8Array<ArrayBuffer>]> = [
      ...referenceModules.map((m): [string, Uint8Array<ArrayBuffer>] => [m.name, m.read()]),
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
        "trapper",
        "start-trap"
      ].map((n): [string, Uint8Array<ArrayBuffer>] => [n, readAgent(n, true)])
    ]
    for (const [name, bytes] of modules) {
      const min = info(bytes).memories[0]?.minPages ?? 0
      const r = unwrap(rewriteModule(bytes, { maxMemoryPages: Math.max(min, 512), exportState: true, fuel: true }))
      expect(WebAssembly.validate(r.bytes), name).toBe(true)
      const original = WebAssembly.Module.exports(new WebAssembly.Module(bytes))
      const rewritten = WebAssembly.Module.exports(new WebAssembly.Module(r.bytes))
      expect(rewritten.slice(0, original.length), name).toEqual(original)
      expect(
        rewritten.slice(original.length).map((e) => e.name),
        name
      ).toEqual(r.addedExports)
      expect(readModule(r.bytes).ok, name).toBe(true)
    }
  })

  it("fails with the first refusing rewrite's error", async () => {
    const hidden = await wat(`(module (global (export "agent-runtime:x") (mut i32) (i32.const 0)))`)
    expect(rewriteModule(hidden, { maxMemoryPages: 4 }).ok).toBe(true)
    for (const options of [{ fuel: true }, { exportState: true }]) {
      const r = rewriteModule(hidden, options)
      expect(r.ok ? "ok" : r.error.reason).toMatch(/agent-runtime:x/)
    }
    const big = rewriteModule(await wat(`(module (memory 8))`), { maxMemoryPages: 4, exportState: true, fuel: true })
    expect(big.ok ? "ok" : big.error.reason).toBe("initial memory 8 pages exceeds the cap 4 pages")
    expect(rewriteModule(new Uint8Array([1, 2, 3]), { exportState: true }).ok).toBe(false)
  })
})
