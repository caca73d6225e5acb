/**
 * A growable byte buffer that encodes the primitive encodings of the
 * WebAssembly binary format (core spec §5.2 "Values"): bytes, LEB128
 * integers (§5.2.2), names (§5.2.4), vectors (§5.1.3) and sections (§5.5.2).
 * The counterpart of `ByteReader`, for building and rewriting modules.
 *
 * @internal
 */
import { encodeUtf8 } from "./Utf8.js"

export class ByteWriter {
  private buffer: Uint8Array<ArrayBuffer>
  private length = 0

  constructor(initialCapacity = 256) {
    this.buffer = new Uint8Array(Math.max(16, initialCapacity))
  }

  /** Bytes written so far. */
  get size(): number {
    return this.length
  }

  private reserve(extra: number): void {
    const needed = this.length + extra
    if (needed <= this.buffer.length) return
    let capacity = this.buffer.length * 2
    while (capacity < needed) capacity *= 2
    const next = new Uint8Array(capacity)
    next.set(this.buffer.subarray(0, this.length))
    this.buffer = next
  }

  /** One byte (0..255). */
  u8(value: number): this {
    if (this.length >= this.buffer.length) this.reserve(1)
    this.buffer[this.length++] = value & 0xff
    return this
  }

  /** Raw bytes, copied. */
  bytes(data: Uint8Array): this {
    return this.copy(data, 0, data.length)
  }

  /**
   * Bytes `[start, end)` of `source`, copied without making a view of them
   * (short ranges — most basic blocks — are copied byte by byte; a
   * `subarray` per range costs more than the copy).
   */
  copy(source: Uint8Array, start: number, end: number): this {
    const n = end - start
    if (n <= 0) return this
    this.reserve(n)
    const buffer = this.buffer
    let at = this.length
    if (n < 64) {
      for (let i = start; i < end; i++) buffer[at++] = source[i] as number
    } else {
      buffer.set(source.subarray(start, end), at)
    }
    this.length += n
    return this
  }

  /** The bytes written to `other` so far, copied. */
  append(other: ByteWriter): this {
    return this.copy(other.buffer, 0, other.length)
  }

  /** Unsigned LEB128 (`u32`), shortest form. */
  u32(value: number): this {
    let v = value >>> 0
    if (this.length + 5 > this.buffer.length) this.reserve(5)
    const buffer = this.buffer
    let at = this.length
    while (v >= 0x80) {
      buffer[at++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    buffer[at++] = v
    this.length = at
    return this
  }

  /** Unsigned LEB128 padded to exactly `width` bytes (1..5), as linkers emit for patchable sizes. */
  u32Padded(value: number, width: number): this {
    let v = value >>> 0
    for (let i = 0; i < width; i++) {
      const last = i === width - 1
      this.u8((v & 0x7f) | (last ? 0 : 0x80))
      v >>>= 7
    }
    return this
  }

  /** Unsigned LEB128 (`u64`), shortest form. */
  u64(value: bigint): this {
    let v = BigInt.asUintN(64, value)
    do {
      let b = Number(v & 0x7fn)
      v >>= 7n
      if (v !== 0n) b |= 0x80
      this.u8(b)
    } while (v !== 0n)
    return this
  }

  /** Signed LEB128 (`s32`), shortest form. */
  s32(value: number): this {
    let v = value | 0
    if (this.length + 5 > this.buffer.length) this.reserve(5)
    const buffer = this.buffer
    let at = this.length
    for (;;) {
      const b = v & 0x7f
      v >>= 7
      if ((v === 0 && (b & 0x40) === 0) || (v === -1 && (b & 0x40) !== 0)) {
        buffer[at++] = b
        this.length = at
        return this
      }
      buffer[at++] = b | 0x80
    }
  }

  /** Signed LEB128 (`s64`), shortest form. */
  s64(value: bigint): this {
    let v = BigInt.asIntN(64, value)
    for (;;) {
      const b = Number(v & 0x7fn)
      v >>= 7n
      if ((v === 0n && (b & 0x40) === 0) || (v === -1n && (b & 0x40) !== 0)) {
        this.u8(b)
        return this
      }
      this.u8(b | 0x80)
    }
  }

  /** A name (§5.2.4): u32 byte length + UTF-8 bytes. */
  name(text: string): this {
    const utf8 = encodeUtf8(text)
    return this.u32(utf8.length).bytes(utf8)
  }

  /** A vector (§5.1.3): u32 count + each element. */
  vec<A>(items: ReadonlyArray<A>, element: (writer: this, item: A) => void): this {
    this.u32(items.length)
    for (const item of items) element(this, item)
    return this
  }

  /**
   * A section (§5.5.2): id byte, u32 payload size, payload written by
   * `body` — into this writer, after room for the size (`skip(5)` …
   * `closeSized`), so the payload is never copied through a buffer of its own.
   */
  section(id: number, body: (writer: ByteWriter) => void): this {
    this.u8(id)
    const at = this.length
    this.skip(5)
    body(this)
    return this.closeSized(at)
  }

  /** Leaves `n` bytes (zeros or stale) to be filled or dropped later (`closeSized`). */
  skip(n: number): this {
    this.reserve(n)
    this.length += n
    return this
  }

  /**
   * Ends a size-prefixed item started with `skip(5)` at `at`: writes the
   * size of the bytes after those 5 as a shortest-form u32 at `at` and moves
   * them up to right after it (one native move, no copy through a buffer).
   */
  closeSized(at: number): this {
    const start = at + 5
    const size = this.length - start
    const buffer = this.buffer
    let v = size
    let o = at
    while (v >= 0x80) {
      buffer[o++] = (v & 0x7f) | 0x80
      v >>>= 7
    }
    buffer[o++] = v
    if (o !== start) buffer.copyWithin(o, start, this.length)
    this.length = o + size
    return this
  }

  /**
   * The internal buffer, with room for at least `extra` bytes after `size`,
   * for a writer that fills it directly (then `setSize`). Valid until the
   * next call that may grow the buffer.
   */
  room(extra: number): Uint8Array<ArrayBuffer> {
    this.reserve(extra)
    return this.buffer
  }

  /** Sets `size` to `n` (≤ the buffer's length): after filling `room`'s buffer, or to drop bytes written after `n`. */
  setSize(n: number): this {
    this.length = n
    return this
  }

  /** Forgets the bytes written so far, keeping the buffer for reuse. */
  reset(): this {
    this.length = 0
    return this
  }

  /** The bytes written so far, as a view of the internal buffer (valid until the next write). */
  view(): Uint8Array<ArrayBuffer> {
    return this.buffer.subarray(0, this.length)
  }

  /** A copy of the bytes written so far. */
  finish(): Uint8Array<ArrayBuffer> {
    return this.buffer.slice(0, this.length)
  }
}
