/**
 * Values passed to and returned from WebAssembly exports, and their checking
 * against an export's signature.
 *
 * JavaScript's WebAssembly API silently converts arguments (`"abc"` becomes `0`
 * for an i32, WebAssembly JS API §"ToWebAssemblyValue"); the runtime refuses
 * them instead with `SignatureMismatch`. i64 is a `bigint`; i32/f32/f64 are
 * `number`s; references are any JS value (`null` allowed).
 *
 * @since 0.1.0
 */
import type { FuncType, ValueType } from "@agent-runtime/wasm-binary"

/** A WebAssembly value as seen from JavaScript: i32/f32/f64 `number`, i64 `bigint`, refs `unknown`. */
export type WasmValue = number | bigint | null | object | ((...args: Array<any>) => unknown)

const I32_MIN = -2_147_483_648
const U32_MAX = 4_294_967_295
const I64_MIN = -(2n ** 63n)
const U64_MAX = 2n ** 64n - 1n

/**
 * Why a value does not fit a value type, or `undefined` when it fits.
 * i32 accepts integers in [-2^31, 2^32) (signed or unsigned view); i64 accepts
 * bigints in [-2^63, 2^64); f32/f64 accept any number; `v128` is refused (no JS value).
 */
export const checkValue = (type: ValueType, value: unknown): string | undefined => {
  switch (type) {
    case "i32":
      if (typeof value !== "number") return `expected i32 (number), got ${describe(value)}`
      if (!Number.isInteger(value) || value < I32_MIN || value > U32_MAX) {
        return `expected i32 (integer in [-2^31, 2^32)), got ${value}`
      }
      return undefined
    case "i64":
      if (typeof value !== "bigint") return `expected i64 (bigint), got ${describe(value)}`
      if (value < I64_MIN || value > U64_MAX) return `expected i64 (bigint in [-2^63, 2^64)), got ${value}n`
      return undefined
    case "f32":
    case "f64":
      return typeof value === "number" ? undefined : `expected ${type} (number), got ${describe(value)}`
    case "v128":
      return "v128 values cannot cross the JavaScript boundary (WebAssembly JS API)"
    case "funcref":
      return value === null || typeof value === "function"
        ? undefined
        : `expected funcref (function or null), got ${describe(value)}`
    case "externref":
      return undefined
  }
}

/**
 * Checks `args` against a function type. Returns the first problem as
 * `{ index, message }` (index -1 for an arity error), or `undefined` when all fit.
 */
export const checkArguments = (
  type: FuncType,
  args: ReadonlyArray<unknown>
): { readonly index: number; readonly message: string } | undefined => {
  if (args.length !== type.params.length) {
    return { index: -1, message: `expected ${type.params.length} argument(s), got ${args.length}` }
  }
  for (let i = 0; i < args.length; i++) {
    const message = checkValue(type.params[i]!, args[i])
    if (message !== undefined) return { index: i, message }
  }
  return undefined
}

const describe = (value: unknown): string => {
  if (value === null) return "null"
  if (typeof value === "string") return `string ${JSON.stringify(value.length > 32 ? value.slice(0, 32) + "…" : value)}`
  if (typeof value === "bigint") return `bigint ${value}n`
  if (typeof value === "number") return `number ${value}`
  return typeof value
}
