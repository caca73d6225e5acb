/**
 * The result of reading or rewriting module bytes: a value, or the
 * `WasmBinaryError` saying where and why the bytes are malformed. The
 * functions of this package return it instead of throwing.
 *
 * @since 0.1.0
 */
import { WasmBinaryError } from "./WasmBinaryError.js"

/** `{ ok: true, value }` on success, `{ ok: false, error }` on malformed input. */
export type ReadResult<A> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly error: WasmBinaryError }

/** @internal */
export const succeed = <A>(value: A): ReadResult<A> => ({ ok: true, value })

/** @internal */
export const fail = <A = never>(error: WasmBinaryError): ReadResult<A> => ({ ok: false, error })

/**
 * Runs a reader that throws `WasmBinaryError` and turns any exception into a
 * failed result. Unexpected exceptions (a bug, a stack overflow) become a
 * `WasmBinaryError` at `offset()`, the reader's position when it happened.
 *
 * @internal
 */
export const attempt = <A>(run: () => A, offset: () => number): ReadResult<A> => {
  try {
    return succeed(run())
  } catch (e) {
    if (e instanceof WasmBinaryError) return fail(e)
    let at = 0
    try {
      at = offset()
    } catch {
      at = 0
    }
    return fail(new WasmBinaryError(at, `internal error: ${e instanceof Error ? e.message : String(e)}`))
  }
}
