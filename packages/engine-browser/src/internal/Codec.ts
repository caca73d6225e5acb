/**
 * A compact binary encoding of the values that cross the page ↔ worker call
 * path, written straight into the channel's `SharedArrayBuffer`.
 *
 * Wire values: `undefined`, `null`, booleans, numbers (int32 in 4 bytes,
 * otherwise an IEEE 754 f64 in 8), bigints (i64, 8 bytes two's complement,
 * wrapped to 64 bits as WebAssembly's `ToBigInt64` does), strings (UTF-8),
 * `Uint8Array`s and arrays of wire values. Anything else (a
 * `WebAssembly.Module`, a shared memory, an object) is `Unencodable`; a
 * message larger than the buffer is an `Overflow`. The channel then posts the
 * message instead (structured clone). Little-endian. No imports: worker-safe.
 *
 * @internal
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

/** The message does not fit in the buffer. */
export class Overflow extends Error {
  constructor() {
    super("message larger than the channel buffer")
  }
}

/** A value the codec cannot carry (it is posted instead). */
export class Unencodable extends Error {}

const encoder = new TextEncoder()
const decoder = new TextDecoder()

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
        // TextEncoder.encodeInto refuses views of a SharedArrayBuffer: encode, then copy
        const utf8 = encoder.encode(v)
        need(5 + utf8.byteLength)
        bytes[at] = T_STRING
        view.setUint32(at + 1, utf8.byteLength, true)
        bytes.set(utf8, at + 5)
        at += 5 + utf8.byteLength
        return
      }
      case "object":
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
        throw new Unencodable(`cannot encode a ${Object.prototype.toString.call(v)}`)
      default:
        throw new Unencodable(`cannot encode a ${typeof v}`)
    }
  }
  write(value)
  return at
}

/** Decodes one value from `bytes[start, end)`. */
export const decode = (bytes: Uint8Array, view: DataView, start: number, end: number): Wire => {
  let at = start
  const read = (): Wire => {
    if (at >= end) throw new Error("codec: truncated message")
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
      case T_I32:
        at += 4
        return view.getInt32(at - 4, true)
      case T_F64:
        at += 8
        return view.getFloat64(at - 8, true)
      case T_I64:
        at += 8
        return view.getBigInt64(at - 8, true)
      case T_STRING: {
        const n = view.getUint32(at, true)
        at += 4 + n
        // TextDecoder refuses views of a SharedArrayBuffer: decode a copy
        return decoder.decode(bytes.slice(at - n, at))
      }
      case T_BYTES: {
        const n = view.getUint32(at, true)
        at += 4 + n
        return bytes.slice(at - n, at)
      }
      case T_ARRAY: {
        const n = view.getUint32(at, true)
        at += 4
        const items: Array<Wire> = []
        for (let i = 0; i < n; i++) items.push(read())
        return items
      }
      default:
        throw new Error(`codec: unknown tag ${String(tag)}`)
    }
  }
  return read()
}
