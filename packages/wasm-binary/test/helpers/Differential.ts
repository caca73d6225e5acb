/**
 * The differential oracle of the fuzzer (issue 12): V8's
 * `WebAssembly.validate` against the reader and every rewriter, and the
 * corpus of real modules the mutants start from (the fixture agents and the
 * valid modules of the spec suite).
 *
 * For one module it checks that:
 * - the reader never throws; a refusal is a `WasmBinaryError` with an offset
 *   inside the input and not an "internal error";
 * - the reader accepts every module V8 validates;
 * - the fuel rewrite without its guard (`instrumentFuelOf`) never turns a
 *   module V8 refuses into a valid one (its own index bookkeeping);
 * - no rewrite of a module V8 refuses succeeds (`instrumentFuel`,
 *   `capMemory`, `exportState`, `rewriteModule`), none throws, and every
 *   rewrite that succeeds returns a module V8 validates; a rewrite of a valid
 *   module fails only with a typed refusal, never as "a rewriter bug".
 */
import { readdirSync, readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import {
  capMemory,
  exportState,
  instrumentFuel,
  readModule,
  rewriteModule,
  WasmBinaryError,
  type ReadResult
} from "../../src/index.js"
import { instrumentFuelOf } from "../../src/Fuel.js"
import { readAgent } from "./Agents.js"
import { AGENTS } from "./OpcodeModules.js"
import { FULL_REWRITE } from "./SpecSuite.js"
import { head, readScript, toModule } from "./Wast.js"

/** What went wrong with one module, or `undefined`; `kind` names the oracle. */
export interface Violation {
  readonly kind: string
  readonly detail: string
}

/** Counters the fuzzer prints. */
export interface Counts {
  mutants: number
  v8Valid: number
  readerAccepted: number
  rewritesOk: number
  rewritesRefusedValid: number
}

export const newCounts = (): Counts => ({
  mutants: 0,
  v8Valid: 0,
  readerAccepted: 0,
  rewritesOk: 0,
  rewritesRefusedValid: 0
})

const REWRITES: ReadonlyArray<readonly [string, (b: Uint8Array) => ReadResult<Uint8Array<ArrayBuffer>>]> = [
  ["instrumentFuel", (b) => instrumentFuel(b)],
  ["capMemory", (b) => mapBytes(capMemory(b, 256))],
  ["exportState", (b) => mapBytes(exportState(b))],
  ["rewriteModule", (b) => mapBytes(rewriteModule(b, FULL_REWRITE))]
]

const mapBytes = (r: ReadResult<{ readonly bytes: Uint8Array<ArrayBuffer> }>): ReadResult<Uint8Array<ArrayBuffer>> =>
  r.ok ? { ok: true, value: r.value.bytes } : r

const badError = (e: unknown, length: number): string | undefined => {
  if (!(e instanceof WasmBinaryError)) return `not a WasmBinaryError: ${String(e)}`
  if (e.offset < 0 || e.offset > length) return `offset ${e.offset} outside [0, ${length}]: ${e.message}`
  if (e.reason.startsWith("internal error")) return e.message
  return undefined
}

/** Runs the whole oracle on `bytes`; the first violation, if any. */
export const check = (bytes: Uint8Array<ArrayBuffer>, counts: Counts = newCounts()): Violation | undefined => {
  counts.mutants++
  const valid = WebAssembly.validate(bytes)
  if (valid) counts.v8Valid++
  let read: ReturnType<typeof readModule>
  try {
    read = readModule(bytes)
  } catch (e) {
    return { kind: "reader-throws", detail: String(e) }
  }
  if (read.ok) counts.readerAccepted++
  else {
    const bad = badError(read.error, bytes.length)
    if (bad !== undefined) return { kind: "reader-untyped", detail: bad }
    if (valid) return { kind: "reader-rejects-valid", detail: read.error.message }
  }
  for (const [name, rewrite] of REWRITES) {
    let r: ReadResult<Uint8Array<ArrayBuffer>>
    try {
      r = rewrite(bytes)
    } catch (e) {
      return { kind: `${name}-throws`, detail: String(e) }
    }
    if (!r.ok) {
      const bad = badError(r.error, bytes.length)
      if (bad !== undefined) return { kind: `${name}-untyped`, detail: bad }
      if (r.error.message.includes("rewriter bug")) return { kind: `${name}-invalid-output`, detail: r.error.message }
      if (valid) counts.rewritesRefusedValid++
      continue
    }
    if (!valid) return { kind: `${name}-accepts-invalid`, detail: "a module V8 refuses was rewritten" }
    if (!WebAssembly.validate(r.value))
      return { kind: `${name}-invalid-output`, detail: "the rewritten module does not validate" }
    counts.rewritesOk++
  }
  if (!valid && read.ok) {
    // the fuel rewriter's own bookkeeping, without the guard: an invalid module must stay invalid (issue 12 item 2)
    const unguarded = instrumentFuelOf(bytes)
    if (unguarded.ok && WebAssembly.validate(unguarded.value)) {
      return {
        kind: "fuel-unguarded-makes-valid",
        detail: "instrumentFuelOf turned a module V8 refuses into a valid one"
      }
    }
  }
  return undefined
}

/** The fixture agents (unsigned and signed) that exist in `packages/agents/build`. */
export const agentCorpus = (): Array<{ readonly name: string; readonly bytes: Uint8Array<ArrayBuffer> }> => {
  return AGENTS.flatMap((name) => [
    { name, bytes: readAgent(name) },
    { name: `${name} (signed)`, bytes: readAgent(name, true) }
  ])
}

const corpusDir = fileURLToPath(new URL("../../../../../shared/corpus/wasm-spec-testsuite/", import.meta.url))

/**
 * Valid binary modules of the spec suite (`(module binary …)` cases that V8
 * validates and the reader accepts), up to `limit`, smallest files first;
 * text modules are assembled by `assemble` when given (wabt).
 */
export const specCorpus = (
  limit: number,
  assemble?: (text: string) => Uint8Array<ArrayBuffer> | undefined
): Array<{ readonly name: string; readonly bytes: Uint8Array<ArrayBuffer> }> => {
  let files: Array<string>
  try {
    files = readdirSync(corpusDir)
      .filter((f) => f.endsWith(".wast"))
      .sort()
  } catch {
    return []
  }
  const out: Array<{ readonly name: string; readonly bytes: Uint8Array<ArrayBuffer> }> = []
  for (const file of files) {
    const { commands, bytes: src } = readScript(readFileSync(`${corpusDir}${file}`, "utf8"))
    let n = 0
    for (const c of commands) {
      if (out.length >= limit) return out
      if (head(c) !== "module") continue
      const m = toModule(c, src)
      const bytes =
        m.form === "binary"
          ? new Uint8Array(m.bytes)
          : m.form === "text" && assemble !== undefined
            ? assemble(m.text)
            : undefined
      if (bytes === undefined || bytes.length > 16_384 || !WebAssembly.validate(bytes) || !readModule(bytes).ok)
        continue
      out.push({ name: `${file}#${n++}`, bytes })
    }
  }
  return out
}
