import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { createHash } from "node:crypto"
import { promisify } from "node:util"
import * as zlib from "node:zlib"
import { agentId, moduleHash, moduleId } from "../src/Ids.js"
import type { InstanceSnapshot } from "../src/InstanceRepository.js"
import {
  crc32,
  decode,
  encode,
  FORMAT_VERSION,
  SnapshotCorrupt,
  SnapshotInvalid,
  SnapshotMismatch,
  type SnapshotCompression,
  validatePages
} from "../src/SnapshotCodec.js"

const PAGE = 65_536
const HASH = "a".repeat(64)

const gzip: SnapshotCompression = {
  compress: async (b) => new Uint8Array(await promisify(zlib.gzip)(b)),
  decompress: async (b) => new Uint8Array(await promisify(zlib.gunzip)(b))
}

/** Seeded bytes (xorshift32). */
const noise = (seed: number, length: number): Uint8Array => {
  let x = seed >>> 0 || 1
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

const make = (state: Partial<InstanceSnapshot["state"]> = {}): InstanceSnapshot => ({
  version: 1,
  agentId: agentId("agent-ü-1"),
  moduleId: moduleId("module-1"),
  moduleHash: moduleHash(HASH),
  lifecycle: "Running",
  memoryLimit: 16 * 1024 * 1024,
  memoryReservation: 8 * 1024 * 1024,
  invocationCount: 12_345,
  takenAt: 1_700_000_000_123,
  timeoutMs: 250,
  fuel: 1_000_000,
  critical: true,
  state: { memoryBytes: 0, pages: [], globals: {}, ...state }
})

/** A page whose bytes follow a pattern (compressible) with a few seeded bytes. */
const page = (index: number, seed: number): { index: number; data: Uint8Array } => {
  const data = new Uint8Array(PAGE)
  for (let i = 0; i < PAGE; i++) data[i] = (i * seed) & 0x0f
  data.set(noise(seed, 64), 1000)
  return { index, data }
}

const bigSnapshot = make({
  memoryBytes: 200 * PAGE,
  pages: [
    page(0, 3),
    ...Array.from({ length: 40 }, (_, i) => ({ index: 5 + i * 4, data: noise(i + 1, PAGE) })),
    page(199, 7)
  ],
  globals: {
    "agent-runtime:global:0": 42,
    "agent-runtime:global:1": -(2n ** 63n),
    "agent-runtime:global:2": 2n ** 63n - 1n,
    "agent-runtime:global:3": 0n,
    "agent-runtime:global:4": 1.5,
    "agent-runtime:global:5": -0,
    "agent-runtime:global:6": Number.NaN,
    "agent-runtime:global:7": 3.4028234663852886e38,
    "agent-runtime:memory": -1,
    "ünïcødé ✓": 2 ** 31 - 1
  }
})

const smallSnapshot = make({ memoryBytes: PAGE, pages: [], globals: { count: 7, big: -5n } })

const reasonOf = (e: SnapshotCorrupt | SnapshotMismatch): string => {
  if (!(e instanceof SnapshotCorrupt)) throw new Error(`expected SnapshotCorrupt, got ${e._tag}`)
  return e.reason
}

/** A snapshot with page contents replaced by their SHA-256: fast to compare (deep equality of typed arrays is slow). */
const digest = (s: InstanceSnapshot) => ({
  ...s,
  state: {
    ...s.state,
    pages: s.state.pages.map((p) => `${p.index}:${p.data.length}:${createHash("sha256").update(p.data).digest("hex")}`)
  }
})

/** Re-frames `bytes` after `edit`, with a valid checksum: tests the checks behind the CRC. */
const reframe = (bytes: Uint8Array, edit: (b: Uint8Array) => Uint8Array): Uint8Array => {
  const body = edit(bytes.slice(0, bytes.length - 4))
  const out = new Uint8Array(body.length + 4)
  out.set(body)
  new DataView(out.buffer).setUint32(body.length, crc32(body), true)
  return out
}

describe("SnapshotCodec", () => {
  it("crc32 agrees with zlib's", () => {
    for (const [seed, length] of [
      [1, 0],
      [2, 1],
      [3, 7],
      [4, 1000],
      [5, 65_536]
    ] as const) {
      const bytes = noise(seed, length)
      expect(crc32(bytes)).toBe(zlib.crc32(bytes))
    }
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926)
  })

  it.effect("round-trips metadata, many pages and globals (i64 bigints at both ends, -0, NaN)", () =>
    Effect.gen(function* () {
      const bytes = yield* encode(bigSnapshot)
      expect(bytes.length).toBeGreaterThan(42 * PAGE)
      expect(Array.from(bytes.subarray(0, 6))).toEqual([0x41, 0x52, 0x53, 0x4e, FORMAT_VERSION, 0])
      const back = yield* decode(bytes, { expectedModuleHash: HASH })
      expect(digest(back)).toEqual(digest(bigSnapshot))
      expect(Object.is(back.state.globals["agent-runtime:global:5"], -0)).toBe(true)
      expect(typeof back.state.globals["agent-runtime:global:3"]).toBe("bigint")
      expect(typeof back.state.globals["agent-runtime:global:0"]).toBe("number")
      expect(back.state.pages.map((p) => p.index)).toEqual(bigSnapshot.state.pages.map((p) => p.index))
    })
  )

  it.effect("compresses the payload through the injected functions; the header records it", () =>
    Effect.gen(function* () {
      const compressible = make({
        memoryBytes: 64 * PAGE,
        pages: Array.from({ length: 30 }, (_, i) => page(i * 2, i + 2)),
        globals: { g: 1n }
      })
      const plain = yield* encode(compressible)
      const packed = yield* encode(compressible, { compression: gzip })
      expect(packed.length).toBeLessThan(plain.length / 10)
      expect(digest(yield* decode(packed, { compression: gzip, expectedModuleHash: HASH }))).toEqual(
        digest(compressible)
      )
      const header = JSON.parse(
        new TextDecoder().decode(packed.subarray(16, 16 + new DataView(packed.buffer).getUint32(8, true)))
      )
      expect(header).toMatchObject({ compressed: true, moduleHash: HASH, pageCount: 30, globalCount: 1 })
      // Without the decompressor the snapshot cannot be read.
      const e = yield* Effect.flip(decode(packed))
      expect(e).toBeInstanceOf(SnapshotCorrupt)
      expect(e.message).toMatch(/compressed/)
      // A rejecting decompressor is a typed error too.
      const failing: SnapshotCompression = { ...gzip, decompress: () => Promise.reject(new Error("bad gzip")) }
      const e2 = yield* Effect.flip(decode(packed, { compression: failing }))
      expect(e2).toEqual(new SnapshotCorrupt({ reason: "decompression failed: bad gzip" }))
      // The big random snapshot round-trips compressed too.
      expect(digest(yield* decode(yield* encode(bigSnapshot, { compression: gzip }), { compression: gzip }))).toEqual(
        digest(bigSnapshot)
      )
    })
  )

  it.effect("refuses a snapshot of another module hash", () =>
    Effect.gen(function* () {
      const bytes = yield* encode(smallSnapshot)
      const other = "b".repeat(64)
      const e = yield* Effect.flip(decode(bytes, { expectedModuleHash: other }))
      expect(e).toEqual(new SnapshotMismatch({ expected: other, actual: HASH }))
      expect((yield* decode(bytes, { expectedModuleHash: HASH })).moduleHash).toBe(HASH)
      expect((yield* decode(bytes)).moduleHash).toBe(HASH)
    })
  )

  it.effect("detects every single-byte corruption of a small snapshot (and of a compressed one with a page)", () =>
    Effect.gen(function* () {
      const small = yield* encode(smallSnapshot)
      const compressed = yield* encode(make({ memoryBytes: 2 * PAGE, pages: [page(1, 5)], globals: { a: 1, b: 2n } }), {
        compression: gzip
      })
      expect(compressed.length).toBeLessThan(2000)
      let checked = 0
      for (const bytes of [small, compressed]) {
        for (let i = 0; i < bytes.length; i++) {
          for (const mask of [0x01, 0x80, 0xff]) {
            const copy = bytes.slice()
            copy[i] = (copy[i] as number) ^ mask
            const e = yield* Effect.flip(decode(copy, { compression: gzip, expectedModuleHash: HASH }))
            expect(e, `byte ${i} ^ ${mask}`).toBeInstanceOf(SnapshotCorrupt)
            checked++
          }
        }
      }
      expect(checked).toBe(3 * (small.length + compressed.length))
    })
  )

  it.effect("detects corruption inside page data (sampled positions of a large snapshot)", () =>
    Effect.gen(function* () {
      const bytes = yield* encode(make({ memoryBytes: 4 * PAGE, pages: [page(0, 3), page(3, 9)], globals: { x: 1 } }))
      const positions = [...noise(99, 200)].map((b, i) => Math.floor(((b + i * 256) / (200 * 256)) * bytes.length))
      for (const i of positions) {
        const copy = bytes.slice()
        copy[i] = (copy[i] as number) ^ 0x10
        expect(yield* Effect.flip(decode(copy)), `byte ${i}`).toBeInstanceOf(SnapshotCorrupt)
      }
    })
  )

  it.effect("detects every truncation and trailing garbage", () =>
    Effect.gen(function* () {
      for (const bytes of [yield* encode(smallSnapshot), yield* encode(bigSnapshot)]) {
        const step = bytes.length > 10_000 ? 997 : 1
        for (let n = 0; n < bytes.length; n += step) {
          const e = yield* Effect.flip(decode(bytes.subarray(0, n)))
          expect(e, `length ${n}`).toBeInstanceOf(SnapshotCorrupt)
        }
        const longer = new Uint8Array(bytes.length + 1)
        longer.set(bytes)
        expect(yield* Effect.flip(decode(longer))).toBeInstanceOf(SnapshotCorrupt)
      }
      expect(reasonOf(yield* Effect.flip(decode(new Uint8Array(0))))).toMatch(/shorter/)
    })
  )

  it.effect("refuses other format versions, bad magic and invalid headers even with a valid checksum", () =>
    Effect.gen(function* () {
      const bytes = yield* encode(smallSnapshot)
      const v2 = reframe(bytes, (b) => ((b[4] = 2), b))
      expect(reasonOf(yield* Effect.flip(decode(v2)))).toBe(
        "unsupported snapshot format version 2 (this build reads 1)"
      )
      const magic = reframe(bytes, (b) => ((b[0] = 0), b))
      expect(reasonOf(yield* Effect.flip(decode(magic)))).toBe("not a snapshot (bad magic)")
      // A header whose lifecycle is not a state: rewrite "Running" to "Rxnning" (same length).
      const badHeader = reframe(bytes, (b) => {
        const at = Buffer.from(b).indexOf('"Running"')
        expect(at).toBeGreaterThan(16)
        b[at + 2] = 0x78 // "Rxnning"
        return b
      })
      const e = yield* Effect.flip(decode(badHeader))
      expect(e).toBeInstanceOf(SnapshotCorrupt)
      expect(reasonOf(e)).toMatch(/^invalid header/)
    })
  )

  it.effect(
    "encode refuses what decode could not give back (SnapshotInvalid); decode refuses an inconsistent payload",
    () =>
      Effect.gen(function* () {
        const invalid = (snapshot: InstanceSnapshot) => Effect.flip(encode(snapshot))
        const outside = yield* invalid(make({ memoryBytes: PAGE, pages: [page(1, 3)] }))
        expect(outside).toBeInstanceOf(SnapshotInvalid)
        expect(outside.reason).toBe(`page 1 lies outside state.memoryBytes (${PAGE} bytes)`)
        expect(
          (yield* invalid(make({ memoryBytes: PAGE, pages: [{ index: 0, data: new Uint8Array(10) }] }))).reason
        ).toBe("page 0 must be a Uint8Array of 65536 bytes")
        expect((yield* invalid(make({ memoryBytes: 4 * PAGE, pages: [page(2, 3), page(1, 3)] }))).reason).toBe(
          "page 1 is out of order or repeated (indexes must increase)"
        )
        // validatePages refuses the same pages with the same reasons, and accepts what encode accepts
        for (const state of [
          { memoryBytes: PAGE, pages: [page(1, 3)] },
          { memoryBytes: 4 * PAGE, pages: [page(2, 3), page(1, 3)] }
        ]) {
          expect((yield* Effect.flip(validatePages(make(state).state))).reason).toBe(
            (yield* invalid(make(state))).reason
          )
        }
        yield* validatePages(make({ memoryBytes: 3 * PAGE, pages: [page(0, 1), page(2, 3)] }).state)
        expect((yield* invalid(make({ globals: { big: 2n ** 63n } }))).reason).toMatch(/outside the i64 range/)
        expect((yield* invalid(make({ memoryBytes: 100 }))).reason).toMatch(/not a multiple of 64 KiB/)
        expect((yield* invalid({ ...make(), invocationCount: Number.NaN })).reason).toMatch(/invalid metadata/)
        // a payload inconsistent with its (checksummed) header is refused by decode:
        // 3 pages of memory with page 2, then the header says 2 pages (same digit count)
        const bytes = yield* encode(make({ memoryBytes: 3 * PAGE, pages: [page(2, 3)] }))
        const shrunk = reframe(bytes, (b) => {
          const at = Buffer.from(b).indexOf('"memoryBytes":196608')
          expect(at).toBeGreaterThan(16)
          b.set(new TextEncoder().encode('"memoryBytes":131072'), at)
          return b
        })
        expect(reasonOf(yield* Effect.flip(decode(shrunk)))).toBe(`page 2 lies outside ${2 * PAGE} bytes of memory`)
      })
  )
})
