/**
 * Base64 (RFC 4648 §4, with padding) without platform APIs.
 *
 * @internal
 */
const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
const LOOKUP = new Int16Array(128).fill(-1)
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i

/** Encodes bytes as base64 text. */
export const toBase64 = (bytes: Uint8Array): string => {
  const parts: Array<string> = []
  let chunk = ""
  for (let i = 0; i < bytes.length; i += 3) {
    const a = bytes[i]!
    const b = i + 1 < bytes.length ? bytes[i + 1]! : 0
    const c = i + 2 < bytes.length ? bytes[i + 2]! : 0
    const n = (a << 16) | (b << 8) | c
    chunk +=
      ALPHABET[n >> 18]! +
      ALPHABET[(n >> 12) & 63]! +
      (i + 1 < bytes.length ? ALPHABET[(n >> 6) & 63]! : "=") +
      (i + 2 < bytes.length ? ALPHABET[n & 63]! : "=")
    if (chunk.length >= 8192) {
      parts.push(chunk)
      chunk = ""
    }
  }
  parts.push(chunk)
  return parts.join("")
}

/** Decodes base64 text; `undefined` when it is not canonical padded base64. */
export const fromBase64 = (text: unknown): Uint8Array | undefined => {
  if (typeof text !== "string" || text.length % 4 !== 0) return undefined
  const padding = text.endsWith("==") ? 2 : text.endsWith("=") ? 1 : 0
  const out = new Uint8Array((text.length / 4) * 3 - padding)
  let o = 0
  for (let i = 0; i < text.length; i += 4) {
    let n = 0
    for (let j = 0; j < 4; j++) {
      const ch = text.charCodeAt(i + j)
      const last = i + 4 === text.length
      if (ch === 61 /* = */ && last && j >= 4 - padding) {
        n <<= 6
        continue
      }
      const v = ch < 128 ? LOOKUP[ch]! : -1
      if (v < 0) return undefined
      n = (n << 6) | v
    }
    if (o < out.length) out[o++] = (n >> 16) & 255
    if (o < out.length) out[o++] = (n >> 8) & 255
    if (o < out.length) out[o++] = n & 255
  }
  return out
}
