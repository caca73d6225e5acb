/**
 * The fuel pass's specialised scanners — the scan compiled to WebAssembly
 * (`src/internal/FuelScanWasm.ts`, the default) and the JS scanner
 * (`src/internal/FuelScan.ts`) — each against
 * the same pass with every body sent through the checked decoder
 * (`instrumentFuelOf(bytes, options, "checked")`, built on `decodeInstruction`; when the
 * scanner landed it was byte-identical to the pass before it on all of the below): the same output bytes for every module
 * of the spec suite (binary and text modules, valid, invalid and malformed,
 * assembled by wabt where they are text) and for the real npm binaries, with
 * default and custom costs; the same `WasmBinaryError` (kind, reason,
 * offset, feature) for every module either refuses, structure-aware mutants
 * included; and bodies with rare but legal encodings (non-shortest LEB128s,
 * type-index block types, 5- and 10-byte constants) that the scanner leaves
 * to the checked path or handles itself, still byte-identical.
 */
import { beforeAll, describe, expect, it } from "@effect/vitest"
import { referenceModules } from "@agent-runtime/reference-modules"
import { mutateStructured, prng } from "@agent-runtime/test-support/mutate"
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import wabt from "wabt"
import { defaultOperatorCost, type FuelOptions, instrumentFuelOf } from "../src/Fuel.js"
import { FuelScan } from "../src/internal/FuelScan.js"
import { wasmScanCounts } from "../src/internal/FuelScanWasm.js"
import type { ReadResult } from "../src/ReadResult.js"
import { agentCorpus } from "./helpers/Differential.js"
import { bytes, codeSection, functionSection, functype, module, T, typeSection } from "./helpers/ModuleBuilder.js"
import { head, readScript, type SExpr, toModule } from "./helpers/Wast.js"

/** A result as a comparable value: the output bytes, or the error's fields. */
const outcome = (r: ReadResult<Uint8Array>) =>
  r.ok
    ? { ok: true, bytes: Buffer.from(r.value).toString("base64") }
    : { ok: false, offset: r.error.offset, reason: r.error.reason, kind: r.error.kind, feature: r.error.feature }

const OPTION_SETS: ReadonlyArray<readonly [string, FuelOptions]> = [
  ["default", {}],
  ["deferStart, initialFuel", { deferStart: true, initialFuel: 123_456_789n }],
  ["custom costs", { costs: (op) => (op % 5) * 3 + (op > 0xff ? 2 ** 33 : 0) }]
]

/** Whether both scanners and the checked reference agree on `input` under every option set. */
const disagreements = (name: string, input: Uint8Array): Array<unknown> => {
  const out: Array<unknown> = []
  for (const [what, options] of OPTION_SETS) {
    const reference = outcome(instrumentFuelOf(input, options, "checked"))
    for (const scanner of ["wasm", "js"] as const) {
      const fast = outcome(instrumentFuelOf(input, options, scanner))
      if (JSON.stringify(fast) !== JSON.stringify(reference)) out.push({ name, what, scanner, fast, reference })
    }
  }
  return out
}

/** What the WebAssembly scanner did while `run` ran: bodies it rewrote, bodies it left to the JS path. */
const wasmScanned = (run: () => void): { readonly bodies: number; readonly fallbacks: number } => {
  const before = { ...wasmScanCounts }
  run()
  return { bodies: wasmScanCounts.bodies - before.bodies, fallbacks: wasmScanCounts.fallbacks - before.fallbacks }
}

/** Counts the bodies the scanner completes and leaves to the checked path while `run` runs. */
const scanned = (run: () => void): { readonly fast: number; readonly checked: number } => {
  const body = FuelScan.prototype.body
  let fast = 0
  let checked = 0
  FuelScan.prototype.body = function (this: FuelScan, ...args: Parameters<typeof body>) {
    const done = body.apply(this, args)
    if (done) fast++
    else checked++
    return done
  }
  try {
    run()
  } finally {
    FuelScan.prototype.body = body
  }
  return { fast, checked }
}

const corpusDir = fileURLToPath(new URL("../../../../shared/corpus/wasm-spec-testsuite/", import.meta.url))

/** Every module of the spec suite that is binary or that wabt assembles: top-level and inside assertions. */
const specModules = (
  assemble: (text: string) => Uint8Array | undefined
): Array<{ name: string; bytes: Uint8Array }> => {
  let files: Array<string> = []
  try {
    files = readdirSync(corpusDir).filter((f) => f.endsWith(".wast"))
    files.push(
      ...readdirSync(`${corpusDir}legacy`, { withFileTypes: true })
        .filter((d) => d.isFile() && d.name.endsWith(".wast"))
        .map((d) => `legacy/${d.name}`)
    )
  } catch {
    // the corpus or its legacy folder is missing: the count check below fails
  }
  const out: Array<{ name: string; bytes: Uint8Array }> = []
  for (const file of files.sort()) {
    const { commands, bytes: src } = readScript(readFileSync(`${corpusDir}${file}`, "utf8"))
    let n = 0
    for (const c of commands) {
      const m: SExpr | undefined =
        head(c) === "module" ? c : c.kind === "list" && head(c.items[1]) === "module" ? c.items[1] : undefined
      if (m === undefined) continue
      const wm = toModule(m, src)
      const b = wm.form === "binary" ? wm.bytes : wm.form === "text" ? assemble(wm.text) : undefined
      if (b !== undefined) out.push({ name: `${file}#${n++}`, bytes: b })
    }
  }
  return out
}

let spec: Array<{ name: string; bytes: Uint8Array }> = []

describe("fuel pass: the specialised scanner writes what the checked pass wrote", () => {
  beforeAll(async () => {
    const w = await wabt()
    spec = specModules((text) => {
      let parsed: ReturnType<typeof w.parseWat> | undefined
      try {
        parsed = w.parseWat("spec.wast", text, {
          multi_value: true,
          bulk_memory: true,
          reference_types: true,
          simd: true,
          tail_call: true,
          exceptions: true,
          sat_float_to_int: true,
          sign_extension: true,
          mutable_globals: true,
          threads: true
        })
        return new Uint8Array(parsed.toBinary({}).buffer)
      } catch {
        return undefined
      } finally {
        parsed?.destroy()
      }
    })
  }, 120_000)

  it("every spec-suite module (valid, invalid, malformed): same bytes or same typed error, under three option sets", () => {
    expect(spec.length).toBeGreaterThan(3_000)
    const problems = spec.flatMap(({ name, bytes }) => disagreements(name, bytes))
    expect(problems).toEqual([])
    // both outcomes are exercised: many rewrites and many refusals
    const ok = spec.filter(({ bytes }) => instrumentFuelOf(bytes).ok).length
    expect(ok).toBeGreaterThan(2_000)
    expect(spec.length - ok).toBeGreaterThan(300)
  })

  it("the real npm binaries and the fixture agents: byte-identical, every body on the fast path (wasm and JS)", () => {
    for (const ref of referenceModules) {
      const input = ref.read()
      expect(disagreements(ref.name, input)).toEqual([])
      const counts = scanned(() => {
        const r = instrumentFuelOf(input, {}, "js")
        if (!r.ok) throw r.error
      })
      expect({ name: ref.name, checked: counts.checked }).toEqual({ name: ref.name, checked: 0 })
      expect(counts.fast).toBeGreaterThan(10)
      const wasm = wasmScanned(() => {
        const r = instrumentFuelOf(input)
        if (!r.ok) throw r.error
      })
      expect({ name: ref.name, fallbacks: wasm.fallbacks }).toEqual({ name: ref.name, fallbacks: 0 })
      expect(wasm.bodies).toBeGreaterThan(10)
    }
    for (const agent of agentCorpus()) expect(disagreements(agent.name, agent.bytes)).toEqual([])
  })

  it("input that is a view into a larger buffer (a Node Buffer at an offset): the same bytes as a fresh copy", () => {
    for (const ref of referenceModules.slice(0, 4)) {
      const input = ref.read()
      const padded = Buffer.concat([Buffer.from([1, 2, 3]), input, Buffer.from([0xff, 0xff])])
      const view = padded.subarray(3, 3 + input.length)
      expect(outcome(instrumentFuelOf(view))).toEqual(outcome(instrumentFuelOf(input, {}, "checked")))
      expect(outcome(instrumentFuelOf(view, {}, "js"))).toEqual(outcome(instrumentFuelOf(input, {}, "checked")))
    }
  })

  it("structure-aware mutants of spec and real modules: same bytes or same typed error", () => {
    const rng = prng(0x5eed_f0e1)
    const small = spec.filter((s) => s.bytes.length > 8 && s.bytes.length < 4_096).map((s) => s.bytes)
    const real = referenceModules.filter((r) => r.read().length < 300_000).map((r) => r.read())
    const donors = [...small, ...real]
    const problems: Array<unknown> = []
    let refused = 0
    const N = 3_000
    for (let i = 0; i < N && problems.length === 0; i++) {
      const seed = i % 10 === 0 ? rng.pick(real) : rng.pick(small)
      let m = mutateStructured(seed, rng, donors).bytes
      if (rng.int(2) === 0) m = mutateStructured(m, rng, donors).bytes
      const reference = outcome(instrumentFuelOf(m, {}, "checked"))
      if (!reference.ok) refused++
      for (const scanner of ["wasm", "js"] as const) {
        const fast = outcome(instrumentFuelOf(m, {}, scanner))
        if (JSON.stringify(fast) !== JSON.stringify(reference)) problems.push({ i, scanner, fast, reference })
      }
    }
    expect(problems).toEqual([])
    expect(refused).toBeGreaterThan(N / 10)
    // a fixed 3,000 mutants through three passes: 15–30 s on this 2-core machine, more under load
  }, 180_000)

  it("rare but legal encodings (non-shortest LEB128s, wide constants, type-index block types): byte-identical", () => {
    const types = [functype([T.i32], [T.i32]), ...Array.from({ length: 70 }, () => functype([], []))]
    const bodies = [
      // local.get 0 with a 2-byte (non-shortest) index; i32.const with 5 bytes; end
      bytes(0x00, 0x20, 0x80, 0x00, 0x41, 0xff, 0xff, 0xff, 0xff, 0x07, 0x6a, 0x0b),
      // block with a type-index block type 69 (2 bytes, s33), a loop with a br_if to the function's label, end
      bytes(0x00, 0x02, 0xc5, 0x00, 0x03, 0x40, 0x20, 0x00, 0x20, 0x00, 0x0d, 0x02, 0x1a, 0x0b, 0x0b, 0x20, 0x00, 0x0b),
      // a local run whose count is 5 bytes; i64.const as 10 bytes, drop; f64.const, drop; local.get 0; end
      bytes(
        0x01,
        0x81,
        0x80,
        0x80,
        0x80,
        0x00,
        T.i64,
        0x42,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
        0x80,
        0x7f,
        0x1a,
        0x44,
        0,
        0,
        0,
        0,
        0,
        0,
        0xf0,
        0x3f,
        0x1a,
        0x20,
        0x00,
        0x0b
      ),
      // br_table with non-shortest labels, one of them the function's own, in an i32 block
      bytes(0x00, 0x02, 0x7f, 0x20, 0x00, 0x20, 0x00, 0x0e, 0x02, 0x80, 0x00, 0x81, 0x00, 0x00, 0x0b, 0x0b)
    ]
    const m = module(typeSection(...types), functionSection(...bodies.map(() => 0)), codeSection(...bodies))
    expect(WebAssembly.validate(m)).toBe(true)
    expect(disagreements("rare encodings", m)).toEqual([])
    expect(outcome(instrumentFuelOf(m)).ok).toBe(true)
  })

  it("a body that grows the output buffer and then needs the checked path: byte-identical", () => {
    // 3 000 calls (2 bytes in, ≈ 20 bytes out each) outgrow the 2× + 64 byte buffer; then an i32.load whose
    // align is a non-shortest LEB128 (legal) sends the body to the checked path after the growth
    const calls = Array.from({ length: 3_000 }, () => [0x10, 0x00]).flat()
    const body = bytes(0x00, calls, 0x41, 0x00, 0x28, 0x82, 0x00, 0x00, 0x1a, 0x0b)
    const m = module(
      typeSection(functype([], [])),
      functionSection(0, 0),
      bytes(0x05, 0x03, 0x01, 0x00, 0x01), // memory section: one memory, min 1 page
      codeSection(bytes(0x00, 0x0b), body)
    )
    expect(WebAssembly.validate(m)).toBe(true)
    const wasm = wasmScanned(() => {
      const counts = scanned(() => expect(disagreements("growth then checked path", m)).toEqual([]))
      expect(counts.checked).toBeGreaterThan(0)
    })
    // the WebAssembly scan rewrote the first body, left the second to the JS path (twice: two option sets)
    expect(wasm).toEqual({ bodies: 2, fallbacks: 2 })
    const r = instrumentFuelOf(m)
    expect(r.ok && r.value.length > 2 * m.length + 64).toBe(true)
  })

  it("a costs function is asked once per opcode, and an invalid cost is reported at its first instruction", () => {
    const body = bytes(0x00, 0x20, 0x00, 0x20, 0x00, 0x6a, 0x20, 0x00, 0x6a, 0x0b)
    const m = module(typeSection(functype([T.i32], [T.i32])), functionSection(0, 0), codeSection(body, body))
    const asked: Array<number> = []
    const r = instrumentFuelOf(m, {
      costs: (op) => {
        asked.push(op)
        return defaultOperatorCost(op)
      }
    })
    expect(r.ok).toBe(true)
    expect(asked.sort((a, b) => a - b)).toEqual([0x0b, 0x20, 0x6a])
    const bad = instrumentFuelOf(m, { costs: (op) => (op === 0x6a ? -1 : 1) })
    const reference = instrumentFuelOf(m, { costs: (op) => (op === 0x6a ? -1 : 1) }, "checked")
    expect(outcome(bad)).toEqual(outcome(reference))
    expect(bad.ok ? undefined : bad.error.reason).toBe("invalid fuel cost -1 for i32.add")
  })
})
