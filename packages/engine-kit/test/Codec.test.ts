import { describe, expect, it } from "@effect/vitest"
import { decode, encode, Overflow, Unencodable } from "../src/Codec.js"

const roundTrip = (value: unknown, size = 4096, shared = true) => {
  const buffer = shared ? new SharedArrayBuffer(size) : new ArrayBuffer(size)
  const bytes = new Uint8Array(buffer)
  const view = new DataView(buffer)
  const end = encode(value, bytes, view, 16, size)
  return { value: decode(bytes, view, 16, end), length: end - 16 }
}

describe("Codec", () => {
  it("round-trips every wire value through a SharedArrayBuffer", () => {
    const value = [
      undefined,
      null,
      true,
      false,
      0,
      -1,
      2 ** 31 - 1,
      -(2 ** 31),
      2 ** 31,
      1.5,
      -0,
      NaN,
      Infinity,
      0n,
      -1n,
      2n ** 63n - 1n,
      -(2n ** 63n),
      "",
      "ascii",
      "héllo wörld ✓ 🎉",
      "x".repeat(200),
      new Uint8Array([1, 2, 3]),
      [],
      [[1, [2n]], "nested"]
    ]
    const out = roundTrip(value).value as Array<unknown>
    expect(out).toHaveLength(value.length)
    expect(out.slice(0, 21)).toEqual(value.slice(0, 21))
    expect(Object.is(out[10], -0)).toBe(true)
    expect([...(out[21] as Uint8Array)]).toEqual([1, 2, 3])
    expect(out.slice(22)).toEqual([[], [[1, [2n]], "nested"]])
  })

  it("is compact: i32 in 5 bytes, i64 and f64 in 9", () => {
    expect(roundTrip(7).length).toBe(5)
    expect(roundTrip(7n).length).toBe(9)
    expect(roundTrip(0.5).length).toBe(9)
    expect(roundTrip([2, "add", [1, 2]]).length).toBe(5 + 5 + 8 + 5 + 10)
  })

  it("wraps bigints to 64 bits as WebAssembly's ToBigInt64 does", () => {
    expect(roundTrip(2n ** 64n - 1n).value).toBe(-1n)
    expect(roundTrip(2n ** 63n).value).toBe(-(2n ** 63n))
  })

  it("copies bytes out of the buffer (it is reused)", () => {
    const buffer = new SharedArrayBuffer(64)
    const bytes = new Uint8Array(buffer)
    const view = new DataView(buffer)
    const end = encode(new Uint8Array([9, 9]), bytes, view, 0, 64)
    const out = decode(bytes, view, 0, end) as Uint8Array
    bytes.fill(0)
    expect([...out]).toEqual([9, 9])
    expect(out.buffer).toBeInstanceOf(ArrayBuffer)
  })

  it("throws Overflow when a message does not fit, Unencodable for other values", () => {
    expect(() => roundTrip(new Uint8Array(100), 64)).toThrow(Overflow)
    expect(() => roundTrip("é".repeat(40), 64)).toThrow(Overflow)
    expect(() => roundTrip([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 48)).toThrow(Overflow)
    expect(() => roundTrip({ a: 1 })).toThrow(Unencodable)
    expect(() => roundTrip([() => 1])).toThrow(Unencodable)
    expect(() => roundTrip(new WebAssembly.Memory({ initial: 1 }))).toThrow(Unencodable)
  })

  it("writes a string as UTF-8 after its byte length whichever path encodes it (short ASCII in place, others by TextEncoder)", () => {
    const samples = ["", "a", "noop", "x".repeat(64), "x".repeat(65), "é", `${"x".repeat(63)}é`, "🎉", "\u007f\u0080"]
    for (const shared of [true, false]) {
      for (const s of samples) {
        const buffer = shared ? new SharedArrayBuffer(256) : new ArrayBuffer(256)
        const bytes = new Uint8Array(buffer)
        const view = new DataView(buffer)
        const end = encode(s, bytes, view, 3, 256)
        const utf8 = new TextEncoder().encode(s)
        expect(bytes[3]).toBe(7) // the string tag
        expect(view.getUint32(4, true)).toBe(utf8.byteLength)
        expect([...bytes.subarray(8, end)]).toEqual([...utf8])
        expect(decode(bytes, view, 3, end)).toBe(s)
      }
    }
    // a short ASCII string that does not fit is an Overflow too, and writes nothing past the end
    const small = new Uint8Array(12)
    expect(() => encode("abcdefghij", small, new DataView(small.buffer), 0, 8)).toThrow(Overflow)
    expect([...small.subarray(8)]).toEqual([0, 0, 0, 0])
  })

  it("messages encoded one after the other into different buffers do not mix (the cursor is reset per message)", () => {
    const a = new SharedArrayBuffer(128)
    const b = new SharedArrayBuffer(128)
    const ea = encode([1, "first", [2n]], new Uint8Array(a), new DataView(a), 0, 128)
    const eb = encode([3, "second"], new Uint8Array(b), new DataView(b), 10, 128)
    expect(decode(new Uint8Array(a), new DataView(a), 0, ea)).toEqual([1, "first", [2n]])
    expect(decode(new Uint8Array(b), new DataView(b), 10, eb)).toEqual([3, "second"])
    // a failed encode leaves no state behind
    expect(() => encode({}, new Uint8Array(a), new DataView(a), 0, 128)).toThrow(Unencodable)
    expect(decode(new Uint8Array(b), new DataView(b), 10, eb)).toEqual([3, "second"])
  })

  it("refuses truncated or corrupt input with a RangeError", () => {
    const buffer = new ArrayBuffer(16)
    const bytes = new Uint8Array(buffer)
    const view = new DataView(buffer)
    bytes[0] = 42
    expect(() => decode(bytes, view, 0, 1)).toThrow(RangeError)
    expect(() => decode(bytes, view, 0, 0)).toThrow(RangeError)
  })

  it("every empty array decodes to one shared frozen array", () => {
    const a = roundTrip([[], [1], []]).value as Array<ReadonlyArray<unknown>>
    const b = roundTrip([]).value as ReadonlyArray<unknown>
    expect(a).toEqual([[], [1], []])
    expect(a[0]).toBe(a[2])
    expect(a[0]).toBe(b)
    expect(Object.isFrozen(b)).toBe(true)
    expect(b).toHaveLength(0)
  })

  it("short strings decode to the string seen lately with the same bytes, never to another one", () => {
    // the cache is keyed by a hash of length, first and last byte: collisions must compare every byte
    const names = ["noop", "nxop", "nyop", "add", "adb", "a", "b", "", "add_i64", "ädd", "x".repeat(64), "y".repeat(65)]
    for (let round = 0; round < 3; round++) {
      for (const name of names) expect(roundTrip(name).value).toBe(name)
      expect(roundTrip(names).value).toEqual(names)
    }
    // every one-byte and two-byte ASCII string, decoded twice in a row and interleaved
    const all: Array<string> = []
    for (let c = 0; c < 128; c++) {
      all.push(String.fromCharCode(c))
      all.push(String.fromCharCode(c, (c * 7) % 128))
    }
    expect(roundTrip(all).value).toEqual(all)
    expect(roundTrip([...all].reverse()).value).toEqual([...all].reverse())
  })
})
