/**
 * The IndexedDB repositories in real Chromium: round trips (metadata as
 * `ModuleMetadata`, snapshots with bigint / -0 / NaN globals and page bytes),
 * durability across closing and reopening the database (a page reload),
 * metrics range queries and aggregation, quota errors as `RepositoryError`,
 * and the fallback to memory when IndexedDB is unavailable.
 */
import {
  agentId,
  type InstanceSnapshot,
  InstanceRepository,
  makeMetadata,
  MetricsRepository,
  moduleHash,
  moduleId,
  ModuleMetadata,
  ModuleRepository,
  type RuntimeMetrics
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { IndexedDbRepositories } from "../src/index.js"

let n = 0
const freshName = () => `agent-runtime-test-${Date.now()}-${n++}`

const snapshot = (id: string): InstanceSnapshot => ({
  version: 1,
  agentId: agentId(id),
  moduleId: moduleId("m1"),
  moduleHash: moduleHash("ab".repeat(32)),
  lifecycle: "Running",
  memoryLimit: 2 * 1024 * 1024,
  memoryReservation: 1024 * 1024,
  fuel: 1000,
  invocationCount: 7,
  takenAt: 1_700_000_000_000,
  state: {
    memoryBytes: 3 * 65_536,
    pages: [
      { index: 0, data: Uint8Array.from({ length: 65_536 }, (_, i) => i & 0xff) },
      { index: 2, data: new Uint8Array(65_536).fill(9) }
    ],
    globals: { counter: 41, i64max: 9_223_372_036_854_775_807n, negZero: -0, nan: Number.NaN }
  }
})

const sample = (timestamp: number, invocations: number): RuntimeMetrics => ({
  timestamp,
  agents: 3,
  memoryUsed: 1000 * invocations,
  memoryTotal: 1 << 30,
  pressureLevel: "Normal",
  invocations,
  invocationErrors: 0,
  evictions: 0,
  cacheHits: 1,
  cacheMisses: 1
})

const withRepos = <A, E>(
  name: string,
  body: Effect.Effect<A, E, ModuleRepository | InstanceRepository | MetricsRepository>
) => Effect.scoped(Effect.provide(body, IndexedDbRepositories.layer({ name })))

describe("IndexedDB repositories", () => {
  it.effect(
    "modules: save, load (metadata is ModuleMetadata again), findByHash, list, delete; a missing one → ModuleNotFound",
    () =>
      withRepos(
        freshName(),
        Effect.gen(function* () {
          const repo = yield* ModuleRepository
          const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])
          const metadata = makeMetadata({
            name: "counter",
            version: "1.2.3",
            author: "Ada",
            signature: new Uint8Array([1, 2, 3])
          })
          yield* repo.save({ id: moduleId("m1"), hash: moduleHash("cd".repeat(32)), bytes, metadata })
          bytes[0] = 255 // the stored copy is not the caller's buffer
          const loaded = yield* repo.load(moduleId("m1"))
          expect(loaded.metadata).toBeInstanceOf(ModuleMetadata)
          expect({ ...loaded.metadata }).toEqual({ ...metadata })
          expect([...loaded.bytes]).toEqual([0, 97, 115, 109, 1, 0, 0, 0])
          expect(yield* repo.findByHash(moduleHash("cd".repeat(32)))).toEqual(Option.some("m1"))
          expect(yield* repo.findByHash(moduleHash("00".repeat(32)))).toEqual(Option.none())
          expect((yield* repo.list).map((m) => m.id)).toEqual(["m1"])
          yield* repo.delete(moduleId("m1"))
          expect((yield* Effect.flip(repo.load(moduleId("m1"))))._tag).toBe("ModuleNotFound")
          expect((yield* Effect.flip(repo.delete(moduleId("m1"))))._tag).toBe("ModuleNotFound")
        })
      )
  )

  it.effect("snapshots survive closing and reopening the database (a page reload) with every value intact", () =>
    Effect.gen(function* () {
      const name = freshName()
      yield* withRepos(
        name,
        Effect.flatMap(Effect.service(InstanceRepository), (repo) => repo.saveState(agentId("a1"), snapshot("a1")))
      )
      const loaded = yield* withRepos(
        name,
        Effect.flatMap(Effect.service(InstanceRepository), (repo) => repo.loadState(agentId("a1")))
      )
      expect(Option.isSome(loaded)).toBe(true)
      const s = Option.getOrThrow(loaded)
      expect(s.state.globals["i64max"]).toBe(9_223_372_036_854_775_807n)
      expect(Object.is(s.state.globals["negZero"], -0)).toBe(true)
      expect(Number.isNaN(s.state.globals["nan"])).toBe(true)
      expect(s.state.pages.map((p) => p.index)).toEqual([0, 2])
      expect(s.state.pages[0]!.data).toBeInstanceOf(Uint8Array)
      expect(s.state.pages[0]!.data[300]).toBe(300 & 0xff)
      expect(s.lifecycle).toBe("Running")
      const ids = yield* withRepos(
        name,
        Effect.gen(function* () {
          const repo = yield* InstanceRepository
          yield* repo.saveState(agentId("a2"), snapshot("a2"))
          yield* repo.deleteState(agentId("a1"))
          yield* repo.deleteState(agentId("never-saved"))
          return yield* repo.listSaved
        })
      )
      expect(ids).toEqual(["a2"])
    })
  )

  it.effect("metrics: half-open range queries, oldest first, and aggregation into buckets", () =>
    withRepos(
      freshName(),
      Effect.gen(function* () {
        const repo = yield* MetricsRepository
        for (const [t, inv] of [
          [3000, 30],
          [1000, 10],
          [2000, 20],
          [4000, 45]
        ] as const)
          yield* repo.record(sample(t, inv))
        expect((yield* repo.query({ from: 1000, to: 4000 })).map((m) => m.timestamp)).toEqual([1000, 2000, 3000])
        expect(yield* repo.query({ from: 5000, to: 1000 })).toEqual([])
        const buckets = yield* repo.aggregate({ from: 0, to: 10_000 }, 2000)
        expect(buckets.map((b) => [b.bucketStart, b.samples, b.invocations])).toEqual([
          [0, 1, 0],
          [2000, 2, 10],
          [4000, 1, 0]
        ])
      })
    )
  )

  it("a QuotaExceededError becomes a RepositoryError saying the quota is exceeded", () => {
    const e = IndexedDbRepositories.repositoryError(
      "saveState",
      new DOMException("The quota has been exceeded.", "QuotaExceededError")
    )
    expect(e._tag).toBe("RepositoryError")
    expect(e.operation).toBe("saveState")
    expect(e.reason).toMatch(/^quota exceeded/)
  })

  it.effect(
    "IndexedDB unavailable (private mode): layer fails with RepositoryError; layerOrMemory falls back to memory and says why",
    () =>
      Effect.gen(function* () {
        const g = globalThis as { indexedDB?: unknown }
        const saved = g.indexedDB
        Object.defineProperty(globalThis, "indexedDB", { value: undefined, configurable: true })
        try {
          const e = yield* Effect.flip(Effect.scoped(Layer.build(IndexedDbRepositories.layer({ name: freshName() }))))
          expect(e._tag).toBe("RepositoryError")
          expect(e.reason).toMatch(/IndexedDB is not available/)
          const status = yield* Effect.scoped(
            Effect.gen(function* () {
              const s = yield* IndexedDbRepositories.IndexedDbStatus
              const repo = yield* InstanceRepository
              yield* repo.saveState(agentId("x"), snapshot("x"))
              expect(yield* repo.listSaved).toEqual(["x"])
              return s
            }).pipe(Effect.provide(IndexedDbRepositories.layerOrMemory({ name: freshName() })))
          )
          expect(status.backend).toBe("memory")
          expect(status.reason).toMatch(/IndexedDB is not available/)
        } finally {
          Object.defineProperty(globalThis, "indexedDB", { value: saved, configurable: true })
        }
        const ok = yield* Effect.scoped(
          Effect.provide(
            Effect.service(IndexedDbRepositories.IndexedDbStatus),
            IndexedDbRepositories.layerOrMemory({ name: freshName() })
          )
        )
        expect(ok.backend).toBe("indexedDB")
      })
  )
})
