/**
 * A cursor over module bytes that decodes the primitive encodings of the
 * WebAssembly binary format (core spec §5.2 "Values"): bytes, LEB128
 * integers (§5.2.2), floats (§5.2.3), names (§5.2.4) and vectors (§5.1.3).
 *
 * Every read either returns a value and advances the cursor, or throws a
 * `WasmBinaryError` whose offset is counted from the module start (the
 * cursor works on the whole module buffer; a bounded reader only moves its
 * `end`). Rewriters (memory caps, fuel instrumentation, exporting globals)
 * use it to walk sections and copy the byte ranges they do not change.
 *
 * @internal
 */
import { unsupported, type UnsupportedFeature, WasmBinaryError } from "../WasmBinaryError.js"
import { decodeUtf8 } from "./Utf8.js"

export class ByteReader {
  /** Current position, in bytes from the module start. */
  offset: number

  /**
   * @param bytes the whole module
   * @param offset where to start reading
   * @param end one past the last byte this reader may read (a section's or a function body's end)
   * @param endReason the error reason when a read runs past `end`
   */
  constructor(
    readonly bytes: Uint8Array,
    offset = 0,
    readonly end: number = bytes.length,
    readonly endReason: string = "unexpected end"
  ) {
    this.offset = offset
  }

  /** A reader over `[offset, offset + size)` of the same bytes; fails if that range overruns this reader. */
  sub(size: number, endReason: string, overrunReason = "length out of bounds", at = this.offset): ByteReader {
    if (size > this.end - this.offset) this.fail(overrunReason, at)
    return new ByteReader(this.bytes, this.offset, this.offset + size, endReason)
  }

  get remaining(): number {
    return this.end - this.offset
  }

  get atEnd(): boolean {
    return this.offset >= this.end
  }

  /** Throws a `WasmBinaryError` at `at` (default: the current position). */
  fail(reason: string, at: number = this.offset): never {
    throw new WasmBinaryError(at, reason)
  }

  /** Throws a `WasmBinaryError` of kind `"invalid"` (a validation rule, spec §3) at `at`. */
  invalid(reason: string, at: number = this.offset): never {
    throw new WasmBinaryError(at, reason, "invalid")
  }

  /** Throws a `WasmBinaryError` of kind `"unsupported"` naming `feature` at `at`. */
  unsupported(feature: UnsupportedFeature, detail: string, at: number = this.offset): never {
    throw unsupported(at, feature, detail)
  }

  /** One byte. */
  u8(): number {
    if (this.offset >= this.end) this.fail(this.endReason)
    return this.bytes[this.offset++] as number
  }

  /** The next byte without consuming it, or -1 at the end. */
  peek(): number {
    return this.offset < this.end ? (this.bytes[this.offset] as number) : -1
  }

  /** `n` raw bytes (a view, not a copy); "length out of bounds" when fewer remain. */
  bytesView(n: number, at: number = this.offset): Uint8Array {
    if (n > this.end - this.offset) this.fail("length out of bounds", at)
    const view = this.bytes.subarray(this.offset, this.offset + n)
    this.offset += n
    return view
  }

  /** Skips `n` bytes (fixed-size immediates such as f32/f64/v128 constants). */
  skip(n: number): void {
    if (n > this.end - this.offset) this.fail(this.endReason, this.end)
    this.offset += n
  }

  /**
   * Unsigned LEB128 of at most `bits` (≤ 32) bits (§5.2.2): at most
   * ceil(bits / 7) bytes, and the unused high bits of the last byte must be 0.
   */
  uN(bits: number): number {
    const start = this.offset
    const maxBytes = Math.ceil(bits / 7)
    let result = 0
    let shift = 0
    let scale = 1 // 2 ** shift
    for (let i = 0; ; i++) {
      const b = this.u8()
      if (i === maxBytes - 1) {
        if ((b & 0x80) !== 0) this.fail("integer representation too long", start)
        const usedBits = bits - shift
        if (usedBits < 7 && b >> usedBits !== 0) this.fail("integer too large", start)
        return result + b * scale
      }
      result += (b & 0x7f) * scale
      if ((b & 0x80) === 0) return result
      shift += 7
      scale *= 128
    }
  }

  /** Unsigned 32-bit LEB128 (`u32`): at most 5 bytes, the 5th ≤ 0x0f. */
  u32(): number {
    const o = this.offset
    if (o < this.end) {
      const b = this.bytes[o] as number
      if (b < 0x80) {
        this.offset = o + 1
        return b
      }
    }
    return this.uN(32)
  }

  /** Unsigned 64-bit LEB128 (`u64`, memory64 limits) as a bigint: at most 10 bytes, the 10th ≤ 0x01. */
  u64(): bigint {
    const start = this.offset
    let result = 0n
    let shift = 0n
    for (let i = 0; ; i++) {
      const b = this.u8()
      if (i === 9) {
        if ((b & 0x80) !== 0) this.fail("integer representation too long", start)
        if (b > 0x01) this.fail("integer too large", start)
        return result | (BigInt(b) << shift)
      }
      result |= BigInt(b & 0x7f) << shift
      if ((b & 0x80) === 0) return result
      shift += 7n
    }
  }

  /**
   * Skips an unsigned 64-bit LEB128 (`u64`, memarg offsets) with the checks
   * of `u64` (at most 10 bytes, the 10th ≤ 0x01), without building a bigint.
   */
  skipU64(): void {
    const start = this.offset
    for (let i = 0; ; i++) {
      const b = this.u8()
      if (i === 9) {
        if ((b & 0x80) !== 0) this.fail("integer representation too long", start)
        if (b > 0x01) this.fail("integer too large", start)
        return
      }
      if ((b & 0x80) === 0) return
    }
  }

  /**
   * Skips a signed 64-bit LEB128 (`s64`, `i64.const`) with the checks of
   * `s64` (at most 10 bytes, the 10th 0x00 or 0x7f), without building a bigint.
   */
  skipS64(): void {
    const start = this.offset
    for (let i = 0; ; i++) {
      const b = this.u8()
      if (i === 9) {
        if ((b & 0x80) !== 0) this.fail("integer representation too long", start)
        if (b !== 0x00 && b !== 0x7f) this.fail("integer too large", start)
        return
      }
      if ((b & 0x80) === 0) return
    }
  }

  /**
   * Signed LEB128 of `bits` bits (s32, s33) as a number: at most
   * ceil(bits / 7) bytes, and the unused high bits of the last byte must
   * repeat the sign bit.
   */
  sN(bits: 32 | 33): number {
    const start = this.offset
    let result = 0
    let scale = 1 // 2 ** (7 × bytes read before this one)
    for (let i = 0; ; i++) {
      const b = this.u8()
      if (i === 4) {
        if ((b & 0x80) !== 0) this.fail("integer representation too long", start)
        // bits 0..(bits-29) are value bits; the rest (up to bit 6) must equal the sign bit.
        const signMask = bits === 32 ? 0x78 : 0x70
        const high = b & signMask
        if (high !== 0 && high !== signMask) this.fail("integer too large", start)
        result += b * scale
        return (b & 0x40) !== 0 ? result - 34359738368 /* 2 ** 35 */ : result
      }
      result += (b & 0x7f) * scale
      scale *= 128
      if ((b & 0x80) === 0) {
        return (b & 0x40) !== 0 ? result - scale : result
      }
    }
  }

  /** Signed 32-bit LEB128 (`s32`). */
  s32(): number {
    return this.sN(32)
  }

  /** Signed 33-bit LEB128 (`s33`, block types and heap types). */
  s33(): number {
    return this.sN(33)
  }

  /** Signed 64-bit LEB128 (`s64`) as a bigint: at most 10 bytes, the 10th 0x00 or 0x7f. */
  s64(): bigint {
    const start = this.offset
    let result = 0n
    let shift = 0n
    for (let i = 0; ; i++) {
      const b = this.u8()
      if (i === 9) {
        if ((b & 0x80) !== 0) this.fail("integer representation too long", start)
        if (b !== 0x00 && b !== 0x7f) this.fail("integer too large", start)
        return BigInt.asIntN(64, result | (BigInt(b) << shift))
      }
      result |= BigInt(b & 0x7f) << shift
      shift += 7n
      if ((b & 0x80) === 0) {
        return (b & 0x40) !== 0 ? result - (1n << shift) : result
      }
    }
  }

  /** A name (§5.2.4): u32 byte length, then strict UTF-8. */
  name(): string {
    const at = this.offset
    const length = this.u32()
    const start = this.offset
    const text = decodeUtf8(this.bytesView(length, at))
    if (text === undefined) this.fail("malformed UTF-8 encoding", start)
    return text
  }

  /** A vector length (§5.1.3). */
  count(): number {
    return this.u32()
  }

  /** Reads a vector (§5.1.3): u32 count, then `count` elements. */
  vec<A>(element: (reader: ByteReader, index: number) => A): Array<A> {
    const n = this.u32()
    const out: Array<A> = []
    for (let i = 0; i < n; i++) out.push(element(this, i))
    return out
  }
}
