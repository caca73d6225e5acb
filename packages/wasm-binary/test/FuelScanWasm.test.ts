/**
 * The fuel scan compiled to WebAssembly (`src/internal/FuelScanWasm.ts`):
 * the committed module is a fresh build of its source; where the host
 * cannot compile it (workerd, a CSP) the JS scanner runs with the same
 * output and the failure is remembered; a code section whose output
 * outgrows the scanner's memory grows it and gives the JS path's bytes;
 * a second code section (a module that does not validate) does not
 * overwrite the first one's output. Byte-for-byte equivalence over the
 * spec suite, npm binaries and mutants is in `FuelScan.test.ts`.
 */
import { describe, expect, it } from "@effect/vitest"
import { getReferenceModule } from "@agent-runtime/reference-modules"
import { execFileSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { instrumentFuelOf } from "../src/Fuel.js"
import { resetFuelScanWasm, wasmScanCounts } from "../src/internal/FuelScanWasm.js"
import type { ReadResult } from "../src/ReadResult.js"
import {
  bytes,
  codeSection,
  emptyBody,
  functionSection,
  functype,
  module,
  typeSection
} from "./helpers/ModuleBuilder.js"

/** A result as a comparable value: the output bytes, or the error's fields. */
const outcome = (r: ReadResult<Uint8Array>) =>
  r.ok
    ? { ok: true, bytes: Buffer.from(r.value).toString("base64") }
    : { ok: false, offset: r.error.offset, reason: r.error.reason, kind: r.error.kind }

const counts = () => ({ ...wasmScanCounts })

describe("fuel pass: the scan compiled to WebAssembly", () => {
  it("the committed module is a fresh build of assembly/fuelScan.ts (deterministic asc build)", () => {
    const script = fileURLToPath(new URL("../scripts/build-fuel-scan.mjs", import.meta.url))
    // exits 1 (and execFileSync throws) when src/internal/FuelScanWasmBytes.ts differs from a fresh build
    const out = execFileSync(process.execPath, [script, "--check"], { encoding: "utf8", timeout: 120_000 })
    expect(out).toContain("committed bytes match a fresh build")
  }, 150_000)

  it("rewrites every body of a real module itself, with the JS scanner's bytes", () => {
    const input = getReferenceModule("zstd").read()
    const before = counts()
    const wasm = instrumentFuelOf(input)
    expect(wasmScanCounts.sections - before.sections).toBe(1)
    expect(wasmScanCounts.fallbacks - before.fallbacks).toBe(0)
    expect(wasmScanCounts.bodies - before.bodies).toBeGreaterThan(100)
    expect(outcome(wasm)).toEqual(outcome(instrumentFuelOf(input, {}, "js")))
  })

  it("where runtime compilation is forbidden (workerd, CSP): the JS scanner, same bytes, one failed try", () => {
    const input = getReferenceModule("zstd").read()
    const expected = outcome(instrumentFuelOf(input, {}, "js"))
    const host = globalThis.WebAssembly as { Module: unknown }
    const original = host.Module
    let tries = 0
    host.Module = function () {
      tries++
      throw new WebAssembly.CompileError("WebAssembly.Module(): Wasm code generation disallowed by embedder")
    }
    try {
      resetFuelScanWasm(true)
      const before = counts()
      expect(outcome(instrumentFuelOf(input))).toEqual(expected)
      expect(outcome(instrumentFuelOf(input))).toEqual(expected)
      expect(tries).toBe(1) // remembered: not tried again
      expect(counts()).toEqual(before) // the WebAssembly scanner did nothing
    } finally {
      host.Module = original
      resetFuelScanWasm(true)
    }
    const before = counts()
    expect(outcome(instrumentFuelOf(input))).toEqual(expected)
    expect(wasmScanCounts.sections - before.sections).toBe(1) // compiled again once allowed
  })

  it("a code section whose output outgrows the scanner's memory: it grows, same bytes; the next module is fine", () => {
    // 1 400 000 calls (2 bytes each, 13 once metered: store, call, reload + charge) → ≈ 18 MB of output,
    // past the 16 MiB an instance may keep
    const calls = 1_400_000
    const body = new Uint8Array(1 + 2 * calls + 1)
    for (let i = 0; i < calls; i++) body[1 + 2 * i] = 0x10 // call 0; locals count and index bytes stay 0
    body[body.length - 1] = 0x0b
    const big = module(typeSection(functype([], [])), functionSection(0, 0), codeSection(emptyBody, body))
    expect(WebAssembly.validate(big)).toBe(true)
    const before = counts()
    const wasm = instrumentFuelOf(big)
    expect(wasm.ok && wasm.value.length > 16 * 1024 * 1024).toBe(true)
    expect(counts()).toEqual({ sections: before.sections + 1, bodies: before.bodies + 2, fallbacks: before.fallbacks })
    expect(outcome(wasm)).toEqual(outcome(instrumentFuelOf(big, {}, "js")))
    const small = getReferenceModule("as-sha256").read()
    expect(outcome(instrumentFuelOf(small))).toEqual(outcome(instrumentFuelOf(small, {}, "js")))
    expect(wasmScanCounts.sections - before.sections).toBe(2)
  })

  it("two code sections (a module that does not validate): the first one's output is not overwritten", () => {
    const a = bytes(0x00, 0x44, 1, 2, 3, 4, 5, 6, 7, 0x99, 0x1a, 0x0b) // f64.const; drop; end
    const b = bytes(0x00, 0x44, 1, 2, 3, 4, 5, 6, 7, 0x9a, 0x1a, 0x0b)
    const m = module(typeSection(functype([], [])), functionSection(0), codeSection(a), codeSection(b))
    const wasm = outcome(instrumentFuelOf(m))
    expect(wasm).toEqual(outcome(instrumentFuelOf(m, {}, "checked")))
    expect(wasm).toEqual(outcome(instrumentFuelOf(m, {}, "js")))
  })
})
