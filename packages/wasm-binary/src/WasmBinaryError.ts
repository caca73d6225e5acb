/**
 * The one error of this package: a module's bytes do not follow the
 * WebAssembly binary format (core spec §5 "Binary Format"), fail one of the
 * structural checks `readModule` performs, use a feature the target engine
 * (Node 20's V8 11.3) cannot run, or cannot be rewritten safely.
 *
 * @since 0.1.0
 */

/**
 * What kind of problem a `WasmBinaryError` reports:
 *
 * - `"malformed"`: the bytes are not a module in the binary format (spec
 *   §5; the spec suite's `assert_malformed`).
 * - `"invalid"`: well-formed, but breaks a validation rule (spec §3; the
 *   spec suite's `assert_invalid`), e.g. an index out of range, a type
 *   mismatch, or a module `WebAssembly.validate` refuses (rewriters).
 * - `"unsupported"`: well-formed, but uses a feature Node 20's V8 (11.3)
 *   does not run; `feature` names it (see `UnsupportedFeature`).
 */
export type WasmBinaryErrorKind = "malformed" | "invalid" | "unsupported"

/**
 * The features the reader recognises and refuses as unsupported (they are
 * standard or phase-4 proposals that V8 11.3 / Node 20 does not ship):
 * `"memory64"` (64-bit memory limits, flag bit 2), `"gc"` (GC and typed
 * function reference types and instructions: `0xFB` prefix, rec/sub/struct/
 * array types, `ref`/`ref null` value types, `call_ref`, `br_on_null`, …),
 * `"exception handling (exnref)"` (the final encoding: `try_table`,
 * `throw_ref`, `exnref`), `"relaxed SIMD"`, `"multi-memory"` (more than
 * one memory, a memory index in a memarg) and `"extended-const"` (`add`,
 * `sub`, `mul` in constant expressions).
 */
export type UnsupportedFeature =
  | "memory64"
  | "gc"
  | "exception handling (exnref)"
  | "relaxed SIMD"
  | "multi-memory"
  | "extended-const"

/**
 * A malformed, invalid or unsupported module. `offset` is the byte offset,
 * counted from the module's first byte (the `\0asm` magic), where the
 * problem was detected; `reason` is a short text in the wording of the
 * spec's reference interpreter where one exists (e.g. `"section size
 * mismatch"`, `"integer too large"`); `kind` classifies it; `feature` names
 * the unsupported feature when `kind` is `"unsupported"`.
 *
 * The message reads `${reason} at byte ${offset}`.
 */
export class WasmBinaryError extends Error {
  readonly _tag = "WasmBinaryError"
  constructor(
    readonly offset: number,
    readonly reason: string,
    readonly kind: WasmBinaryErrorKind = "malformed",
    readonly feature: UnsupportedFeature | undefined = undefined
  ) {
    super(`${reason} at byte ${offset}`)
    this.name = "WasmBinaryError"
  }
}

/** A `WasmBinaryError` of kind `"unsupported"`: `${feature} is not supported by this engine (…)`. @internal */
export const unsupported = (offset: number, feature: UnsupportedFeature, detail: string): WasmBinaryError =>
  new WasmBinaryError(
    offset,
    `unsupported feature ${feature}: ${detail} (not in Node 20 / V8 11.3)`,
    "unsupported",
    feature
  )
