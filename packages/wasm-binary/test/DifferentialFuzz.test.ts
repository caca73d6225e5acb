/**
 * Differential fuzzing in CI (issue 12): structure-aware mutants of real
 * modules — the fixture agents and valid spec-suite modules — against the
 * oracle of `helpers/Differential.ts` (V8's `WebAssembly.validate`, the
 * reader never throwing, every rewriter's output validating iff its input
 * does, no rewrite of an invalid input succeeding).
 *
 * At least 20 000 mutants within a fixed time budget; the seed and counts
 * are printed (`FUZZ_SEED=<seed>` reproduces a run). A failing mutant is
 * shrunk (`shrink` of `@agent-runtime/test-support/mutate`: sections, byte
 * chunks, bytes) and written to `test/regressions/<oracle>-<hash>.wasm`;
 * every file there is replayed by the last test.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { mutateStructured, prng, shrink } from "@agent-runtime/test-support/mutate"
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import wabt from "wabt"
import { instrumentFuelOf } from "../src/Fuel.js"
import { agentCorpus, check, newCounts, specCorpus, type Violation } from "./helpers/Differential.js"
import { codeSection, functionSection, functype, module, section, typeSection, u32 } from "./helpers/ModuleBuilder.js"

const MIN_MUTANTS = 20_000
const BUDGET_MS = 45_000
const SEED =
  process.env["FUZZ_SEED"] === undefined || process.env["FUZZ_SEED"] === ""
    ? (Date.now() ^ 0xf022) >>> 0
    : Number(process.env["FUZZ_SEED"])

const regressionsDir = fileURLToPath(new URL("./regressions/", import.meta.url))

const fnv = (b: Uint8Array): string => {
  let h = 0x811c9dc5
  for (const x of b) h = Math.imul(h ^ x, 0x01000193) >>> 0
  return h.toString(16).padStart(8, "0")
}

type Corpus = Array<{ readonly name: string; readonly bytes: Uint8Array<ArrayBuffer> }>
let corpus: Corpus = []
const counts = newCounts()
const findings: Array<string> = []

/** Shrinks a failing input (same oracle kind) and writes it as a regression file; returns its path. */
const keep = (bytes: Uint8Array<ArrayBuffer>, v: Violation): string => {
  const small = shrink(bytes, (b) => check(b)?.kind === v.kind, 5_000)
  mkdirSync(regressionsDir, { recursive: true })
  const path = `${regressionsDir}${v.kind}-${fnv(small)}.wasm`
  writeFileSync(path, small)
  return path
}

describe("differential fuzzing", () => {
  beforeAll(async () => {
    const w = await wabt()
    const assemble = (text: string): Uint8Array<ArrayBuffer> | undefined => {
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
          mutable_globals: true
        })
        return new Uint8Array(parsed.toBinary({}).buffer)
      } catch {
        return undefined
      } finally {
        parsed?.destroy()
      }
    }
    corpus = [...agentCorpus(), ...specCorpus(600, assemble)]
  }, 120_000)

  afterAll(() => {
    console.log(
      `differential fuzz: seed ${SEED}, ${counts.mutants} mutants of ${corpus.length} modules; ` +
        `V8-valid ${counts.v8Valid}, reader accepted ${counts.readerAccepted}, rewrites ok ${counts.rewritesOk}, ` +
        `typed refusals of valid modules ${counts.rewritesRefusedValid}; findings ${findings.length}` +
        (findings.length > 0 ? `\n  ${findings.join("\n  ")}` : "")
    )
  })

  it("the corpus: every fixture agent and hundreds of valid spec modules, all passing the oracle unmutated", () => {
    expect(corpus.length).toBeGreaterThan(300)
    for (const { name, bytes } of corpus)
      expect({ name, violation: check(bytes) }).toEqual({ name, violation: undefined })
  })

  it(
    `≥ ${MIN_MUTANTS} structure-aware mutants in ${BUDGET_MS / 1000} s: V8, the reader and the rewriters agree`,
    () => {
      const rng = prng(SEED)
      const donors = corpus.map((c) => c.bytes)
      const deadline = Date.now() + BUDGET_MS
      const kinds = new Set<string>()
      let i = 0
      while (Date.now() < deadline && (counts.mutants < MIN_MUTANTS * 2 || i % 1000 !== 0)) {
        const seed = rng.pick(corpus)
        // one to three stacked mutations
        let m = mutateStructured(seed.bytes, rng, donors)
        let what = m.what
        for (let k = rng.int(3); k > 0; k--) {
          m = mutateStructured(m.bytes, rng, donors)
          what += `; ${m.what}`
        }
        i++
        const v = check(m.bytes, counts)
        if (v !== undefined && !kinds.has(v.kind)) {
          kinds.add(v.kind)
          findings.push(`${v.kind}: ${v.detail} — mutant #${i} of ${seed.name} (${what}) → ${keep(m.bytes, v)}`)
        }
      }
      expect(counts.mutants).toBeGreaterThanOrEqual(MIN_MUTANTS)
      expect(counts.v8Valid).toBeGreaterThan(1_000)
      expect(findings).toEqual([])
    },
    BUDGET_MS + 60_000
  )

  it("issue 12 item 2: the fuel rewriter's own bookkeeping never turns an invalid module into a valid one (local.set / global.set one past the end)", () => {
    const i64 = [0x42, 0x80, 0x94, 0xeb, 0xdc, 0x03] // i64.const 1_000_000_000
    const escapes = {
      // (func (loop (local.set 0 (i64.const 1e9)) (br 0))), no locals
      local: [0x00, 0x03, 0x40, ...i64, 0x21, 0x00, 0x0c, 0x00, 0x0b, 0x0b],
      // (func (loop (global.set 0 (i64.const 1e9)) (br 0))), no globals
      global: [0x00, 0x03, 0x40, ...i64, 0x24, 0x00, 0x0c, 0x00, 0x0b, 0x0b]
    }
    for (const [what, body] of Object.entries(escapes)) {
      const bytes = module(
        typeSection(functype([], [])),
        functionSection(0),
        section(7, u32(1), u32(3), [0x73, 0x70, 0x6e], 0x00, u32(0)),
        codeSection(new Uint8Array(body))
      )
      expect(WebAssembly.validate(bytes)).toBe(false)
      const unguarded = instrumentFuelOf(bytes) // without the validate guard of the public entry
      expect({ what, escapes: unguarded.ok && WebAssembly.validate(unguarded.value) }).toEqual({ what, escapes: false })
      expect(check(bytes)).toBeUndefined() // and the public rewriters refuse it
    }
  })

  it("every kept regression input passes the oracle", () => {
    let files: Array<string> = []
    try {
      files = readdirSync(regressionsDir)
        .filter((f) => f.endsWith(".wasm"))
        .sort()
    } catch {
      files = []
    }
    for (const f of files) {
      const bytes = new Uint8Array(readFileSync(`${regressionsDir}${f}`))
      expect({ file: f, violation: check(bytes) }).toEqual({ file: f, violation: undefined })
    }
  })
})
