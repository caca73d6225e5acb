import {
  agentId,
  InstanceRepository,
  MetricsRepository,
  ModuleRepository,
  RepositoryError,
  SnapshotCodec,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Scope from "effect/Scope"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { migrate } from "../src/internal/migrations.js"
import { SqliteDatabase, SqliteModuleRepository, SqliteRepositories } from "../src/index.js"

const tempDb = Effect.map(TestFiles.tempDirectory(), (dir) => path.join(dir, "runtime.sqlite"))

const versions = (file: string) => {
  const raw = new Database(file, { readonly: true })
  try {
    return (raw.prepare("SELECT version FROM schema_version ORDER BY version").all() as Array<{ version: number }>).map(
      (r) => r.version
    )
  } finally {
    raw.close()
  }
}

/**
 * Writes `s` as schema version 1–2 stored it: a `snapshots` row with the JSON
 * header (globals as `[name, "number", hex of the f64 bits]` or
 * `[name, "bigint", decimal]`) and a `snapshot_pages` row per page.
 */
const writeLegacyRows = (db: Database.Database, s: InstanceSnapshot) => {
  const f64Hex = (n: number) => {
    const b = Buffer.alloc(8)
    b.writeDoubleBE(n)
    return b.toString("hex")
  }
  const header = {
    format: 1,
    version: s.version,
    agentId: s.agentId,
    moduleId: s.moduleId,
    moduleHash: s.moduleHash,
    lifecycle: s.lifecycle,
    memoryLimit: s.memoryLimit,
    memoryReservation: s.memoryReservation,
    invocationCount: s.invocationCount,
    takenAt: s.takenAt,
    memoryBytes: s.state.memoryBytes,
    pages: s.state.pages.length,
    globals: Object.entries(s.state.globals).map(([name, v]) =>
      typeof v === "bigint" ? [name, "bigint", v.toString()] : [name, "number", f64Hex(v)]
    )
  }
  db.prepare("INSERT INTO snapshots (agent_id, header) VALUES (?, ?)").run(s.agentId, JSON.stringify(header))
  const page = db.prepare("INSERT INTO snapshot_pages (agent_id, page_index, data) VALUES (?, ?, ?)")
  for (const p of s.state.pages) page.run(s.agentId, p.index, p.data)
}

const expectOpenError = (error: RepositoryError, reason: RegExp) => {
  expect(error).toBeInstanceOf(RepositoryError)
  expect(error.operation).toBe("open")
  expect(error.reason).toMatch(reason)
}

/** Runs a child process to its end (killed after 100 s): its exit status or signal and its output. */
const runChild = (args: ReadonlyArray<string>) =>
  new Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += String(d)))
    child.stderr.on("data", (d) => (stderr += String(d)))
    const timer = setTimeout(() => child.kill("SIGKILL"), 100_000)
    child.on("exit", (status, signal) => {
      clearTimeout(timer)
      resolve({ status, signal, stdout, stderr })
    })
  })

describe("SqliteDatabase", () => {
  it.effect("opens in WAL mode with the schema at the latest version; closes when the scope closes", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      const scope = yield* Scope.make()
      const { db, schemaVersion } = yield* Scope.provide(SqliteDatabase.open({ path: file }), scope)
      expect(schemaVersion).toBe(SqliteDatabase.SCHEMA_VERSION)
      expect(SqliteDatabase.SCHEMA_VERSION).toBe(7)
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal")
      expect(db.pragma("busy_timeout", { simple: true })).toBe(5000)
      expect(versions(file)).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(db.open).toBe(true)
      yield* Scope.close(scope, Exit.void)
      expect(db.open).toBe(false)
    })
  )

  it.effect("one layer gives all three repositories on one file; a reopened database keeps the data", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      const m = Fixtures.module("kept", Fixtures.seeded(1).bytes(100))
      const sample = Fixtures.samples(1, 1, 1000, 10)[0]!
      yield* Effect.gen(function* () {
        yield* (yield* ModuleRepository).save(m)
        yield* (yield* MetricsRepository).record(sample)
      }).pipe(Effect.provide(SqliteRepositories.layer({ path: file })))
      const [loaded, samples] = yield* Effect.gen(function* () {
        return [
          yield* (yield* ModuleRepository).load(m.id),
          yield* (yield* MetricsRepository).query({ from: 0, to: 1e9 })
        ] as const
      }).pipe(Effect.provide(SqliteRepositories.layer({ path: file })))
      expect(loaded.hash).toBe(m.hash)
      expect(samples).toEqual([sample])
    })
  )

  it.effect("opening a database of an older schema version migrates it and keeps its data", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      // a database written by the version of this package that had migration 1 only
      const old = new Database(file)
      old.pragma("journal_mode = WAL")
      expect(migrate(old, 1)).toBe(1)
      const m = Fixtures.module("from-v1", Fixtures.seeded(2).bytes(64), Fixtures.fullMetadata())
      yield* Effect.scoped(
        Effect.gen(function* () {
          const repo = yield* SqliteModuleRepository.make({ db: old, path: file, schemaVersion: 1 })
          yield* repo.save(m)
        })
      )
      expect(old.prepare("SELECT name FROM sqlite_master WHERE name = 'metrics'").get()).toBeUndefined()
      old.close()
      expect(versions(file)).toEqual([1])

      const [loaded, buckets] = yield* Effect.gen(function* () {
        const metrics = yield* MetricsRepository
        for (const s of Fixtures.samples(3, 10, 0, 1000)) yield* metrics.record(s)
        return [
          yield* (yield* ModuleRepository).load(m.id),
          yield* metrics.aggregate({ from: 0, to: 1000 }, 1000)
        ] as const
      }).pipe(Effect.provide(SqliteRepositories.layer({ path: file })))
      expect(versions(file)).toEqual([1, 2, 3, 4, 5, 6, 7])
      expect(Buffer.compare(loaded.bytes, m.bytes)).toBe(0)
      expect({ ...loaded.metadata }).toEqual({ ...m.metadata })
      expect(buckets.map((b) => b.samples)).toEqual([10])
    })
  )

  it.effect(
    "migration 3 converts the snapshot rows of version 2 (header + a row per page) to SnapshotCodec BLOBs and drops the old tables",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const old = new Database(file)
        old.pragma("journal_mode = WAL")
        expect(migrate(old, 2)).toBe(2)
        const full = Fixtures.snapshot("legacy-full", { seed: 21, pages: [0, 1, 7] })
        const bare: InstanceSnapshot = {
          ...Fixtures.snapshot("legacy-bare", { pages: [] }),
          lifecycle: "Paused",
          state: { memoryBytes: 0, pages: [], globals: {} }
        }
        const awkward = Fixtures.snapshot(Fixtures.awkwardIds[9]!, { seed: 22, pages: [3] })
        for (const s of [full, bare, awkward]) writeLegacyRows(old, s)
        // rows the old format could not read either: a corrupt header; a page missing
        old.prepare("INSERT INTO snapshots (agent_id, header) VALUES (?, ?)").run("legacy-corrupt", "{not json")
        const missing = Fixtures.snapshot("legacy-missing-page", { seed: 23, pages: [0, 2] })
        writeLegacyRows(old, missing)
        old.prepare("DELETE FROM snapshot_pages WHERE agent_id = ? AND page_index = 2").run("legacy-missing-page")
        old.close()

        yield* Effect.gen(function* () {
          const instances = yield* InstanceRepository
          expect(yield* instances.listSaved).toEqual([
            "legacy-full",
            "legacy-bare",
            awkward.agentId,
            "legacy-corrupt",
            "legacy-missing-page"
          ])
          expectSnapshotEqual(Option.getOrThrow(yield* instances.loadState(full.agentId)), full)
          expectSnapshotEqual(Option.getOrThrow(yield* instances.loadState(awkward.agentId)), awkward)
          expect(Option.getOrThrow(yield* instances.loadState(bare.agentId))).toEqual(bare)
          for (const id of ["legacy-corrupt", "legacy-missing-page"]) {
            const error = yield* Effect.flip(instances.loadState(agentId(id)))
            expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.loadState" })
            expect(error.reason).toMatch(
              id === "legacy-corrupt"
                ? /is corrupt: .*not converted by migration 3: .*corrupt header/
                : /is corrupt: .*not converted by migration 3: .*has 1 pages, its header says 2/
            )
            yield* instances.deleteState(agentId(id))
          }
          expect(yield* instances.listSaved).toEqual(["legacy-full", "legacy-bare", awkward.agentId])
        }).pipe(Effect.provide(SqliteRepositories.layer({ path: file })))

        expect(versions(file)).toEqual([1, 2, 3, 4, 5, 6, 7])
        const raw = new Database(file, { readonly: true })
        try {
          const tables = (
            raw.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as Array<{
              name: string
            }>
          ).map((r) => r.name)
          expect(tables).toContain("instance_snapshots")
          expect(tables).not.toContain("snapshots")
          expect(tables).not.toContain("snapshot_pages")
          // converted rows are the codec's bytes (uncompressed: the migration cannot await a CompressionStream)
          const row = raw.prepare("SELECT snapshot FROM instance_snapshots WHERE agent_id = ?").get("legacy-full") as {
            snapshot: Buffer
          }
          const decoded = yield* SnapshotCodec.decode(row.snapshot, { expectedModuleHash: full.moduleHash })
          expectSnapshotEqual(decoded, full)
        } finally {
          raw.close()
        }
      })
  )

  it.effect(
    "migration 3 failing (a table in its way) rolls back: version 2 and its snapshot rows stay as they were",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const old = new Database(file)
        migrate(old, 2)
        const s = Fixtures.snapshot("kept-v2", { seed: 31 })
        writeLegacyRows(old, s)
        old.exec("CREATE TABLE instance_snapshots (unrelated TEXT)")
        old.close()
        expectOpenError(
          yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file }))),
          /instance_snapshots already exists/
        )
        expect(versions(file)).toEqual([1, 2])
        const raw = new Database(file, { readonly: true })
        expect(raw.prepare("SELECT agent_id FROM snapshots").all()).toEqual([{ agent_id: "kept-v2" }])
        expect((raw.prepare("SELECT COUNT(*) AS n FROM snapshot_pages").get() as { n: number }).n).toBe(
          s.state.pages.length
        )
        raw.close()
      })
  )

  it.effect(
    "a migration that fails rolls back completely: the database stays at its version, the open fails with RepositoryError",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const old = new Database(file)
        migrate(old, 1)
        // something in the way of migration 2
        old.exec("CREATE TABLE metrics (unrelated TEXT)")
        old.close()
        const error = yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file })))
        expectOpenError(error, /metrics already exists/)
        expect(versions(file)).toEqual([1])
        const raw = new Database(file, { readonly: true })
        expect(raw.prepare("SELECT name FROM sqlite_master WHERE name = 'metrics_by_time'").get()).toBeUndefined()
        raw.close()
      })
  )

  it.effect("a database from a newer version is refused with RepositoryError and left untouched", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      yield* Effect.scoped(SqliteDatabase.open({ path: file }))
      const raw = new Database(file)
      raw.exec("INSERT INTO schema_version (version) VALUES (8); CREATE TABLE from_the_future (x)")
      raw.close()
      const before = fs.readFileSync(file)
      const error = yield* Effect.flip(Effect.provide(Effect.void, SqliteRepositories.layer({ path: file })))
      expectOpenError(error, /schema version 8 is newer than version 7/)
      expect(versions(file)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
      expect(Buffer.compare(fs.readFileSync(file), before)).toBe(0)
      const readOnly = yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file, readonly: true })))
      expectOpenError(readOnly, /newer/)
    })
  )

  it.effect(
    "a file of garbage is refused at open with RepositoryError (SQLITE_NOTADB), and so is an empty-but-invalid path",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        yield* Effect.scoped(SqliteDatabase.open({ path: file }))
        fs.writeFileSync(file, Buffer.from(Fixtures.seeded(9).bytes(16_384)))
        fs.rmSync(file + "-wal", { force: true })
        fs.rmSync(file + "-shm", { force: true })
        expectOpenError(yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file }))), /SQLITE_NOTADB/)
        // a directory where the file should be, and a missing parent directory
        expectOpenError(yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: path.dirname(file) }))), /.+/)
        expectOpenError(
          yield* Effect.flip(
            Effect.scoped(SqliteDatabase.open({ path: path.join(file + ".d", "missing", "x.sqlite") }))
          ),
          /unable to open|SQLITE_CANTOPEN|directory does not exist/i
        )
      })
  )

  it.effect(
    "a database corrupted past its header fails with RepositoryError at open or at the operation, never a throw",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        yield* Effect.gen(function* () {
          const modules = yield* ModuleRepository
          for (let i = 0; i < 20; i++) yield* modules.save(Fixtures.module(`m${i}`, Fixtures.seeded(i).bytes(20_000)))
        }).pipe(Effect.provide(SqliteRepositories.layer({ path: file })))
        // closing checkpointed the WAL into the file; trash every page after the first
        const bytes = fs.readFileSync(file)
        expect(bytes.length).toBeGreaterThan(100_000)
        const garbage = Fixtures.seeded(10).bytes(bytes.length - 4096)
        fs.writeFileSync(file, Buffer.concat([bytes.subarray(0, 4096), garbage]))
        const outcome = yield* Effect.gen(function* () {
          const modules = yield* ModuleRepository
          yield* modules.list
          yield* modules.load(Fixtures.module("m3", new Uint8Array()).id)
        }).pipe(Effect.provide(SqliteRepositories.layer({ path: file })), Effect.flip)
        expect(outcome).toBeInstanceOf(RepositoryError)
        const error = outcome as RepositoryError
        expect(["open", "module.list", "module.load"]).toContain(error.operation)
        expect(error.reason).toMatch(/SQLITE_CORRUPT|SQLITE_NOTADB|malformed/)
      })
  )

  it.effect(
    "read-only: opening with readonly reads and refuses writes (SQLITE_READONLY); a read-only directory fails open",
    (ctx) =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const m = Fixtures.module("ro", Fixtures.seeded(4).bytes(10))
        yield* ModuleRepository.use((r) => r.save(m)).pipe(Effect.provide(SqliteModuleRepository.layer({ path: file })))
        const [loaded, error] = yield* Effect.gen(function* () {
          const repo = yield* ModuleRepository
          return [
            yield* repo.load(m.id),
            yield* Effect.flip(repo.save(Fixtures.module("new", new Uint8Array(3))))
          ] as const
        }).pipe(Effect.provide(SqliteModuleRepository.layer({ path: file, readonly: true })))
        expect(loaded.hash).toBe(m.hash)
        expect(error).toMatchObject({ _tag: "RepositoryError", operation: "module.save" })
        expect(error.reason).toMatch(/SQLITE_READONLY/)

        const locked = path.join(path.dirname(file), "locked")
        fs.mkdirSync(locked)
        if (!(yield* TestFiles.readOnly(locked))) return ctx.skip("cannot make a directory read-only here")
        expectOpenError(
          yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: path.join(locked, "new.sqlite") }))),
          /CANTOPEN|unable to open/i
        )
      })
  )

  it.effect(
    "a read-only directory holding an existing database: the open or the first write fails with RepositoryError",
    (ctx) =>
      Effect.gen(function* () {
        const dir = yield* TestFiles.tempDirectory()
        const file = path.join(dir, "runtime.sqlite")
        const m = Fixtures.module("kept", Fixtures.seeded(5).bytes(10))
        yield* ModuleRepository.use((r) => r.save(m)).pipe(Effect.provide(SqliteModuleRepository.layer({ path: file })))
        if (!(yield* TestFiles.readOnly(dir, [file]))) return ctx.skip("cannot make a directory read-only here")
        const error = yield* Effect.gen(function* () {
          yield* (yield* ModuleRepository).save(Fixtures.module("new", new Uint8Array(3)))
        }).pipe(Effect.provide(SqliteModuleRepository.layer({ path: file })), Effect.flip)
        expect(error).toBeInstanceOf(RepositoryError)
        expect(["open", "module.save"]).toContain((error as RepositoryError).operation)
        expect((error as RepositoryError).reason).toMatch(/READONLY|CANTOPEN|unable to open|readonly/i)
      })
  )

  it.effect("invalid options are RepositoryErrors at open", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      expectOpenError(
        yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file, busyTimeout: -1 }))),
        /busyTimeout/
      )
      expectOpenError(yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file, maxPages: 0.5 }))), /maxPages/)
    })
  )

  it.live(
    "one runtime per file: a second opener (another process, or another connection here) fails at open with RepositoryError naming the file; after the holder is killed a new open succeeds",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const holderScript = fileURLToPath(new URL("./support/holder.ts", import.meta.url))
        const args = ["--conditions=@agent-runtime/source", "--import", "tsx", holderScript, file]
        const holder = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "pipe"] })
        const exited = new Promise<NodeJS.Signals | null>((resolve) =>
          holder.on("exit", (_, signal) => resolve(signal))
        )
        try {
          let err = ""
          holder.stderr.on("data", (d) => (err += String(d)))
          const opened = yield* Effect.promise(
            () =>
              new Promise<boolean>((resolve) => {
                let out = ""
                holder.stdout.on("data", (d) => {
                  out += String(d)
                  if (out.includes("open\n")) resolve(true)
                })
                holder.on("exit", () => resolve(false))
              })
          )
          expect(opened, err).toBe(true)
          // in this process: refused at open, nothing touched
          const here = yield* Effect.flip(Effect.provide(Effect.void, SqliteRepositories.layer({ path: file })))
          expectOpenError(here, /database is in use by another runtime/)
          expect((here as RepositoryError).reason).toContain(file)
          // a second process: it fails fast with that error and exits non-zero
          const second = yield* Effect.promise(() => runChild(args))
          expect(second.signal, second.stderr).toBe(null)
          expect(second.status).toBe(1)
          expect(second.stdout).not.toContain("open")
          expect(second.stderr).toMatch(/database is in use by another runtime/)
          // a read-only open takes no lock: it reads beside the runtime
          yield* Effect.scoped(SqliteDatabase.open({ path: file, readonly: true }))
        } finally {
          holder.kill("SIGKILL")
        }
        expect(yield* Effect.promise(() => exited)).toBe("SIGKILL")
        // the killed holder left no stale lock: a new open succeeds and finds what it saved
        const held = yield* Effect.provide(
          InstanceRepository.use((r) => r.loadState(agentId("held"))),
          SqliteRepositories.layer({ path: file })
        )
        expectSnapshotEqual(Option.getOrThrow(held), Fixtures.snapshot("held", { seed: 3 }))
        // and two opens in this process: the second waits for nothing, it fails; after the first closes, it opens
        const scope = yield* Scope.make()
        yield* Scope.provide(scope)(SqliteDatabase.open({ path: file }))
        expectOpenError(
          yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: file }))),
          /in use by another runtime/
        )
        // the same file through a symbolic link, or through a path with `..`: the same lock
        const link = path.join(path.dirname(file), "link.sqlite")
        fs.symlinkSync(file, link)
        const dotted = path.join(path.dirname(file), "..", path.basename(path.dirname(file)), path.basename(file))
        for (const other of [link, dotted])
          expectOpenError(
            yield* Effect.flip(Effect.scoped(SqliteDatabase.open({ path: other }))),
            /in use by another runtime/
          )
        yield* Scope.close(scope, Exit.void)
        yield* Effect.scoped(SqliteDatabase.open({ path: link }))
        yield* Effect.scoped(SqliteDatabase.open({ path: file }))
      }),
    240_000
  )
})
