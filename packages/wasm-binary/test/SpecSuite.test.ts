/**
 * The WebAssembly spec test suite (`../shared/corpus/wasm-spec-testsuite/`,
 * Apache 2.0, provenance inside) against the reader, the rewriters and V8:
 *
 * - `assert_malformed` binary modules: the reader rejects with a typed
 *   error and an offset inside the module; V8 and every rewriter reject too.
 * - `assert_invalid` modules (binary, or text assembled by wabt): V8 and
 *   every rewriter reject; the reader rejects with a typed error or accepts
 *   (it does not type-check instruction sequences).
 * - valid modules V8 validates: the reader accepts; the fuel, memory-cap,
 *   state-export and dirty-page rewrites (each, and all four) validate; instantiation and
 *   every runnable action (`assert_return`, `assert_trap`, … with numeric
 *   arguments, spectest imports only) behave the same rewritten as original.
 * - valid modules V8 11.3 refuses (newer features): the reader says
 *   `unsupported` (naming the feature) or accepts, the rewriter refuses.
 *
 * Counts per category (agreed, skipped with the reason) are printed.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { checkScript, loadWabt, Tally } from "./helpers/SpecSuite.js"

const corpus = fileURLToPath(new URL("../../../../shared/corpus/wasm-spec-testsuite/", import.meta.url))
const scripts = (() => {
  try {
    const root = readdirSync(corpus).filter((f) => f.endsWith(".wast"))
    const legacy =
      statSync(`${corpus}legacy`, { throwIfNoEntry: false })?.isDirectory() === true
        ? readdirSync(`${corpus}legacy`)
            .filter((f) => f.endsWith(".wast"))
            .map((f) => `legacy/${f}`)
        : []
    return [...root, ...legacy].sort()
  } catch {
    return []
  }
})()

const tally = new Tally()

describe("spec test suite", () => {
  beforeAll(async () => {
    await loadWabt()
  })
  afterAll(() => {
    console.log(`spec suite: ${scripts.length} scripts\n${tally.report()}`)
  })

  it("the corpus is there", () => {
    expect(scripts.length).toBeGreaterThan(200)
  })

  for (const file of scripts) {
    it(file, () => {
      const failures = checkScript(file, readFileSync(`${corpus}${file}`, "utf8"), tally)
      expect(failures).toEqual([])
    })
  }

  it("the suite checked what it should (not silently skipped: wabt, the corpus and the harness all worked)", () => {
    expect(tally.get("malformed (binary)", "agreed (reader, V8 and the rewriters refuse)")).toBeGreaterThanOrEqual(700)
    expect(tally.get("valid", "agreed (reader accepts, every rewrite validates)")).toBeGreaterThanOrEqual(1_800)
    expect(tally.get("actions (original vs rewritten)", "agreed (assert_return)")).toBeGreaterThanOrEqual(25_000)
    expect(tally.get("actions (original vs rewritten)", "agreed (assert_trap)")).toBeGreaterThanOrEqual(4_000)
    expect(tally.get("actions (original vs rewritten)", "differs")).toBe(0)
  })
})
