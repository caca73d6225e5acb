/**
 * Failures of the SQLite repositories: a locked database, a full disk, a
 * snapshot that cannot be stored, corrupt rows, a killed writer. Each
 * gives a typed `RepositoryError` naming the operation (never a throw), and
 * nothing is silently dropped or half-written.
 */
import {
  agentId,
  InstanceRepository,
  MetricsRepository,
  moduleId,
  ModuleRepository,
  RepositoryError,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { SqliteRepositories, type SqliteDatabase } from "../src/index.js"

const tempDb = Effect.map(TestFiles.tempDirectory(), (dir) => path.join(dir, "runtime.sqlite"))

const repositories = (options: SqliteDatabase.Options) =>
  Effect.gen(function* () {
    return {
      modules: yield* ModuleRepository,
      instances: yield* InstanceRepository,
      metrics: yield* MetricsRepository
    }
  }).pipe(Effect.provide(SqliteRepositories.layer(options)))

/** Runs `f` with the three repositories on `options`, inside the layer's scope. */
const withRepositories = <A, E>(
  options: SqliteDatabase.Options,
  f: (r: Effect.Success<ReturnType<typeof repositories>>) => Effect.Effect<A, E>
) =>
  Effect.gen(function* () {
    const r = {
      modules: yield* ModuleRepository,
      instances: yield* InstanceRepository,
      metrics: yield* MetricsRepository
    }
    return yield* f(r)
  }).pipe(Effect.provide(SqliteRepositories.layer(options)))

const expectRepositoryError = (e: unknown, operation: string, reason: RegExp) => {
  expect(e).toBeInstanceOf(RepositoryError)
  expect((e as RepositoryError).operation).toBe(operation)
  expect((e as RepositoryError).reason).toMatch(reason)
}

describe("SQLite repositories under failure", () => {
  it.effect(
    "a database locked by another connection past busy_timeout: every write fails with RepositoryError (SQLITE_BUSY), reads go on, nothing lands; after the lock, writes work",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const kept = Fixtures.module("kept", Fixtures.seeded(1).bytes(50))
        const keptSnapshot = Fixtures.snapshot("kept", { seed: 1 })
        yield* withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.modules.save(kept)
            yield* r.instances.saveState(keptSnapshot.agentId, keptSnapshot)
          })
        )

        const other = new Database(file)
        other.exec("BEGIN IMMEDIATE")
        try {
          yield* withRepositories({ path: file, busyTimeout: 50 }, (r) =>
            Effect.gen(function* () {
              const started = performance.now()
              const m = Fixtures.module("blocked", Fixtures.seeded(2).bytes(50))
              const s = Fixtures.snapshot("kept", { seed: 2, invocationCount: 99 })
              expectRepositoryError(yield* Effect.flip(r.modules.save(m)), "module.save", /SQLITE_BUSY/)
              expectRepositoryError(yield* Effect.flip(r.modules.delete(kept.id)), "module.delete", /SQLITE_BUSY/)
              expectRepositoryError(
                yield* Effect.flip(r.instances.saveState(s.agentId, s)),
                "instance.saveState",
                /SQLITE_BUSY/
              )
              expectRepositoryError(
                yield* Effect.flip(r.instances.deleteState(s.agentId)),
                "instance.deleteState",
                /SQLITE_BUSY/
              )
              expectRepositoryError(
                yield* Effect.flip(r.metrics.record(Fixtures.samples(1, 1, 0, 10)[0]!)),
                "metrics.record",
                /SQLITE_BUSY/
              )
              // it waited for the lock (busy_timeout) before giving up
              expect(performance.now() - started).toBeGreaterThanOrEqual(5 * 45)
              // WAL: readers are not blocked by the writer
              expect((yield* r.modules.load(kept.id)).hash).toBe(kept.hash)
              expectSnapshotEqual(Option.getOrThrow(yield* r.instances.loadState(keptSnapshot.agentId)), keptSnapshot)
              expect((yield* Effect.flip(r.modules.load(m.id)))._tag).toBe("ModuleNotFound")
            })
          )
        } finally {
          other.exec("COMMIT")
          other.close()
        }
        yield* withRepositories({ path: file, busyTimeout: 50 }, (r) =>
          Effect.gen(function* () {
            expectSnapshotEqual(Option.getOrThrow(yield* r.instances.loadState(keptSnapshot.agentId)), keptSnapshot)
            expect(yield* r.metrics.query({ from: -1e15, to: 1e15 })).toEqual([])
            yield* r.modules.save(Fixtures.module("after", new Uint8Array(4)))
            expect((yield* r.modules.list).map((e) => e.id)).toEqual(["kept", "after"])
          })
        )
      })
  )

  it.effect(
    "opening a new database while another connection holds the write lock fails with RepositoryError open; an up-to-date one opens (no write needed)",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        yield* withRepositories({ path: file }, () => Effect.void)
        const fresh = path.join(path.dirname(file), "fresh.sqlite")
        const blockers = [new Database(file), new Database(fresh)]
        blockers[1]!.pragma("journal_mode = WAL")
        for (const b of blockers) b.exec("BEGIN IMMEDIATE")
        try {
          expectRepositoryError(
            yield* Effect.flip(repositories({ path: fresh, busyTimeout: 30 })),
            "open",
            /SQLITE_BUSY/
          )
          const listed = yield* withRepositories({ path: file, busyTimeout: 30 }, (r) => r.modules.list)
          expect(listed).toEqual([])
        } finally {
          for (const b of blockers) {
            b.exec("COMMIT")
            b.close()
          }
        }
      })
  )

  it.effect(
    "a full disk (max_page_count): the write fails with RepositoryError (SQLITE_FULL) and the previous data is whole",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const rng = Fixtures.seeded(3)
        const small = Fixtures.module("small", rng.bytes(1000))
        const before = Fixtures.snapshot("agent", { seed: 3, pages: [0, 2] })
        yield* withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.modules.save(small)
            yield* r.instances.saveState(before.agentId, before)
          })
        )
        // room for ~200 KiB more: a 1 MiB module or a 32-page snapshot cannot fit
        const pages = (() => {
          const raw = new Database(file)
          const n = raw.pragma("page_count", { simple: true }) as number
          raw.close()
          return n
        })()
        yield* withRepositories({ path: file, maxPages: pages + 50 }, (r) =>
          Effect.gen(function* () {
            const big = Fixtures.module("big", rng.bytes(1024 * 1024))
            expectRepositoryError(yield* Effect.flip(r.modules.save(big)), "module.save", /SQLITE_FULL/)
            expect((yield* Effect.flip(r.modules.load(big.id)))._tag).toBe("ModuleNotFound")
            const huge = Fixtures.snapshot("agent", { seed: 4, pages: Array.from({ length: 32 }, (_, i) => i) })
            expectRepositoryError(
              yield* Effect.flip(r.instances.saveState(huge.agentId, huge)),
              "instance.saveState",
              /SQLITE_FULL/
            )
            // the old snapshot, not a mix of old and new pages
            expectSnapshotEqual(Option.getOrThrow(yield* r.instances.loadState(before.agentId)), before)
            expect(Buffer.compare((yield* r.modules.load(small.id)).bytes, small.bytes)).toBe(0)
            // small writes still fit
            yield* r.metrics.record(Fixtures.samples(5, 1, 0, 10)[0]!)
            expect((yield* r.metrics.query({ from: 0, to: 10 })).length).toBe(1)
          })
        )
      })
  )

  it.effect(
    "a snapshot the codec could not give back unchanged is refused before the transaction: the previous snapshot is whole",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        yield* withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            const before = Fixtures.snapshot("atomic", { seed: 5, pages: [0, 1, 2] })
            yield* r.instances.saveState(before.agentId, before)
            const base = Fixtures.snapshot("atomic", { seed: 6, pages: [0, 3, 4] })
            const repeated: InstanceSnapshot = {
              ...base,
              state: { ...base.state, pages: [...base.state.pages, { index: 3, data: new Uint8Array(65_536).fill(7) }] }
            }
            expectRepositoryError(
              yield* Effect.flip(r.instances.saveState(repeated.agentId, repeated)),
              "instance.saveState",
              /page 3 is out of order or repeated/
            )
            expectSnapshotEqual(Option.getOrThrow(yield* r.instances.loadState(before.agentId)), before)
            const invalid: InstanceSnapshot = { ...base, memoryLimit: Number.POSITIVE_INFINITY }
            expectRepositoryError(
              yield* Effect.flip(r.instances.saveState(invalid.agentId, invalid)),
              "instance.saveState",
              /snapshot cannot be stored: [\s\S]*memoryLimit/
            )
            const wide: InstanceSnapshot = { ...base, state: { ...base.state, globals: { g: -(1n << 63n) - 1n } } }
            expectRepositoryError(
              yield* Effect.flip(r.instances.saveState(wide.agentId, wide)),
              "instance.saveState",
              /outside the i64 range/
            )
            expectSnapshotEqual(Option.getOrThrow(yield* r.instances.loadState(before.agentId)), before)
            expect(yield* r.instances.listSaved).toEqual(["atomic"])
          })
        )
      })
  )

  it.effect(
    "corrupt rows (metadata, a truncated or flipped snapshot BLOB, a bad pressure level) are RepositoryErrors, not partial results",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const m = Fixtures.module("m", Fixtures.seeded(7).bytes(10))
        const s = Fixtures.snapshot("s", { seed: 7 })
        yield* withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.modules.save(m)
            yield* r.instances.saveState(s.agentId, s)
            yield* r.metrics.record(Fixtures.samples(7, 1, 100, 1)[0]!)
          })
        )
        const blob = (() => {
          const raw = new Database(file)
          const row = raw.prepare("SELECT snapshot FROM instance_snapshots").get() as { snapshot: Buffer }
          raw.prepare("UPDATE modules SET metadata = '{\"name\":1}'").run()
          raw
            .prepare("UPDATE instance_snapshots SET snapshot = ?")
            .run(row.snapshot.subarray(0, row.snapshot.length - 100))
          raw.prepare("UPDATE metrics SET pressure_level = 'Apocalyptic'").run()
          raw.close()
          return row.snapshot
        })()
        yield* withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            expectRepositoryError(
              yield* Effect.flip(r.modules.load(m.id)),
              "module.load",
              /metadata of module "m" is corrupt/
            )
            expectRepositoryError(yield* Effect.flip(r.modules.list), "module.list", /corrupt/)
            expectRepositoryError(
              yield* Effect.flip(r.instances.loadState(s.agentId)),
              "instance.loadState",
              /snapshot of agent "s" is corrupt: .*truncated/
            )
            expectRepositoryError(
              yield* Effect.flip(r.metrics.query({ from: 0, to: 1000 })),
              "metrics.query",
              /Apocalyptic/
            )
          })
        )
        const setBlob = (value: unknown) => {
          const raw = new Database(file)
          raw.prepare("UPDATE instance_snapshots SET snapshot = ?").run(value)
          raw.close()
        }
        // one flipped byte in the header row's payload (the globals), then in its header
        for (const at of [blob.length - 50, 40]) {
          const flipped = Buffer.from(blob)
          flipped[at] = flipped[at]! ^ 0x01
          setBlob(flipped)
          yield* withRepositories({ path: file }, (r) =>
            Effect.gen(function* () {
              expectRepositoryError(
                yield* Effect.flip(r.instances.loadState(s.agentId)),
                "instance.loadState",
                /is corrupt: .*checksum mismatch/
              )
            })
          )
        }
        setBlob("not a blob")
        yield* withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            expectRepositoryError(
              yield* Effect.flip(r.instances.loadState(s.agentId)),
              "instance.loadState",
              /not a BLOB/
            )
            // still deletable
            yield* r.instances.deleteState(s.agentId)
            expect(yield* r.instances.loadState(agentId("s"))).toEqual(Option.none())
            yield* r.modules.delete(moduleId("m"))
          })
        )
      })
  )

  it.effect("a NaN metric field is refused with RepositoryError (not stored as NULL)", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      yield* withRepositories({ path: file }, (r) =>
        Effect.gen(function* () {
          const sample = { ...Fixtures.samples(8, 1, 0, 10)[0]!, agents: Number.NaN }
          expectRepositoryError(yield* Effect.flip(r.metrics.record(sample)), "metrics.record", /NOT NULL/)
          expect(yield* r.metrics.query({ from: -1e15, to: 1e15 })).toEqual([])
        })
      )
    })
  )

  it.effect("using a closed connection is a RepositoryError, not a throw", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      const r = yield* repositories({ path: file })
      // the layer's scope is closed: the connection is gone
      expectRepositoryError(yield* Effect.flip(r.modules.list), "module.list", /not open/)
      expectRepositoryError(
        yield* Effect.flip(r.instances.saveState(agentId("x"), Fixtures.snapshot("x"))),
        "instance.saveState",
        /not open/
      )
    })
  )

  it("a writer killed with SIGKILL right after its saves were acknowledged: a new process finds every acknowledged write", () => {
    const dir = fs.mkdtempSync(path.join(process.env["TMPDIR"] ?? "/tmp", "agent-runtime-kill-"))
    try {
      const file = path.join(dir, "runtime.sqlite")
      const child = fileURLToPath(new URL("./support/killedWriter.ts", import.meta.url))
      const run = spawnSync(
        process.execPath,
        ["--conditions=@agent-runtime/source", "--import", "tsx", child, file, "25"],
        {
          encoding: "utf8",
          timeout: 60_000
        }
      )
      expect(run.signal).toBe("SIGKILL")
      const acknowledged = run.stdout
        .split("\n")
        .filter((l) => l.startsWith("saved "))
        .map((l) => l.slice(6))
      expect(acknowledged.length).toBe(25)
      return Effect.runPromise(
        withRepositories({ path: file }, (r) =>
          Effect.gen(function* () {
            for (const [i, id] of acknowledged.entries()) {
              const loaded = Option.getOrThrow(yield* r.instances.loadState(agentId(id)))
              expectSnapshotEqual(loaded, Fixtures.snapshot(id, { seed: i, invocationCount: i }))
            }
            expect((yield* r.instances.listSaved).length).toBe(25)
          })
        )
      ).finally(() => fs.rmSync(dir, { recursive: true, force: true }))
    } catch (e) {
      fs.rmSync(dir, { recursive: true, force: true })
      throw e
    }
  }, 60_000)
})
