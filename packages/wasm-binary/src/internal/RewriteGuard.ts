/**
 * The rewriters' contract with the host's validator: a rewrite is never
 * applied to a module that does not validate, and every rewritten output is
 * checked. Where a `WebAssembly` global exists (every JS engine the runtime
 * runs on), its `validate` is the oracle: an input it refuses is refused
 * (`kind: "invalid"`, with V8's reason and offset when a compile gives
 * them), and an output it refuses is reported as a rewriter bug instead of
 * being returned. Without a `WebAssembly` global only the reader's checks
 * apply.
 *
 * This closes the escape of issue 12 item 2: an invalid module (a
 * `local.set` one past the function's locals, a `global.get` one past the
 * module's globals) that the rewrite would otherwise turn into a valid one
 * whose loop refills its own fuel.
 *
 * @internal
 */
import { readModule } from "../ModuleReader.js"
import { attempt, fail, type ReadResult } from "../ReadResult.js"
import type { ModuleInfo } from "../Types.js"
import { WasmBinaryError } from "../WasmBinaryError.js"

interface HostWebAssembly {
  readonly validate: (bytes: Uint8Array<ArrayBuffer>) => boolean
  readonly Module: new (bytes: Uint8Array<ArrayBuffer>) => unknown
}

const host = (): HostWebAssembly | undefined => {
  const wa = (globalThis as { readonly WebAssembly?: Partial<HostWebAssembly> }).WebAssembly
  return typeof wa?.validate === "function" && typeof wa.Module === "function" ? (wa as HostWebAssembly) : undefined
}

const arrayBacked = (bytes: Uint8Array): Uint8Array<ArrayBuffer> =>
  bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes)

/**
 * Whether the host validates `bytes`: `undefined` when it does, else the
 * `WasmBinaryError` (kind `"invalid"`) with the host's reason and byte
 * offset when a synchronous compile reports them (V8: `… @+offset`).
 */
export const hostRefusal = (bytes: Uint8Array, what: string): WasmBinaryError | undefined => {
  const wa = host()
  if (wa === undefined) return undefined
  const view = arrayBacked(bytes)
  if (wa.validate(view)) return undefined
  let detail = "WebAssembly.validate refuses it"
  let offset = 0
  try {
    new wa.Module(view)
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e)
    const at = /@\+(\d+)/.exec(message)
    if (at !== null) {
      offset = Math.min(Number(at[1]), bytes.length)
      detail = message.replace(/^WebAssembly\.Module\(\): /, "").replace(/\s*@\+\d+$/, "")
    }
  }
  return new WasmBinaryError(offset, `${what} does not validate: ${detail}`, "invalid")
}

/**
 * Checks a rewrite's input: `readModule` must accept it (its typed error
 * otherwise) and the host must validate it. Returns the read module.
 */
export const checkInput = (bytes: Uint8Array): ReadResult<ModuleInfo> => {
  const read = readModule(bytes)
  if (!read.ok) return read
  const refusal = hostRefusal(bytes, "module")
  return refusal === undefined ? read : fail(refusal)
}

/** Checks a rewrite's output: the host must validate it (a refusal is a rewriter bug, reported typed). */
export const checkOutput = <A>(result: ReadResult<A>, bytesOf: (a: A) => Uint8Array): ReadResult<A> => {
  if (!result.ok) return result
  return attempt(
    () => {
      const refusal = hostRefusal(bytesOf(result.value), "rewritten module (a rewriter bug)")
      if (refusal !== undefined) throw refusal
      return result.value
    },
    () => 0
  )
}
