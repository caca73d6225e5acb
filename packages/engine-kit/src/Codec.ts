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
 * Strings are encoded in place with `TextEncoder.encodeInto` where the realm
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

/** Encodes `value` into `bytes[start, end)`; returns the offset after it. Throws `Overflow` / `Unencodable`. */
export const encode = (value: unknown, bytes: Uint8Array, view: DataView, start: number, end: number): number => {
  let at = start
  const need = (n: number) => {
    if (at + n > end) throw new Overflow()
  }
  const write = (v: unknown): void => {
    switch (typeof v) {
      case "undefined":
        need(1)
        bytes[at++] = T_UNDEFINED
        return
      case "boolean":
        need(1)
        bytes[at++] = v ? T_TRUE : T_FALSE
        return
      case "number":
        if ((v | 0) === v && !Object.is(v, -0)) {
          need(5)
          bytes[at] = T_I32
          view.setInt32(at + 1, v, true)
          at += 5
        } else {
          need(9)
          bytes[at] = T_F64
          view.setFloat64(at + 1, v, true)
          at += 9
        }
        return
      case "bigint":
        need(9)
        bytes[at] = T_I64
        view.setBigInt64(at + 1, BigInt.asIntN(64, v), true)
        at += 9
        return
      case "string": {
        if (!encodeIntoShared) {
          const utf8 = encoder.encode(v)
          need(5 + utf8.byteLength)
          bytes[at] = T_STRING
          view.setUint32(at + 1, utf8.byteLength, true)
          bytes.set(utf8, at + 5)
          at += 5 + utf8.byteLength
          return
        }
        need(5)
        const lengthAt = at + 1
        bytes[at] = T_STRING
        at += 5
        const { read, written } = encoder.encodeInto(v, bytes.subarray(at, end))
        if (read !== v.length) throw new Overflow()
        view.setUint32(lengthAt, written, true)
        at += written
        return
      }
      case "object": {
        if (v === null) {
          need(1)
          bytes[at++] = T_NULL
          return
        }
        if (v instanceof Uint8Array) {
          need(5 + v.byteLength)
          bytes[at] = T_BYTES
          view.setUint32(at + 1, v.byteLength, true)
          bytes.set(v, at + 5)
          at += 5 + v.byteLength
          return
        }
        if (Array.isArray(v)) {
          need(5)
          bytes[at] = T_ARRAY
          view.setUint32(at + 1, v.length, true)
          at += 5
          for (const item of v) write(item)
          return
        }
        throw new Unencodable(`cannot encode ${Object.prototype.toString.call(v)}`)
      }
      default:
        throw new Unencodable(`cannot encode a ${typeof v}`)
    }
  }
  write(value)
  return at
}

/** Decodes the value at `bytes[start, end)`. Byte arrays are copied out (the buffer is reused). */
export const decode = (bytes: Uint8Array, view: DataView, start: number, end: number): Wire => {
  let at = start
  const read = (): Wire => {
    if (at >= end) throw new RangeError("truncated channel message")
    const tag = bytes[at++]
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
        const v = view.getInt32(at, true)
        at += 4
        return v
      }
      case T_F64: {
        const v = view.getFloat64(at, true)
        at += 8
        return v
      }
      case T_I64: {
        const v = view.getBigInt64(at, true)
        at += 8
        return v
      }
      case T_STRING: {
        const length = view.getUint32(at, true)
        at += 4
        const s = decodeString(bytes, at, length)
        at += length
        return s
      }
      case T_BYTES: {
        const length = view.getUint32(at, true)
        at += 4
        const b = bytes.slice(at, at + length)
        at += length
        return b
      }
      case T_ARRAY: {
        const length = view.getUint32(at, true)
        at += 4
        const items: Array<Wire> = new Array(length)
        for (let i = 0; i < length; i++) items[i] = read()
        return items
      }
      default:
        throw new RangeError(`bad channel message tag ${tag}`)
    }
  }
  return read()
}

const decodeString = (bytes: Uint8Array, at: number, length: number): string => {
  // short ASCII (export names, messages): no TextDecoder round trip
  if (length <= 64) {
    let s = ""
    for (let i = 0; i < length; i++) {
      const c = bytes[at + i]!
      if (c >= 0x80) return decoder.decode(bytes.slice(at, at + length))
      s += String.fromCharCode(c)
    }
    return s
  }
  return decoder.decode(bytes.slice(at, at + length))
}
