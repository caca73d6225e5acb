/**
 * Checks that an echo really echoed, so a broken plugin or call path fails
 * the run instead of timing nothing.
 *
 * @since 0.1.0
 */
export const ExtismEcho = {
  check: (input: Uint8Array, output: Uint8Array | undefined): void => {
    if (output === undefined || output.byteLength !== input.byteLength || output.some((b, i) => b !== input[i])) {
      throw new Error(
        `echo returned ${output === undefined ? "nothing" : `${output.byteLength} different bytes`}, expected the ${input.byteLength} input bytes`
      )
    }
  }
}
