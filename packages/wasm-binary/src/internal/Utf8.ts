/**
 * UTF-8 for WebAssembly names (core spec §5.2.4 "Names"). Uses the
 * web-standard `TextDecoder` / `TextEncoder` globals, declared here
 * structurally so the package needs no DOM or Node typings.
 *
 * @internal
 */

declare const TextDecoder: new (
  label: "utf-8",
  options: { readonly fatal: boolean; readonly ignoreBOM: boolean }
) => { decode(input: Uint8Array): string }
declare const TextEncoder: new () => { encode(input: string): Uint8Array }

const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true })
const encoder = new TextEncoder()

/** Decodes strict UTF-8; returns `undefined` on a malformed sequence. */
export const decodeUtf8 = (bytes: Uint8Array): string | undefined => {
  // Fast path: short ASCII names are the overwhelming majority.
  let ascii = bytes.length <= 256
  for (let i = 0; ascii && i < bytes.length; i++) {
    if ((bytes[i] as number) >= 0x80) {
      ascii = false
      break
    }
  }
  if (ascii) return String.fromCharCode.apply(null, Array.from(bytes))
  try {
    return decoder.decode(bytes)
  } catch {
    return undefined
  }
}

/** Encodes a string as UTF-8 (lone surrogates become U+FFFD). */
export const encodeUtf8 = (text: string): Uint8Array => encoder.encode(text)
