/**
 * Deterministic fixtures for the repository contract: modules, snapshots and
 * metric samples built from a seeded generator, so every adapter sees the
 * same inputs and a failure reproduces.
 */
import {
  agentId,
  makeMetadata,
  moduleHash,
  moduleId,
  type AgentId,
  type InstanceSnapshot,
  type ModuleMetadata,
  type RuntimeMetrics,
  type StoredModule
} from "@agent-runtime/domain"
import { createHash } from "node:crypto"

/** One page of linear memory: 64 KiB. */
export const PAGE_BYTES = 65_536

/** A small seeded generator (mulberry32): same seed → same sequence. */
export const seeded = (seed: number) => {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  /** An integer in `[lo, hi]`. */
  const int = (lo: number, hi: number): number => lo + Math.floor(next() * (hi - lo + 1))
  const bytes = (n: number): Uint8Array => {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = int(0, 255)
    return out
  }
  return { next, int, bytes }
}

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

/** A module whose hash really is the SHA-256 of its bytes. */
export const module = (
  id: string,
  bytes: Uint8Array,
  metadata: ModuleMetadata = makeMetadata({ name: id, version: "1.0.0" })
): StoredModule => ({ id: moduleId(id), hash: moduleHash(sha256(bytes)), bytes, metadata })

/** Metadata with every optional field set. */
export const fullMetadata = (): ModuleMetadata =>
  makeMetadata({
    name: "counter",
    version: "2.3.4-beta.1",
    author: "Ada <ada@example.org>",
    signature: Uint8Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff),
    memoryPages: 17,
    features: ["simd", "bulk-memory", "multi-value"]
  })

/**
 * Ids an adapter must keep apart and give back unchanged: path separators,
 * dot segments, reserved file-name characters, case variants, unicode.
 */
export const awkwardIds: ReadonlyArray<string> = [
  "plain",
  "Plain",
  "with/slash",
  "..",
  "../../escape",
  "back\\slash",
  "con",
  'a:b*c?d"e<f>g|h',
  "spaces and\ttabs\n",
  "ünïcödé-エージェント-🤖",
  "x".repeat(300)
]

/** A page of memory filled from the generator, or a sparse page with a few set bytes. */
export const page = (
  rng: ReturnType<typeof seeded>,
  index: number,
  sparse = false
): { index: number; data: Uint8Array } => {
  if (!sparse) return { index, data: rng.bytes(PAGE_BYTES) }
  const data = new Uint8Array(PAGE_BYTES)
  for (let i = 0; i < 8; i++) data[rng.int(0, PAGE_BYTES - 1)] = rng.int(1, 255)
  return { index, data }
}

/**
 * A snapshot with pages (ascending indexes, gaps for skipped zero pages) and
 * globals covering the values a WebAssembly global can hold through the JS
 * API: i32/f32/f64 as numbers (negative zero, NaN, infinities, subnormals)
 * and i64 as bigints at both ends of the range.
 */
export const snapshot = (
  agent: string,
  options: { readonly seed?: number; readonly pages?: ReadonlyArray<number>; readonly invocationCount?: number } = {}
): InstanceSnapshot => {
  const rng = seeded(options.seed ?? 1)
  const pageIndexes = options.pages ?? [0, 1, 5]
  const maxIndex = pageIndexes.reduce((m, i) => Math.max(m, i), -1)
  return {
    version: 1,
    agentId: agentId(agent),
    moduleId: moduleId("mod-" + agent),
    moduleHash: moduleHash("ab".repeat(32)),
    lifecycle: "Running",
    memoryLimit: 16 * 1024 * 1024,
    memoryReservation: (maxIndex + 1) * PAGE_BYTES,
    invocationCount: options.invocationCount ?? 42,
    takenAt: 1_700_000_000_123.5,
    state: {
      memoryBytes: (maxIndex + 1) * PAGE_BYTES,
      pages: pageIndexes.map((i, n) => page(rng, i, n % 2 === 1)),
      globals: {
        counter: 7,
        negZero: -0,
        nan: Number.NaN,
        inf: Number.POSITIVE_INFINITY,
        ninf: Number.NEGATIVE_INFINITY,
        tiny: 5e-324,
        f32ish: 3.4028234663852886e38,
        frac: -1234.5678,
        i32min: -2_147_483_648,
        i64max: 9_223_372_036_854_775_807n,
        i64min: -9_223_372_036_854_775_808n,
        i64zero: 0n,
        'name with "quotes" and ünïcödé': 1n
      }
    }
  }
}

/** Agent ids used by the contract. */
export const agents = (names: ReadonlyArray<string>): ReadonlyArray<AgentId> => names.map(agentId)

/**
 * Metric samples with integer fields (agents, bytes and cumulative counters
 * are integers in the domain), timestamps spread over `[from, from + span)`
 * including duplicates, recorded out of order when `shuffle` is set.
 */
export const samples = (seed: number, count: number, from: number, span: number): ReadonlyArray<RuntimeMetrics> => {
  const rng = seeded(seed)
  const levels = ["Normal", "Warning", "High", "Critical"] as const
  let invocations = 0
  let errors = 0
  let evictions = 0
  let hits = 0
  let misses = 0
  const out: Array<RuntimeMetrics> = []
  for (let i = 0; i < count; i++) {
    invocations += rng.int(0, 50)
    errors += rng.int(0, 3)
    evictions += rng.int(0, 1)
    hits += rng.int(0, 5)
    misses += rng.int(0, 2)
    const memoryTotal = 1 << 30
    const memoryUsed = rng.int(0, memoryTotal)
    // every 7th sample repeats the previous timestamp (ties keep recording order)
    const previous = out[out.length - 1]
    const timestamp = previous !== undefined && i % 7 === 0 ? previous.timestamp : from + rng.int(0, span - 1)
    out.push({
      timestamp,
      agents: rng.int(0, 10_000),
      memoryUsed,
      memoryTotal,
      pressureLevel: levels[rng.int(0, 3)]!,
      invocations,
      invocationErrors: errors,
      evictions,
      cacheHits: hits,
      cacheMisses: misses
    })
  }
  return out
}

/** A stable sort by timestamp (the order a repository must return samples in). */
export const byTime = (xs: ReadonlyArray<RuntimeMetrics>): ReadonlyArray<RuntimeMetrics> =>
  xs
    .map((m, i) => [m, i] as const)
    .sort(([a, i], [b, j]) => a.timestamp - b.timestamp || i - j)
    .map(([m]) => m)

/**
 * A snapshot of `count` pages (indexes 0…count-1) with a few set bytes each —
 * mostly zeros, as a real heap is, so it compresses well (adapters that
 * compress show it with this).
 */
export const sparseSnapshot = (agent: string, count: number, seed = count): InstanceSnapshot => {
  const base = snapshot(agent, { pages: [] })
  const rng = seeded(seed)
  const pages = Array.from({ length: count }, (_, i) => page(rng, i, true))
  const memoryBytes = count * PAGE_BYTES
  return { ...base, memoryReservation: memoryBytes, state: { ...base.state, memoryBytes, pages } }
}
