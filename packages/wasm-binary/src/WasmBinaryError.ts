/**
 * The one error of this package: a module's bytes do not follow the
 * WebAssembly binary format (core spec §5 "Binary Format") or fail one of the
 * structural checks `readModule` performs.
 *
 * @since 0.1.0
 */

/**
 * A malformed or invalid module. `offset` is the byte offset, counted from
 * the module's first byte (the `\0asm` magic), where the problem was detected;
 * `reason` is a short text in the wording of the spec's reference interpreter
 * where one exists (e.g. `"section size mismatch"`, `"integer too large"`).
 *
 * The message reads `${reason} at byte ${offset}`.
 */
export class WasmBinaryError extends Error {
  readonly _tag = "WasmBinaryError"
  constructor(
    readonly offset: number,
    readonly reason: string
  ) {
    super(`${reason} at byte ${offset}`)
    this.name = "WasmBinaryError"
  }
}
