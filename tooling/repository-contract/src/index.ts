/**
 * The repository contract: one set of tests every `ModuleRepository`,
 * `InstanceRepository` and `MetricsRepository` adapter runs — the in-memory
 * adapters of `@agent-runtime/domain` included — so all adapters are proven
 * to behave the same (spec "Repository Interfaces").
 *
 * Each function registers a `describe` block. `make` is called once per test
 * and must return a layer over fresh, empty storage (a new directory, a new
 * database file); the layer's scope closes at the end of the test.
 *
 * @example
 * moduleRepositoryContract("memory", () => ModuleRepositories.layerMemory)
 */
import {
  InstanceRepository,
  makeMetadata,
  MetricsRepositories,
  MetricsRepository,
  ModuleMetadata,
  moduleHash,
  moduleId,
  ModuleRepository,
  agentId,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as F from "./fixtures.js"

export * as Fixtures from "./fixtures.js"

/** A factory of layers over fresh storage (one call per test). */
export type MakeLayer<S> = () => Layer.Layer<S, unknown>

const withoutPageData = (s: InstanceSnapshot) => ({
  ...s,
  state: { ...s.state, pages: s.state.pages.map((p) => ({ index: p.index, length: p.data.byteLength })) }
})

/** Asserts two snapshots are equal: fields, globals (bigint, -0, NaN) and page bytes. */
export const expectSnapshotEqual = (actual: InstanceSnapshot, expected: InstanceSnapshot) => {
  // `toEqual` compares primitives with Object.is: -0 ≠ 0, NaN = NaN, 1n ≠ 1;
  // page bytes are compared with Buffer.compare (a deep equal of MiBs is slow)
  expect(withoutPageData(actual)).toEqual(withoutPageData(expected))
  expect(Object.is(actual.state.globals["negZero"], -0)).toBe(true)
  expect(typeof actual.state.globals["i64max"]).toBe("bigint")
  expect(typeof actual.state.globals["counter"]).toBe("number")
  for (const [i, p] of actual.state.pages.entries()) {
    expect(p.data).toBeInstanceOf(Uint8Array)
    expect(Buffer.compare(p.data, expected.state.pages[i]!.data)).toBe(0)
  }
}

/** The `ModuleRepository` contract. */
export const moduleRepositoryContract = (adapter: string, make: MakeLayer<ModuleRepository>) =>
  describe(`ModuleRepository contract: ${adapter}`, () => {
    const run = <A, E>(f: (repo: ModuleRepository["Service"]) => Effect.Effect<A, E>) =>
      Effect.gen(function* () {
        const repo = yield* ModuleRepository
        return yield* f(repo)
      }).pipe(Effect.provide(make()))

    it.effect("save then load gives back id, hash, bytes and metadata", () =>
      run((repo) =>
        Effect.gen(function* () {
          const rng = F.seeded(3)
          const m = F.module("counter", rng.bytes(1000), F.fullMetadata())
          yield* repo.save(m)
          const loaded = yield* repo.load(m.id)
          expect(loaded.id).toBe(m.id)
          expect(loaded.hash).toBe(m.hash)
          expect(Buffer.compare(loaded.bytes, m.bytes)).toBe(0)
          expect(loaded.metadata).toBeInstanceOf(ModuleMetadata)
          expect({ ...loaded.metadata }).toEqual({ ...m.metadata })
          // metadata without the optional fields stays without them
          const bare = F.module("bare", rng.bytes(10))
          yield* repo.save(bare)
          const loadedBare = yield* repo.load(bare.id)
          expect("author" in loadedBare.metadata && loadedBare.metadata.author !== undefined).toBe(false)
          expect(loadedBare.metadata.signature).toBeUndefined()
          expect({ ...loadedBare.metadata }).toEqual({ ...bare.metadata })
        })
      )
    )

    it.effect("the stored bytes do not change when the caller reuses its buffer", () =>
      run((repo) =>
        Effect.gen(function* () {
          const bytes = F.seeded(4).bytes(64)
          const m = F.module("reused", bytes)
          yield* repo.save(m)
          const copy = bytes.slice()
          bytes.fill(0)
          const loaded = yield* repo.load(m.id)
          expect(Buffer.compare(loaded.bytes, copy)).toBe(0)
        })
      )
    )

    it.effect("loading a missing module fails with ModuleNotFound naming it", () =>
      run((repo) =>
        Effect.gen(function* () {
          const error = yield* Effect.flip(repo.load(moduleId("nope")))
          expect(error._tag).toBe("ModuleNotFound")
          expect(error._tag === "ModuleNotFound" && error.moduleId).toBe("nope")
        })
      )
    )

    it.effect("save replaces a module with the same id", () =>
      run((repo) =>
        Effect.gen(function* () {
          const rng = F.seeded(5)
          yield* repo.save(F.module("m", rng.bytes(100), makeMetadata({ name: "m", version: "1" })))
          const v2 = F.module("m", rng.bytes(50), makeMetadata({ name: "m", version: "2", memoryPages: 3 }))
          yield* repo.save(v2)
          const loaded = yield* repo.load(v2.id)
          expect(loaded.hash).toBe(v2.hash)
          expect(Buffer.compare(loaded.bytes, v2.bytes)).toBe(0)
          expect(loaded.metadata.version).toBe("2")
          expect(loaded.metadata.memoryPages).toBe(3)
          const all = yield* repo.list
          expect(all.map((e) => e.id)).toEqual(["m"])
        })
      )
    )

    it.effect("findByHash finds the id of a module with that hash, none otherwise", () =>
      run((repo) =>
        Effect.gen(function* () {
          const rng = F.seeded(6)
          const a = F.module("a", rng.bytes(30))
          const b = F.module("b", rng.bytes(30))
          const aTwin = F.module("a-twin", a.bytes)
          yield* repo.save(a)
          yield* repo.save(b)
          yield* repo.save(aTwin)
          expect(yield* repo.findByHash(b.hash)).toEqual(Option.some(b.id))
          const found = yield* repo.findByHash(a.hash)
          expect(Option.isSome(found) && ["a", "a-twin"].includes(found.value)).toBe(true)
          expect(yield* repo.findByHash(moduleHash("0".repeat(64)))).toEqual(Option.none())
          yield* repo.delete(b.id)
          expect(yield* repo.findByHash(b.hash)).toEqual(Option.none())
        })
      )
    )

    it.effect("list gives every module's id and metadata", () =>
      run((repo) =>
        Effect.gen(function* () {
          expect(yield* repo.list).toEqual([])
          const rng = F.seeded(7)
          const ms = ["one", "two", "three"].map((id, i) =>
            F.module(id, rng.bytes(10 + i), makeMetadata({ name: id, version: `${i}.0.0`, features: [id] }))
          )
          for (const m of ms) yield* repo.save(m)
          const listed = yield* repo.list
          const byId = new Map(listed.map((e) => [e.id as string, e.metadata]))
          expect([...byId.keys()].sort()).toEqual(["one", "three", "two"])
          for (const m of ms) expect({ ...byId.get(m.id) }).toEqual({ ...m.metadata })
        })
      )
    )

    it.effect("delete removes a module; deleting a missing one fails with ModuleNotFound", () =>
      run((repo) =>
        Effect.gen(function* () {
          const m = F.module("gone", F.seeded(8).bytes(20))
          yield* repo.save(m)
          yield* repo.delete(m.id)
          expect((yield* Effect.flip(repo.load(m.id)))._tag).toBe("ModuleNotFound")
          expect(yield* repo.list).toEqual([])
          const again = yield* Effect.flip(repo.delete(m.id))
          expect(again._tag).toBe("ModuleNotFound")
        })
      )
    )

    it.effect("ids with separators, dot segments, reserved characters and unicode stay distinct", () =>
      run((repo) =>
        Effect.gen(function* () {
          const rng = F.seeded(9)
          const ms = F.awkwardIds.map((id) => F.module(id, rng.bytes(16)))
          for (const m of ms) yield* repo.save(m)
          for (const m of ms) {
            const loaded = yield* repo.load(m.id)
            expect(loaded.id).toBe(m.id)
            expect(Buffer.compare(loaded.bytes, m.bytes)).toBe(0)
          }
          expect((yield* repo.list).map((e) => e.id as string).sort()).toEqual([...F.awkwardIds].sort())
        })
      )
    )

    it.effect(
      "an empty and a large (3 MiB) module round-trip",
      () =>
        run((repo) =>
          Effect.gen(function* () {
            const empty = F.module("empty", new Uint8Array(0))
            const large = F.module("large", F.seeded(10).bytes(3 * 1024 * 1024))
            yield* repo.save(empty)
            yield* repo.save(large)
            expect((yield* repo.load(empty.id)).bytes.length).toBe(0)
            const loaded = yield* repo.load(large.id)
            expect(loaded.bytes.length).toBe(large.bytes.length)
            expect(Buffer.compare(loaded.bytes, large.bytes)).toBe(0)
          })
        ),
      60_000
    )
  })

/** The `InstanceRepository` contract. */
export const instanceRepositoryContract = (adapter: string, make: MakeLayer<InstanceRepository>) =>
  describe(`InstanceRepository contract: ${adapter}`, () => {
    const run = <A, E>(f: (repo: InstanceRepository["Service"]) => Effect.Effect<A, E>) =>
      Effect.gen(function* () {
        const repo = yield* InstanceRepository
        return yield* f(repo)
      }).pipe(Effect.provide(make()))

    it.effect("loading an agent that was never saved gives none", () =>
      run((repo) =>
        Effect.gen(function* () {
          expect(yield* repo.loadState(agentId("never"))).toEqual(Option.none())
          expect(yield* repo.listSaved).toEqual([])
        })
      )
    )

    it.effect("a snapshot round-trips exactly: pages, header, globals (bigint, -0, NaN, ±Infinity)", () =>
      run((repo) =>
        Effect.gen(function* () {
          const s = F.snapshot("alpha")
          yield* repo.saveState(s.agentId, s)
          const loaded = yield* repo.loadState(s.agentId)
          expect(Option.isSome(loaded)).toBe(true)
          expectSnapshotEqual(Option.getOrThrow(loaded), s)
        })
      )
    )

    it.effect("every lifecycle state and a snapshot without pages or globals round-trip", () =>
      run((repo) =>
        Effect.gen(function* () {
          const states = ["Starting", "Running", "Paused", "Stopping", "Stopped", "Failed", "Critical"] as const
          for (const [i, lifecycle] of states.entries()) {
            const base = F.snapshot(`agent-${i}`, { pages: [] })
            const s: InstanceSnapshot = { ...base, lifecycle, state: { memoryBytes: 0, pages: [], globals: {} } }
            yield* repo.saveState(s.agentId, s)
            expect(withoutPageData(Option.getOrThrow(yield* repo.loadState(s.agentId)))).toEqual(withoutPageData(s))
          }
        })
      )
    )

    it.effect("saving again replaces the whole snapshot (no pages of the old one survive)", () =>
      run((repo) =>
        Effect.gen(function* () {
          const first = F.snapshot("beta", { seed: 1, pages: [0, 1, 2, 3, 9] })
          const second = F.snapshot("beta", { seed: 2, pages: [0, 4], invocationCount: 43 })
          yield* repo.saveState(first.agentId, first)
          yield* repo.saveState(second.agentId, second)
          expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(second.agentId)), second)
          expect(yield* repo.listSaved).toEqual([second.agentId])
        })
      )
    )

    it.effect(
      "saves that change one page, drop one, add one, change nothing, or change only the header each round-trip exactly",
      () =>
        run((repo) =>
          Effect.gen(function* () {
            const first = F.snapshot("delta", { seed: 3, pages: [0, 1, 2, 3] })
            const edited = first.state.pages.flatMap((p) => {
              if (p.index === 3) return [] // went zero
              if (p.index !== 1) return [p]
              const data = new Uint8Array(p.data)
              data[12_345] = data[12_345]! ^ 0x5a
              return [{ index: 1, data }]
            })
            const added = F.snapshot("delta", { seed: 4, pages: [6] }).state.pages
            const second: InstanceSnapshot = {
              ...first,
              invocationCount: 43,
              state: { ...first.state, memoryBytes: 7 * 65_536, pages: [...edited, ...added] }
            }
            const third: InstanceSnapshot = { ...second, invocationCount: 44, takenAt: second.takenAt + 1 }
            for (const s of [first, second, second, third, first]) {
              yield* repo.saveState(s.agentId, s)
              expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(s.agentId)), s)
            }
          })
        )
    )

    it.effect("deleteState removes a snapshot; deleting a missing one succeeds", () =>
      run((repo) =>
        Effect.gen(function* () {
          const s = F.snapshot("gamma")
          yield* repo.saveState(s.agentId, s)
          yield* repo.deleteState(s.agentId)
          expect(yield* repo.loadState(s.agentId)).toEqual(Option.none())
          yield* repo.deleteState(s.agentId)
          yield* repo.deleteState(agentId("never-saved"))
          expect(yield* repo.listSaved).toEqual([])
        })
      )
    )

    it.effect("listSaved gives every saved agent id, awkward ids included, each loadable", () =>
      run((repo) =>
        Effect.gen(function* () {
          for (const [i, id] of F.awkwardIds.entries()) {
            const s = F.snapshot(id, { seed: i, pages: [i] })
            yield* repo.saveState(s.agentId, s)
          }
          const listed = yield* repo.listSaved
          expect(listed.map((id) => id as string).sort()).toEqual([...F.awkwardIds].sort())
          for (const [i, id] of F.awkwardIds.entries()) {
            const loaded = Option.getOrThrow(yield* repo.loadState(agentId(id)))
            expectSnapshotEqual(loaded, F.snapshot(id, { seed: i, pages: [i] }))
          }
        })
      )
    )

    it.effect(
      "a large snapshot (64 pages = 4 MiB, last page index 1023) round-trips",
      () =>
        run((repo) =>
          Effect.gen(function* () {
            const pages = Array.from({ length: 64 }, (_, i) => i * 16 + (i === 63 ? 15 : 0))
            const s = F.snapshot("large", { seed: 11, pages })
            yield* repo.saveState(s.agentId, s)
            expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(s.agentId)), s)
          })
        ),
      60_000
    )
  })

/** The `MetricsRepository` contract; `MetricsRepositories.aggregateSamples` is the reference for `aggregate`. */
export const metricsRepositoryContract = (adapter: string, make: MakeLayer<MetricsRepository>) =>
  describe(`MetricsRepository contract: ${adapter}`, () => {
    const run = <A, E>(f: (repo: MetricsRepository["Service"]) => Effect.Effect<A, E>) =>
      Effect.gen(function* () {
        const repo = yield* MetricsRepository
        return yield* f(repo)
      }).pipe(Effect.provide(make()))

    it.effect("query gives the samples with from ≤ timestamp < to, oldest first, ties in recording order", () =>
      run((repo) =>
        Effect.gen(function* () {
          const xs = F.samples(1, 300, 1_000_000, 10_000)
          for (const x of xs) yield* repo.record(x)
          const sorted = F.byTime(xs)
          expect(yield* repo.query({ from: 0, to: Number.MAX_SAFE_INTEGER })).toEqual(sorted)
          const from = sorted[40]!.timestamp
          const to = sorted[200]!.timestamp
          const expected = sorted.filter((m) => m.timestamp >= from && m.timestamp < to)
          expect(expected.length).toBeGreaterThan(100)
          expect(yield* repo.query({ from, to })).toEqual(expected)
          expect(yield* repo.query({ from: to, to: from })).toEqual([])
          expect(yield* repo.query({ from, to: from })).toEqual([])
        })
      )
    )

    it.effect(
      "aggregate equals aggregateSamples over the same range, for several granularities",
      () =>
        run((repo) =>
          Effect.gen(function* () {
            const xs = F.samples(2, 2_000, 1_700_000_000_000, 3_600_000)
            for (const x of xs) yield* repo.record(x)
            const sorted = F.byTime(xs)
            const ranges = [
              { from: 0, to: Number.MAX_SAFE_INTEGER },
              { from: sorted[100]!.timestamp, to: sorted[1500]!.timestamp },
              { from: 1_700_000_000_000 + 1_234_567, to: 1_700_000_000_000 + 2_000_001 }
            ]
            for (const range of ranges) {
              const inRange = sorted.filter((m) => m.timestamp >= range.from && m.timestamp < range.to)
              for (const g of [1, 7, 1_000, 60_000, 333_333, 3_600_000, 86_400_000]) {
                const actual = yield* repo.aggregate(range, g)
                expect(actual).toEqual(MetricsRepositories.aggregateSamples(inRange, g))
              }
            }
            const buckets = yield* repo.aggregate(ranges[0]!, 60_000)
            expect(buckets.length).toBeGreaterThan(30)
            expect(buckets.reduce((n, b) => n + b.samples, 0)).toBe(xs.length)
          })
        ),
      60_000
    )

    it.effect(
      "aggregate: buckets align to multiples of the granularity (negative times floor down), empty ones are omitted",
      () =>
        run((repo) =>
          Effect.gen(function* () {
            const base = F.samples(3, 6, 0, 1)[0]!
            const at = (timestamp: number, invocations: number, agents: number) => ({
              ...base,
              timestamp,
              invocations,
              agents
            })
            const xs = [
              at(-1, 1, 4),
              at(-1_000, 2, 6),
              at(0, 10, 1),
              at(999, 15, 3),
              at(5_500, 40, 8),
              at(5_001, 30, 2)
            ]
            for (const x of xs) yield* repo.record(x)
            const actual = yield* repo.aggregate({ from: -10_000, to: 10_000 }, 1_000)
            expect(actual.map((b) => [b.bucketStart, b.bucketEnd, b.samples])).toEqual([
              [-1_000, 0, 2],
              [0, 1_000, 2],
              [5_000, 6_000, 2]
            ])
            expect(actual[1]!.invocations).toBe(5)
            expect(actual[1]!.agentsAvg).toBe(2)
            expect(actual[2]!.invocations).toBe(10) // 5 001 (30) then 5 500 (40)
            expect(actual).toEqual(MetricsRepositories.aggregateSamples(F.byTime(xs), 1_000))
          })
        )
    )

    it.effect("aggregate with a granularity that is not positive gives no buckets", () =>
      run((repo) =>
        Effect.gen(function* () {
          for (const x of F.samples(4, 20, 0, 1_000)) yield* repo.record(x)
          for (const g of [0, -1_000, Number.NaN]) {
            expect(yield* repo.aggregate({ from: 0, to: 1_000 }, g)).toEqual([])
          }
          expect(yield* repo.aggregate({ from: 5_000, to: 6_000 }, 100)).toEqual([])
        })
      )
    )
  })

export * as TestFiles from "./files.js"
