/**
 * Byte encodings used by the signature format: lowercase hex, canonical
 * base64 (RFC 4648 §4, with padding) and strict UTF-8.
 *
 * Written here (not `atob`/`Buffer`) so the package needs no platform API and
 * so decoding is *strict*: a base64 string is accepted only in its one
 * canonical spelling, which keeps every byte of a signature meaningful.
 *
 * @internal
 */

const HEX = "0123456789abcdef"

/** Lowercase hex of `bytes`. */
export const toHex = (bytes: Uint8Array): string => {
  let out = ""
  for (const b of bytes) out += HEX[b >> 4]! + HEX[b & 15]!
  return out
}

/** Decodes lowercase or uppercase hex; `undefined` when not hex or of odd length. */
export const fromHex = (hex: string): Uint8Array | undefined => {
  if (hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return undefined
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16)
  return out
}

const B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

/** Standard base64 with `=` padding (RFC 4648 §4). */
export const toBase64 = (bytes: Uint8Array): string => {
  let out = ""
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!
    const b = bytes[i + 1]
    const c = bytes[i + 2]
    const n = (a << 16) | ((b ?? 0) << 8) | (c ?? 0)
    out += B64[(n >> 18) & 63]! + B64[(n >> 12) & 63]!
    out += b === undefined ? "=" : B64[(n >> 6) & 63]!
    out += c === undefined ? "=" : B64[n & 63]!
  }
  return out
}

/**
 * Decodes standard padded base64. Returns `undefined` unless `text` is the
 * canonical encoding of its bytes (so `toBase64(fromBase64(s)) === s`): no
 * whitespace, no missing padding, no non-zero trailing bits.
 */
export const fromBase64 = (text: string): Uint8Array | undefined => {
  if (text.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return undefined
  const pad = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0
  const out = new Uint8Array((text.length / 4) * 3 - pad)
  let o = 0
  for (let i = 0; i < text.length; i += 4) {
    let n = 0
    for (let j = 0; j < 4; j++) {
      const ch = text[i + j]!
      n = (n << 6) | (ch === "=" ? 0 : B64.indexOf(ch))
    }
    if (o < out.length) out[o++] = (n >> 16) & 255
    if (o < out.length) out[o++] = (n >> 8) & 255
    if (o < out.length) out[o++] = n & 255
  }
  return toBase64(out) === text ? out : undefined
}

interface TextEncoderLike {
  encode(text: string): Uint8Array
}
interface TextDecoderLike {
  decode(bytes: Uint8Array): string
}
interface TextCodecGlobals {
  readonly TextEncoder: new () => TextEncoderLike
  readonly TextDecoder: new (label: string, options: { fatal: boolean }) => TextDecoderLike
}

// TextEncoder / TextDecoder exist in every host we target (Node ≥ 11, browsers, workerd);
// declared structurally so the package compiles without DOM or Node typings.
const codecs = globalThis as unknown as TextCodecGlobals
const encoder = new codecs.TextEncoder()
const decoder = new codecs.TextDecoder("utf-8", { fatal: true })

/** UTF-8 bytes of `text`. */
export const utf8 = (text: string): Uint8Array => encoder.encode(text)

/** Strict UTF-8 decoding; `undefined` on malformed UTF-8. */
export const fromUtf8 = (bytes: Uint8Array): string | undefined => {
  try {
    return decoder.decode(bytes)
  } catch {
    return undefined
  }
}
