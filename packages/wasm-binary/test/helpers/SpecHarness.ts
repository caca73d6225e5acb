/**
 * Runs the spec suite's actions against a module and its rewritten form side
 * by side: the `spectest` host module (spec interpreter/host/spectest.ml),
 * argument constants, and outcomes (values or trap kinds) to compare.
 */
import type { SExpr } from "./Wast.js"

/** A fresh `spectest` host module (one per instance, so two instances never share state). */
export const spectest = (): WebAssembly.ModuleImports => {
  const noop = (): void => {}
  return {
    print: noop,
    print_i32: noop,
    print_i64: noop,
    print_f32: noop,
    print_f64: noop,
    print_i32_f32: noop,
    print_f64_f64: noop,
    global_i32: new WebAssembly.Global({ value: "i32" }, 666),
    global_i64: new WebAssembly.Global({ value: "i64" }, 666n),
    global_f32: new WebAssembly.Global({ value: "f32" }, 666.6),
    global_f64: new WebAssembly.Global({ value: "f64" }, 666.6),
    table: new WebAssembly.Table({ initial: 10, maximum: 20, element: "anyfunc" }),
    memory: new WebAssembly.Memory({ initial: 1, maximum: 2 }),
    shared_memory: new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true })
  }
}

/** Why an action cannot be run by this harness, or undefined when it can. */
export type Unrunnable = string

const atomText = (e: SExpr | undefined): string | undefined => (e?.kind === "atom" ? e.text : undefined)

const cleanInt = (s: string): string => s.replace(/_/g, "")

/** An integer literal (decimal or hex, optional sign) as a bigint. */
const intLiteral = (s: string): bigint => {
  const t = cleanInt(s)
  const neg = t.startsWith("-")
  const body = t.replace(/^[+-]/, "")
  const v = BigInt(body)
  return neg ? -v : v
}

/** A float literal (decimal, hex float, inf, nan, nan:0x…) as a JS number (NaN payloads are not kept). */
const floatLiteral = (s: string): number => {
  const t = cleanInt(s)
  const neg = t.startsWith("-")
  const body = t.replace(/^[+-]/, "")
  let v: number
  if (body === "inf") v = Infinity
  else if (body.startsWith("nan")) v = NaN
  else if (/^0x/i.test(body)) {
    const m = /^0x([0-9a-f]*)(?:\.([0-9a-f]*))?(?:p([+-]?\d+))?$/i.exec(body)
    if (m === null) throw new Error(`bad hex float ${s}`)
    const int = m[1] ?? ""
    const frac = m[2] ?? ""
    const digits = `${int}${frac}` || "0"
    const exp = Number(m[3] ?? "0") - 4 * frac.length
    // Scale in two steps so neither the mantissa nor the power overflows early.
    const mant = Number(BigInt(`0x${digits}`))
    v =
      exp < -1000
        ? mant * 2 ** (exp + 1000) * 2 ** -1000
        : exp > 1000
          ? mant * 2 ** (exp - 1000) * 2 ** 1000
          : mant * 2 ** exp
  } else v = Number(body)
  return neg ? -v : v
}

/** A constant of an action's arguments as a JS value, or an `Unrunnable` reason. */
export const constValue = (e: SExpr): { readonly value: unknown } | { readonly skip: Unrunnable } => {
  if (e.kind !== "list") return { skip: "argument is not a constant" }
  const op = atomText(e.items[0])
  const arg = atomText(e.items[1])
  switch (op) {
    case "i32.const":
      return { value: Number(BigInt.asIntN(32, intLiteral(arg ?? "0"))) }
    case "i64.const":
      return { value: BigInt.asIntN(64, intLiteral(arg ?? "0")) }
    case "f32.const":
    case "f64.const":
      return { value: floatLiteral(arg ?? "0") }
    case "ref.null":
      return { value: null }
    case "ref.extern":
      return { value: { externref: arg } }
    default:
      return { skip: `${op} arguments (v128, GC references) cannot cross the JS API` }
  }
}

/** The outcome of one action: its results, or how it failed. */
export type Outcome =
  | { readonly kind: "value"; readonly value: unknown }
  | { readonly kind: "trap"; readonly message: string }
  | { readonly kind: "exhaustion" }
  | { readonly kind: "exception" }
  | { readonly kind: "error"; readonly message: string }

/** Runs `call`, turning what it throws into an `Outcome`. */
export const outcomeOf = (call: () => unknown): Outcome => {
  try {
    return { kind: "value", value: call() }
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) return { kind: "trap", message: e.message }
    if (e instanceof RangeError && /call stack/i.test(e.message)) return { kind: "exhaustion" }
    if (typeof WebAssembly.Exception === "function" && e instanceof WebAssembly.Exception) return { kind: "exception" }
    return { kind: "error", message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) }
  }
}

const sameValue = (a: unknown, b: unknown): boolean => {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => sameValue(x, b[i]))
  if (typeof a === "number" && typeof b === "number") return Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b))
  if (typeof a === "function" && typeof b === "function") return true // funcref results: distinct instances
  return Object.is(a, b)
}

/** Whether two outcomes are the same (values equal, or the same kind of failure with the same trap message). */
export const sameOutcome = (a: Outcome, b: Outcome): boolean => {
  if (a.kind !== b.kind) return false
  if (a.kind === "value" && b.kind === "value") return sameValue(a.value, b.value)
  if (a.kind === "trap" && b.kind === "trap") return a.message === b.message
  if (a.kind === "error" && b.kind === "error") return a.message === b.message
  return true
}

export const showOutcome = (o: Outcome): string =>
  o.kind === "value"
    ? `value ${JSON.stringify(o.value, (_, v) => (typeof v === "bigint" ? `${v}n` : v))}`
    : o.kind === "trap" || o.kind === "error"
      ? `${o.kind} ${o.message}`
      : o.kind
