/**
 * A compact binary encoding of the values that cross the host ↔ worker call
 * path (requests, replies, host calls), written straight into the channel's
 * `SharedArrayBuffer` and read back on the other thread (`CallChannel.ts`).
 *
 * Wire values: `undefined`, `null`, booleans, numbers (an int32 in 4 bytes,
 * otherwise an IEEE 754 f64 in 8), bigints (i64, 8 bytes, two's complement:
 * values are wrapped to 64 bits as WebAssembly's `ToBigInt64` does), strings
 * (UTF-8), `Uint8Array`s (raw bytes) and arrays of wire values. Messages are
 * positional arrays (`Protocol.ts`), never objects, so nothing but the values
 * is encoded. Anything else (a `WebAssembly.Module`, a shared
 * `WebAssembly.Memory`, an object) is `Unencodable`; so is a message larger
 * than the buffer (`Overflow`). The channel then posts that message
 * (structured clone) instead.
 *
 * Short ASCII strings (≤ 64 characters: export names, most reasons) are
 * written byte by byte. Other strings are encoded in place with `TextEncoder.encodeInto` where the realm
 * accepts a view of a `SharedArrayBuffer` (Node); browsers refuse one
 * (Encoding §"TextEncoder.encodeInto": `[AllowShared]` is absent), so there a
 * string is encoded, then copied. Probed once per realm.
 *
 * Little-endian throughout. Platform-free: no imports.
 *
 * @since 0.2.0
 */

/** A value the codec can carry. */
export type Wire = undefined | null | boolean | number | bigint | string | Uint8Array | ReadonlyArray<Wire>

const T_UNDEFINED = 0
const T_NULL = 1
const T_FALSE = 2
const T_TRUE = 3
const T_I32 = 4
const T_F64 = 5
const T_I64 = 6
const T_STRING = 7
const T_BYTES = 8
const T_ARRAY = 9

/** Thrown when a message does not fit in the buffer. */
export class Overflow extends Error {
  constructor() {
    super("message larger than the channel buffer")
  }
}

/** Thrown for a value the codec cannot encode (it goes through `postMessage` instead). */
export class Unencodable extends Error {}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** `TextEncoder.encodeInto` accepts a view of a `SharedArrayBuffer` in this realm (Node: yes; browsers: no). */
const encodeIntoShared = ((): boolean => {
  if (typeof SharedArrayBuffer !== "function") return false
  try {
    encoder.encodeInto("", new Uint8Array(new SharedArrayBuffer(1)))
    return true
  } catch {
    return false
  }
})()

// The encoder's and decoder's cursor: module state, so a message costs no closure allocation (both run
// synchronously, never re-entered: a value is encoded or decoded to its end before the next one starts).
let wBytes: Uint8Array = new Uint8Array(0)
let wView: DataView = new DataView(new ArrayBuffer(0))
let wAt = 0
let wEnd = 0

const need = (n: number): void => {
  if (wAt + n > wEnd) throw new Overflow()
}

/** Writes a short string's UTF-8 in place when it is ASCII (export names, reasons); false (nothing written) otherwise. */
const writeAscii = (v: string): boolean => {
  const n = v.length
  if (n > 64) return false
  for (let i = 0; i < n; i++) if (v.charCodeAt(i) >= 0x80) return false
  need(5 + n)
  const bytes = wBytes
  bytes[wAt] = T_STRING
  wView.setUint32(wAt + 1, n, true)
  let at = wAt + 5
  for (let i = 0; i < n; i++) bytes[at++] = v.charCodeAt(i)
  wAt = at
  return true
}

const writeValue = (v: unknown): void => {
  switch (typeof v) {
    case "undefined":
      need(1)
      wBytes[wAt++] = T_UNDEFINED
      return
    case "boolean":
      need(1)
      wBytes[wAt++] = v ? T_TRUE : T_FALSE
      return
    case "number":
      if ((v | 0) === v && !Object.is(v, -0)) {
        need(5)
        wBytes[wAt] = T_I32
        wView.setInt32(wAt + 1, v, true)
        wAt += 5
      } else {
        need(9)
        wBytes[wAt] = T_F64
        wView.setFloat64(wAt + 1, v, true)
        wAt += 9
      }
      return
    case "bigint":
      need(9)
      wBytes[wAt] = T_I64
      wView.setBigInt64(wAt + 1, BigInt.asIntN(64, v), true)
      wAt += 9
      return
    case "string": {
      // short ASCII (most strings here): byte by byte, no host call (`encodeInto` costs ≈ 0.2–0.5 µs on a SAB view)
      if (writeAscii(v)) return
      if (!encodeIntoShared) {
        const utf8 = encoder.encode(v)
        need(5 + utf8.byteLength)
        wBytes[wAt] = T_STRING
        wView.setUint32(wAt + 1, utf8.byteLength, true)
        wBytes.set(utf8, wAt + 5)
        wAt += 5 + utf8.byteLength
        return
      }
      need(5)
      const lengthAt = wAt + 1
      wBytes[wAt] = T_STRING
      wAt += 5
      const { read, written } = encoder.encodeInto(v, wBytes.subarray(wAt, wEnd))
      if (read !== v.length) throw new Overflow()
      wView.setUint32(lengthAt, written, true)
      wAt += written
      return
    }
    case "object": {
      if (v === null) {
        need(1)
        wBytes[wAt++] = T_NULL
        return
      }
      if (v instanceof Uint8Array) {
        need(5 + v.byteLength)
        wBytes[wAt] = T_BYTES
        wView.setUint32(wAt + 1, v.byteLength, true)
        wBytes.set(v, wAt + 5)
        wAt += 5 + v.byteLength
        return
      }
      if (Array.isArray(v)) {
        need(5)
        wBytes[wAt] = T_ARRAY
        wView.setUint32(wAt + 1, v.length, true)
        wAt += 5
        for (let i = 0; i < v.length; i++) writeValue(v[i])
        return
      }
      throw new Unencodable(`cannot encode ${Object.prototype.toString.call(v)}`)
    }
    default:
      throw new Unencodable(`cannot encode a ${typeof v}`)
  }
}

/** Encodes `value` into `bytes[start, end)`; returns the offset after it. Throws `Overflow` / `Unencodable`. */
export const encode = (value: unknown, bytes: Uint8Array, view: DataView, start: number, end: number): number => {
  wBytes = bytes
  wView = view
  wAt = start
  wEnd = end
  writeValue(value)
  return wAt
}

let rBytes: Uint8Array = new Uint8Array(0)
let rView: DataView = new DataView(new ArrayBuffer(0))
let rAt = 0
let rEnd = 0

const readValue = (): Wire => {
  if (rAt >= rEnd) throw new RangeError("truncated channel message")
  const tag = rBytes[rAt++]
  switch (tag) {
    case T_UNDEFINED:
      return undefined
    case T_NULL:
      return null
    case T_FALSE:
      return false
    case T_TRUE:
      return true
    case T_I32: {
      const v = rView.getInt32(rAt, true)
      rAt += 4
      return v
    }
    case T_F64: {
      const v = rView.getFloat64(rAt, true)
      rAt += 8
      return v
    }
    case T_I64: {
      const v = rView.getBigInt64(rAt, true)
      rAt += 8
      return v
    }
    case T_STRING: {
      const length = rView.getUint32(rAt, true)
      rAt += 4
      const s = decodeString(rBytes, rAt, length)
      rAt += length
      return s
    }
    case T_BYTES: {
      const length = rView.getUint32(rAt, true)
      rAt += 4
      const b = rBytes.slice(rAt, rAt + length)
      rAt += length
      return b
    }
    case T_ARRAY: {
      const length = rView.getUint32(rAt, true)
      rAt += 4
      // an empty array (most diffs' page and global lists, a void call's results): one shared frozen array
      if (length === 0) return EMPTY
      const items: Array<Wire> = new Array(length)
      for (let i = 0; i < length; i++) items[i] = readValue()
      return items
    }
    default:
      throw new RangeError(`bad channel message tag ${tag}`)
  }
}

/** Decodes the value at `bytes[start, end)`. Byte arrays are copied out (the buffer is reused). */
export const decode = (bytes: Uint8Array, view: DataView, start: number, end: number): Wire => {
  rBytes = bytes
  rView = view
  rAt = start
  rEnd = end
  return readValue()
}

/** What every empty array decodes to: frozen, shared (decoded messages are only read). */
const EMPTY: ReadonlyArray<Wire> = Object.freeze([])

/** Slots of the short-string cache (a power of 2). */
const STRINGS = 64
/**
 * Short ASCII strings decoded lately, by a hash of their length and first and
 * last bytes: the same export name in every request of a hot loop decodes to
 * the string already made (a byte compare, no string building).
 */
const recent: Array<string | undefined> = new Array(STRINGS)

const decodeString = (bytes: Uint8Array, at: number, length: number): string => {
  // short ASCII (export names, messages): no TextDecoder round trip
  if (length <= 64) {
    const slot = length === 0 ? 0 : (length * 31 + bytes[at]! * 7 + bytes[at + length - 1]!) & (STRINGS - 1)
    const seen = recent[slot]
    if (seen !== undefined && seen.length === length) {
      let i = 0
      while (i < length && seen.charCodeAt(i) === bytes[at + i]) i++
      if (i === length) return seen
    }
    let s = ""
    for (let i = 0; i < length; i++) {
      const c = bytes[at + i]!
      if (c >= 0x80) return decoder.decode(bytes.slice(at, at + length))
      s += String.fromCharCode(c)
    }
    recent[slot] = s
    return s
  }
  return decoder.decode(bytes.slice(at, at + length))
}
