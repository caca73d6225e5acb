/**
 * The binary header row (schema version 7, `src/internal/header.ts`) against
 * the domain's `SnapshotCodec`: for seeded random snapshots (`@agent-runtime/test-support/mutate`'s
 * prng) — optional fields present or absent, globals at the edges of f64 and
 * i64, unicode names — a decoded header gives back the snapshot byte for
 * byte (its codec bytes equal the original's); it never vouches for a
 * snapshot the codec refuses; and any damaged byte is refused.
 */
import { agentId, moduleHash, moduleId, SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"
import { prng } from "@agent-runtime/test-support/mutate"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Header from "../../src/internal/header.js"

const PAGE = 65_536
const LIFECYCLES = ["Starting", "Running", "Paused", "Stopping", "Stopped", "Failed", "Critical"] as const

type Rng = ReturnType<typeof prng>

const f64Edge = (r: Rng): number => {
  const bits = new DataView(new ArrayBuffer(8))
  switch (r.int(8)) {
    case 0:
      return -0
    case 1:
      return Number.NaN
    case 2:
      return r.pick([Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE])
    case 3:
      bits.setUint32(0, r.int(0x1_0000_0000))
      bits.setUint32(4, r.int(0x1_0000_0000))
      return bits.getFloat64(0) // any bits (a NaN payload included)
    default:
      return (r.next() - 0.5) * 10 ** r.int(20)
  }
}

const i64Edge = (r: Rng): bigint =>
  r.pick([
    0n,
    -1n,
    (1n << 63n) - 1n,
    -(1n << 63n),
    BigInt.asIntN(64, BigInt(r.int(0x1_0000_0000)) * BigInt(r.int(0x1_0000_0000)))
  ])

const NAMES = ["g", "__stack_pointer", "ünïcödé 🤖", 'with "quotes"', "", "0", "17", "x".repeat(300), "a\u0000b"]

/** A random snapshot without pages, as the repository's header row holds it. */
const randomSnapshot = (r: Rng): InstanceSnapshot => {
  const globals: Record<string, number | bigint> = {}
  for (let i = r.int(6); i > 0; i--)
    globals[r.pick(NAMES) + (r.int(3) === 0 ? String(i) : "")] = r.int(2) === 0 ? f64Edge(r) : i64Edge(r)
  const finite = () => (r.int(4) === 0 ? -0 : (r.next() - 0.25) * 10 ** r.int(16))
  return {
    version: r.pick([1, 0, -3, Number.MAX_SAFE_INTEGER]),
    agentId: agentId(r.pick(["a", "agent-17", "ünïcödé-エージェント", "x".repeat(500), ""])),
    moduleId: moduleId(r.pick(["m", "mod/with/slash", ""])),
    moduleHash: moduleHash("ab".repeat(r.int(33))),
    lifecycle: r.pick(LIFECYCLES),
    memoryLimit: finite(),
    memoryReservation: finite(),
    invocationCount: r.int(1_000_000),
    takenAt: 1_700_000_000_000 + r.next(),
    ...(r.int(2) === 0 ? {} : { timeoutMs: finite() }),
    ...(r.int(2) === 0 ? {} : { fuel: finite() }),
    ...(r.int(3) === 0 ? {} : { critical: r.int(2) === 0 }),
    state: { memoryBytes: r.int(4096) * PAGE, pages: [], globals }
  }
}

const codecBytes = (s: InstanceSnapshot) => Effect.runSync(SnapshotCodec.encode(s))

describe("binary header rows", () => {
  it("a decoded header is the snapshot byte for byte (its SnapshotCodec bytes equal the original's), for 3,000 seeded snapshots", () => {
    const r = prng(20261207)
    for (let n = 0; n < 3000; n++) {
      const s = randomSnapshot(r)
      const bytes = Header.encode(s)
      expect(bytes, `snapshot ${n}`).toBeDefined()
      expect(Header.isBinary(bytes!)).toBe(true)
      const back = Header.decode(bytes!)
      expect(Buffer.compare(codecBytes(back), codecBytes(s)), `snapshot ${n}`).toBe(0)
      // the optional fields are present exactly when they were
      for (const key of ["timeoutMs", "fuel", "critical"] as const) expect(key in back).toBe(s[key] !== undefined)
      // the globals' exact bits (NaN payloads, -0) and their order
      expect(Object.keys(back.state.globals)).toEqual(Object.keys(s.state.globals))
      for (const [name, v] of Object.entries(s.state.globals)) {
        const w = back.state.globals[name]
        if (typeof v === "bigint") expect(w).toBe(v)
        else expect(Object.is(w, v) || (Number.isNaN(v) && Number.isNaN(w as number))).toBe(true)
      }
    }
  })

  it("never vouches for a snapshot the codec refuses (those are stored in the codec form, which refuses them)", () => {
    const r = prng(7)
    const breaks: ReadonlyArray<(s: InstanceSnapshot) => InstanceSnapshot> = [
      (s) => ({ ...s, version: 1.5 }),
      (s) => ({ ...s, memoryLimit: Number.NaN }),
      (s) => ({ ...s, memoryReservation: Number.POSITIVE_INFINITY }),
      (s) => ({ ...s, invocationCount: Number.NEGATIVE_INFINITY }),
      (s) => ({ ...s, takenAt: Number.NaN }),
      (s) => ({ ...s, timeoutMs: Number.POSITIVE_INFINITY }),
      (s) => ({ ...s, fuel: Number.NaN }),
      (s) => ({ ...s, critical: "yes" as unknown as boolean }),
      (s) => ({ ...s, lifecycle: "Dancing" as InstanceSnapshot["lifecycle"] }),
      (s) => ({ ...s, agentId: 7 as unknown as InstanceSnapshot["agentId"] }),
      (s) => ({ ...s, state: { ...s.state, memoryBytes: PAGE + 1 } }),
      (s) => ({ ...s, state: { ...s.state, memoryBytes: -PAGE } }),
      (s) => ({ ...s, state: { ...s.state, globals: { big: 1n << 63n } } }),
      (s) => ({ ...s, state: { ...s.state, globals: { str: "1" as unknown as number } } })
    ]
    for (let n = 0; n < 300; n++) {
      const broken = r.pick(breaks)(randomSnapshot(r))
      expect(Exit.isFailure(Effect.runSyncExit(SnapshotCodec.encode(broken))), `break ${n}`).toBe(true)
      expect(Header.encode(broken), `break ${n}`).toBeUndefined()
    }
  })

  it("leaves a snapshot with a lone surrogate in an id or a global name to the codec form, which keeps its ids exactly", () => {
    const r = prng(3)
    const s = randomSnapshot(r)
    for (const broken of [
      { ...s, agentId: agentId("a\ud800b") },
      { ...s, moduleId: moduleId("\udc00") },
      { ...s, moduleHash: moduleHash("x\ud83d") },
      { ...s, state: { ...s.state, globals: { "g\udfff": 1 } } }
    ]) {
      expect(Header.encode(broken)).toBeUndefined()
      const back = Effect.runSync(SnapshotCodec.decode(codecBytes(broken)))
      expect([back.agentId, back.moduleId, back.moduleHash]).toEqual([
        broken.agentId,
        broken.moduleId,
        broken.moduleHash
      ])
    }
    expect(Header.encode({ ...s, agentId: agentId("pair \ud83e\udd16 ok") })).toBeDefined()
  })

  it("any damaged byte, a truncation, or trailing bytes are refused with a reason", () => {
    const r = prng(99)
    for (let n = 0; n < 200; n++) {
      const bytes = Header.encode(randomSnapshot(r))!
      const at = r.int(bytes.length)
      const damaged = Buffer.from(bytes)
      damaged[at] = damaged[at]! ^ (1 + r.int(255))
      expect(() => Header.decode(damaged), `byte ${at} of ${bytes.length}`).toThrow()
      expect(() => Header.decode(bytes.subarray(0, r.int(bytes.length)))).toThrow()
      expect(() => Header.decode(Buffer.concat([bytes, Buffer.from([0])]))).toThrow()
    }
  })
})
