/** ByteWriter ↔ ByteReader round trips and the LEB128 limits (core spec §5.2.2). */
import { describe, expect, it } from "@effect/vitest"
import { ByteReader } from "../src/internal/ByteReader.js"
import { ByteWriter } from "../src/internal/ByteWriter.js"
import { WasmBinaryError } from "../src/index.js"
import { prng } from "./helpers/Mutate.js"

const reader = (...b: ReadonlyArray<number>) => new ByteReader(Uint8Array.from(b))
const error = (f: () => unknown): { reason: string; offset: number } => {
  try {
    f()
  } catch (e) {
    if (e instanceof WasmBinaryError) return { reason: e.reason, offset: e.offset }
    throw e
  }
  throw new Error("expected a WasmBinaryError")
}

describe("LEB128", () => {
  it("round-trips u32, s32, u64, s64 at the edges and at random", () => {
    const rng = prng(42)
    const u32s = [0, 1, 63, 64, 127, 128, 16_383, 16_384, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1]
    const s32s = [0, 1, -1, 63, -64, 64, -65, 2 ** 31 - 1, -(2 ** 31)]
    const s64s = [0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 32n, -(2n ** 32n)]
    const u64s = [0n, 1n, 2n ** 64n - 1n, 2n ** 48n]
    for (let i = 0; i < 2_000; i++) {
      u32s.push(rng.int(2 ** 32))
      s32s.push(rng.int(2 ** 32) - 2 ** 31)
      s64s.push(BigInt.asIntN(64, (BigInt(rng.int(2 ** 32)) << 32n) | BigInt(rng.int(2 ** 32))))
    }
    const w = new ByteWriter(4)
    for (const v of u32s) w.u32(v)
    for (const v of s32s) w.s32(v)
    for (const v of s64s) w.s64(v)
    for (const v of u64s) w.u64(v)
    for (const v of u32s) w.u32Padded(v, 5)
    const r = new ByteReader(w.finish())
    expect(u32s.map(() => r.u32())).toEqual(u32s)
    expect(s32s.map(() => r.s32())).toEqual(s32s)
    expect(s64s.map(() => r.s64())).toEqual(s64s)
    expect(u64s.map(() => r.u64())).toEqual(u64s)
    expect(u32s.map(() => r.u32())).toEqual(u32s)
    expect(r.atEnd).toBe(true)
  })

  it("shortest encodings", () => {
    expect(Array.from(new ByteWriter().u32(624_485).finish())).toEqual([0xe5, 0x8e, 0x26])
    expect(Array.from(new ByteWriter().s32(-123_456).finish())).toEqual([0xc0, 0xbb, 0x78])
    expect(Array.from(new ByteWriter().s64(-1n).finish())).toEqual([0x7f])
    expect(Array.from(new ByteWriter().s32(64).finish())).toEqual([0xc0, 0x00])
  })

  it("s33 reads block-type-sized values", () => {
    expect(reader(0x40).s33()).toBe(-64)
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x0f).s33()).toBe(2 ** 32 - 1)
    expect(reader(0x80, 0x80, 0x80, 0x80, 0x70).s33()).toBe(-(2 ** 32))
    expect(error(() => reader(0x80, 0x80, 0x80, 0x80, 0x10).s33())).toEqual({ reason: "integer too large", offset: 0 })
  })

  it("limits and truncation", () => {
    expect(error(() => reader(0x80, 0x80, 0x80, 0x80, 0x80, 0x00).u32())).toEqual({
      reason: "integer representation too long",
      offset: 0
    })
    expect(error(() => reader(0xff, 0xff, 0xff, 0xff, 0x1f).u32())).toEqual({ reason: "integer too large", offset: 0 })
    expect(reader(0xff, 0xff, 0xff, 0xff, 0x7f).s32()).toBe(-1)
    expect(error(() => reader(0xff, 0xff, 0xff, 0xff, 0x3f).s32())).toEqual({ reason: "integer too large", offset: 0 })
    expect(error(() => reader(...Array(9).fill(0x80), 0x02).u64())).toEqual({ reason: "integer too large", offset: 0 })
    expect(
      error(() => reader(0x00, 0x80, 0x80).u32() + new ByteReader(Uint8Array.of(0x00, 0x80, 0x80), 1).u32())
    ).toEqual({
      reason: "unexpected end",
      offset: 3
    })
    expect(error(() => reader(0x05, 0x61).name())).toEqual({ reason: "length out of bounds", offset: 0 })
    expect(error(() => reader(0x02, 0xc3, 0x28).name())).toEqual({ reason: "malformed UTF-8 encoding", offset: 1 })
  })
})
