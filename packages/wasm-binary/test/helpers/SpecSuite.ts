/**
 * The spec-suite checks, one script at a time: every module case of a
 * `.wast` file is assembled (binary literal, or wabt for text) and checked
 * against the reader, the rewriters and V8; actions run on the original and
 * the rewritten instance side by side. Counts go to a `Tally`.
 */
import wabt from "wabt"
import {
  capMemory,
  exportState,
  FUEL_EXPORT,
  instrumentDirtyPages,
  instrumentFuel,
  readModule,
  rewriteModule,
  WasmBinaryError,
  type ReadResult
} from "../../src/index.js"
import { instantiateMetered } from "./FuelCounter.js"
import { constValue, outcomeOf, sameOutcome, showOutcome, spectest, type Outcome } from "./SpecHarness.js"
import { head, readScript, type SExpr, toModule, type WastModule } from "./Wast.js"

/** Counts by category → outcome (e.g. `malformed (binary)` → `agreed`, `skipped: wabt refuses the text`). */
export class Tally {
  readonly counts = new Map<string, Map<string, number>>()
  add(category: string, outcome: string, n = 1): void {
    let m = this.counts.get(category)
    if (m === undefined) this.counts.set(category, (m = new Map()))
    m.set(outcome, (m.get(outcome) ?? 0) + n)
  }
  get(category: string, outcome: string): number {
    return this.counts.get(category)?.get(outcome) ?? 0
  }
  report(): string {
    const lines: Array<string> = []
    for (const [category, m] of [...this.counts].sort(([a], [b]) => a.localeCompare(b))) {
      const total = [...m.values()].reduce((a, b) => a + b, 0)
      lines.push(`${category}: ${total}`)
      for (const [outcome, n] of [...m].sort(([, a], [, b]) => b - a))
        lines.push(`  ${String(n).padStart(6)}  ${outcome}`)
    }
    return lines.join("\n")
  }
}

const FEATURES = {
  exceptions: true,
  mutable_globals: true,
  sat_float_to_int: true,
  sign_extension: true,
  simd: true,
  threads: true,
  function_references: true,
  multi_value: true,
  tail_call: true,
  bulk_memory: true,
  reference_types: true,
  gc: true,
  memory64: true,
  extended_const: true,
  relaxed_simd: true
} as const

type Wabt = Awaited<ReturnType<typeof wabt>>
let wabtInstance: Wabt | undefined
export const loadWabt = async (): Promise<void> => {
  wabtInstance ??= await wabt()
}

/** The binary of a module case, or why there is none. */
const assemble = (m: WastModule): { readonly bytes: Uint8Array<ArrayBuffer> } | { readonly skip: string } => {
  if (m.form === "instance") return { skip: "module instance of a definition" }
  if (m.form === "binary") return { bytes: new Uint8Array(m.bytes) }
  const w = wabtInstance as Wabt
  let parsed: ReturnType<Wabt["parseWat"]> | undefined
  try {
    parsed = w.parseWat("spec.wast", m.text, FEATURES)
    return { bytes: new Uint8Array(parsed.toBinary({}).buffer) }
  } catch {
    return { skip: "wabt cannot assemble the text" }
  } finally {
    parsed?.destroy()
  }
}

/** The rewrite the behaviour check runs: all four — the native engine's three plus the worker engines' dirty-page barrier. */
export const FULL_REWRITE = {
  maxMemoryPages: 65_536,
  exportState: true,
  fuel: { initialFuel: 10n ** 15n },
  dirtyPages: true
} as const

const rewrites = (
  bytes: Uint8Array<ArrayBuffer>
): Array<readonly [string, ReadResult<{ readonly bytes: Uint8Array<ArrayBuffer> }>]> => [
  [
    "fuel",
    (() => {
      const r = instrumentFuel(bytes)
      return r.ok ? { ok: true as const, value: { bytes: r.value } } : r
    })()
  ],
  ["memory cap", capMemory(bytes, 65_536)],
  ["state export", exportState(bytes)],
  [
    "dirty pages",
    (() => {
      const r = instrumentDirtyPages(bytes)
      return r.ok ? { ok: true as const, value: { bytes: r.value } } : r
    })()
  ],
  ["all four", rewriteModule(bytes, FULL_REWRITE)]
]

/** Whether `r` is a typed failure of this package (never an untyped or internal one). */
const typedFailure = (r: ReadResult<unknown>, length: number): string | undefined => {
  if (r.ok) return "accepted"
  if (!(r.error instanceof WasmBinaryError)) return "untyped error"
  if (r.error.reason.startsWith("internal error")) return r.error.message
  if (r.error.offset < 0 || r.error.offset > length) return `offset ${r.error.offset} outside the module`
  return undefined
}

interface Pair {
  readonly original: WebAssembly.Instance
  readonly rewritten: WebAssembly.Instance
}

/** Checks one script; returns the failures (empty when the reader, rewriters and V8 agree everywhere). */
export const checkScript = (file: string, source: string, tally: Tally): Array<string> => {
  const failures: Array<string> = []
  const { commands, bytes: src } = readScript(source)
  const instances = new Map<string, Pair | string>() // by module id; a string is why it cannot run
  let current: Pair | string = "no module yet"
  const registered = new Map<string, Pair>() // by registered name

  const where = (e: SExpr): string => (e.kind === "list" ? `${file}@${e.start}` : file)

  const malformedOrInvalid = (category: "malformed" | "invalid", e: SExpr): void => {
    const moduleExpr = (e as Extract<SExpr, { kind: "list" }>).items[1] as SExpr
    const m = toModule(moduleExpr, src)
    const cat = `${category} (${m.form === "binary" ? "binary" : "text"})`
    const a = assemble(m)
    if ("skip" in a) {
      tally.add(
        cat,
        category === "malformed" && m.form !== "binary"
          ? "skipped: text-format malformation, wabt refuses the text (no binary exists)"
          : `skipped: ${a.skip}`
      )
      return
    }
    const bytes = a.bytes
    if (WebAssembly.validate(bytes)) {
      // Only text cases get here: wabt assembled text the spec calls malformed (a text rule wabt
      // does not enforce), or an invalid module valid in V8 11.3.
      tally.add(
        cat,
        category === "malformed"
          ? "skipped: wabt assembles text the spec calls malformed (a text-only rule)"
          : "skipped: V8 11.3 accepts it (rule newer than Node 20)"
      )
      if (m.form === "binary") failures.push(`${where(moduleExpr)}: V8 accepts a binary assert_${category} module`)
      return
    }
    const read = readModule(bytes)
    const readProblem = typedFailure(read, bytes.length)
    if (category === "malformed" && m.form === "binary") {
      if (readProblem !== undefined) {
        failures.push(`${where(moduleExpr)}: reader on assert_malformed: ${readProblem}`)
        tally.add(cat, "reader disagrees")
        return
      }
      const expected = (e as Extract<SExpr, { kind: "list" }>).items[2]
      const message = expected?.kind === "string" ? Buffer.from(expected.bytes).toString("utf8") : ""
      const error = (read as { readonly error: WasmBinaryError }).error
      tally.add(
        "malformed (binary): the reader's reason",
        error.reason.startsWith(message) || message.startsWith(error.reason)
          ? `kind ${error.kind}, the spec interpreter's message`
          : `kind ${error.kind}, another message (informational)`
      )
    } else if (readProblem !== undefined && readProblem !== "accepted") {
      failures.push(`${where(moduleExpr)}: reader: ${readProblem}`)
      return
    }
    for (const [name, r] of rewrites(bytes)) {
      const problem = typedFailure(r, bytes.length)
      if (problem !== undefined) {
        failures.push(`${where(moduleExpr)}: ${name} rewrite of an assert_${category} module: ${problem}`)
        tally.add(cat, "rewriter disagrees")
        return
      }
    }
    tally.add(
      cat,
      read.ok
        ? "agreed (reader accepts: a type error only V8 sees; V8 and the rewriters refuse)"
        : "agreed (reader, V8 and the rewriters refuse)"
    )
  }

  /** A module that must be valid (module command, assert_unlinkable, assert_trap on instantiation). */
  const validModule = (moduleExpr: SExpr, instantiate: "run" | "unlinkable" | "trap"): Pair | string => {
    const m = toModule(moduleExpr, src)
    const cat = "valid"
    const a = assemble(m)
    if ("skip" in a) {
      tally.add(cat, `skipped: ${a.skip}`)
      return a.skip
    }
    const bytes = a.bytes
    const read = readModule(bytes)
    if (!WebAssembly.validate(bytes)) {
      // A feature V8 11.3 does not run: the reader must say unsupported (or accept, when the feature is in bodies it does not type).
      const rewritten = rewriteModule(bytes, FULL_REWRITE)
      if (rewritten.ok) failures.push(`${where(moduleExpr)}: rewriter accepts a module V8 refuses`)
      if (
        !read.ok &&
        read.error.kind !== "unsupported" &&
        m.form !== "binary" &&
        m.form !== "instance" &&
        /\(ref\s/.test(m.text)
      ) {
        // wabt 1.0.39 parses typed references `(ref $t)` but encodes them as malformed bytes (0xa4 …)
        tally.add(cat, "skipped: wabt mis-encodes typed references (ref $t) of this text module")
        return "wabt mis-encodes typed references"
      }
      if (!read.ok && read.error.kind !== "unsupported") {
        failures.push(
          `${where(moduleExpr)}: reader calls a spec-valid module ${read.error.kind}: ${read.error.message}`
        )
      }
      tally.add(
        cat,
        read.ok
          ? "not in V8 11.3 (reader accepts, rewriter refuses)"
          : `not in V8 11.3: reader says unsupported ${read.error.feature}`
      )
      return "not in V8 11.3"
    }
    if (!read.ok) {
      failures.push(`${where(moduleExpr)}: reader refuses a module V8 validates: ${read.error.message}`)
      tally.add(cat, "reader disagrees")
      return "reader refused"
    }
    let rewritten: Uint8Array<ArrayBuffer> | undefined
    for (const [name, r] of rewrites(bytes)) {
      if (!r.ok) {
        failures.push(`${where(moduleExpr)}: ${name} rewrite refuses a valid module: ${r.error.message}`)
        tally.add(cat, "rewriter disagrees")
        return "rewrite refused"
      }
      if (!WebAssembly.validate(r.value.bytes)) {
        failures.push(`${where(moduleExpr)}: ${name} rewrite output does not validate`)
        tally.add(cat, "rewriter disagrees")
        return "rewrite invalid"
      }
      rewritten = r.value.bytes
    }
    tally.add(cat, "agreed (reader accepts, every rewrite validates)")
    if (instantiate === "unlinkable") return "unlinkable"
    const imports = WebAssembly.Module.imports(new WebAssembly.Module(bytes))
    const foreign = imports.find((i) => i.module !== "spectest" && !registered.has(i.module))
    if (foreign !== undefined) {
      tally.add("instantiation", "skipped: imports a module the script did not register")
      return "imports an unregistered module"
    }
    const importsOf = (side: keyof Pair): WebAssembly.Imports => {
      const out: Record<string, WebAssembly.ModuleImports> = { spectest: spectest() }
      for (const [name, pair] of registered) out[name] = pair[side].exports
      return out
    }
    const o = outcomeOf(() => new WebAssembly.Instance(new WebAssembly.Module(bytes), importsOf("original")))
    const w = outcomeOf(() => instantiateMetered(rewritten as Uint8Array<ArrayBuffer>, importsOf("rewritten")))
    const same = sameOutcome(
      o.kind === "value" ? { kind: "value", value: 0 } : o,
      w.kind === "value" ? { kind: "value", value: 0 } : w
    )
    if (!same) {
      failures.push(
        `${where(moduleExpr)}: instantiation differs: original ${showOutcome(o)}, rewritten ${showOutcome(w)}`
      )
      tally.add("instantiation", "differs")
      return "instantiation differs"
    }
    tally.add(
      "instantiation",
      instantiate === "trap" ? (o.kind === "trap" ? "agreed (both trap)" : "agreed (both fail)") : "agreed"
    )
    if (o.kind !== "value" || w.kind !== "value") return "instantiation failed"
    return { original: o.value as WebAssembly.Instance, rewritten: w.value as WebAssembly.Instance }
  }

  const action = (e: SExpr, expect: string): void => {
    const cat = "actions (original vs rewritten)"
    if (e.kind !== "list") return
    const kind = head(e)
    let k = 1
    const idAtom = e.items[k]
    let target: Pair | string = current
    if (idAtom?.kind === "atom" && idAtom.text.startsWith("$")) {
      target = instances.get(idAtom.text) ?? "unknown module id"
      k++
    }
    if (typeof target === "string") {
      tally.add(cat, `skipped: module not run (${target})`)
      return
    }
    const nameExpr = e.items[k++]
    if (nameExpr?.kind !== "string") return
    const name = Buffer.from(nameExpr.bytes).toString("utf8")
    const pair = target
    if (kind === "get") {
      const read = (i: WebAssembly.Instance): Outcome =>
        outcomeOf(() => (i.exports[name] as WebAssembly.Global | undefined)?.value)
      compare(read(pair.original), read(pair.rewritten), e)
      return
    }
    if (kind !== "invoke") {
      tally.add(cat, `skipped: action ${kind}`)
      return
    }
    const args: Array<unknown> = []
    for (const a of e.items.slice(k)) {
      const v = constValue(a)
      if ("skip" in v) {
        tally.add(cat, `skipped: ${v.skip}`)
        return
      }
      args.push(v.value)
    }
    const call = (i: WebAssembly.Instance, fuel: boolean): Outcome =>
      outcomeOf(() => {
        if (fuel) (i.exports[FUEL_EXPORT] as WebAssembly.Global).value = 10n ** 15n
        const f = i.exports[name] as (...xs: Array<unknown>) => unknown
        return f(...args)
      })
    const o = call(pair.original, false)
    const w = call(pair.rewritten, true)
    if (o.kind === "error" && /v128|BigInt|TypeError/.test(o.message)) {
      tally.add(cat, "skipped: signature has v128 or a type the JS API cannot pass")
      return
    }
    compare(o, w, e, expect)
  }

  const compare = (o: Outcome, w: Outcome, e: SExpr, expect = "get"): void => {
    const cat = "actions (original vs rewritten)"
    if (sameOutcome(o, w)) tally.add(cat, `agreed (${expect})`)
    else {
      tally.add(cat, "differs")
      failures.push(`${where(e)}: original ${showOutcome(o)}, rewritten ${showOutcome(w)}`)
    }
  }

  for (const c of commands) {
    const h = head(c)
    if (c.kind !== "list") continue
    switch (h) {
      case "module": {
        const m = toModule(c, src)
        if (m.form === "instance") {
          tally.add("valid", "skipped: module instance of a definition")
          current = "module instance"
          if (m.id !== undefined) instances.set(m.id, current)
          break
        }
        current = validModule(c, m.form !== "binary" && m.definition ? "unlinkable" : "run")
        if (m.id !== undefined) instances.set(m.id, current)
        break
      }
      case "register": {
        const s = c.items[1]
        const id = c.items[2]
        const pair = id?.kind === "atom" ? instances.get(id.text) : current
        if (s?.kind === "string" && pair !== undefined && typeof pair !== "string") {
          registered.set(Buffer.from(s.bytes).toString("utf8"), pair)
        }
        break
      }
      case "assert_malformed":
        malformedOrInvalid("malformed", c)
        break
      case "assert_invalid":
        malformedOrInvalid("invalid", c)
        break
      case "assert_unlinkable":
        validModule(c.items[1] as SExpr, "unlinkable")
        break
      case "assert_trap":
      case "assert_return":
      case "assert_exhaustion":
      case "assert_exception": {
        const inner = c.items[1] as SExpr
        if (head(inner) === "module") validModule(inner, "trap")
        else action(inner, h)
        break
      }
      case "invoke":
      case "get":
        action(c, h)
        break
      default:
        tally.add(
          "other commands",
          h !== undefined && !h.startsWith("@") && !h.startsWith("assert")
            ? `skipped: top-level ${h} (an inline module's fields)`
            : `skipped: ${h ?? "?"} (annotation or unknown command)`
        )
    }
  }
  return failures
}
