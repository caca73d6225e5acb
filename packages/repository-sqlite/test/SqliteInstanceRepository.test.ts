/**
 * The SQLite instance repository's storage (schema version 7): a binary
 * header row (everything but the pages, CRC-32-checked; `SnapshotCodec` bytes
 * in rows of versions 4–6), plus a row per non-zero page (its hash, which
 * covers the page index; fills, non-zero runs or DEFLATE by default) and, after delta
 * saves, a patch row per run-form page that changed a little; a save writes
 * only the pages that changed since the last one, and nothing when nothing changed.
 */
import { agentId, InstanceRepository, SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import * as crypto from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import * as zlib from "node:zlib"
import { SqliteDatabase, SqliteInstanceRepository, SqliteRepositories } from "../src/index.js"
import * as Header from "../src/internal/header.js"
import { migrate } from "../src/internal/migrations.js"
import { prng } from "@agent-runtime/test-support/mutate"

const tempDb = Effect.map(TestFiles.tempDirectory(), (dir) => path.join(dir, "runtime.sqlite"))

/** gzip from node:zlib: an independent reader of version 3's compressed BLOBs. */
const zlibGzip: SnapshotCodec.SnapshotCompression = {
  compress: async (b) => new Uint8Array(zlib.gzipSync(b)),
  decompress: async (b) => new Uint8Array(zlib.gunzipSync(b))
}

interface HeaderRow {
  readonly snapshot: Buffer
  readonly layout: number
  readonly page_count: number
  readonly patch_count: number
  readonly generation: number
}
interface PatchRow {
  readonly page_index: number
  readonly hash: Buffer
  readonly data: Buffer
}
interface PageRow {
  readonly page_index: number
  readonly hash: Buffer
  readonly compressed: number
  readonly data: Buffer
}

const withRaw = <A>(file: string, f: (raw: Database.Database) => A): A => {
  const raw = new Database(file)
  try {
    return f(raw)
  } finally {
    raw.close()
  }
}

const headerRowOf = (file: string, id: string): HeaderRow =>
  withRaw(
    file,
    (raw) =>
      raw
        .prepare(
          "SELECT snapshot, layout, page_count, patch_count, generation FROM instance_snapshots WHERE agent_id = ?"
        )
        .get(id) as HeaderRow
  )

const pageRowsOf = (file: string, id: string): Array<PageRow> =>
  withRaw(
    file,
    (raw) =>
      raw
        .prepare(
          "SELECT page_index, hash, compressed, data FROM instance_snapshot_pages WHERE agent_id = ? ORDER BY page_index"
        )
        .all(id) as Array<PageRow>
  )

const patchRowsOf = (file: string, id: string): Array<PatchRow> =>
  withRaw(
    file,
    (raw) =>
      raw
        .prepare("SELECT page_index, hash, data FROM instance_snapshot_patches WHERE agent_id = ? ORDER BY page_index")
        .all(id) as Array<PatchRow>
  )

/** The runs (u32 offset, u32 length, bytes) of a run-form row or a patch row written over `page`, read independently. */
const writeRunsOver = (page: Buffer, stored: Buffer): Buffer => {
  for (let at = 0; at < stored.length; ) {
    const from = stored.readUInt32LE(at)
    const length = stored.readUInt32LE(at + 4)
    stored.copy(page, from, at + 8, at + 8 + length)
    at += 8 + length
  }
  return page
}

/** Every stored page of an agent as `[index, base64 of its 64 KiB]`: its row, with its patch row (if any) written over it (runs, as a run-form row's). */
const storedPagesOf = (file: string, id: string): Array<[number, string]> => {
  const patches = new Map(patchRowsOf(file, id).map((p) => [p.page_index, p]))
  return pageRowsOf(file, id).map((row) => {
    const page = Buffer.from(rawOf(row))
    const patch = patches.get(row.page_index)
    if (patch !== undefined) {
      expect(row.compressed).toBeGreaterThanOrEqual(2) // patches sit on run-form rows (runs, fills) only
      expect(Buffer.compare(patch.hash, expectedHash({ ...patch, compressed: 2 }, page, row.page_index))).toBe(0)
      writeRunsOver(page, patch.data)
    }
    return [row.page_index, page.toString("base64")]
  })
}

/** A page row's raw 64 KiB, read independently of the adapter: 0 raw, 1 raw DEFLATE, 2 non-zero runs (u32 offset, u32 length, bytes), 3 fills (u32 words, u32 word). */
const rawOf = (row: PageRow): Buffer => {
  if (row.compressed === 0) return row.data
  if (row.compressed === 1) return zlib.inflateRawSync(row.data)
  if (row.compressed === 3) {
    const page = Buffer.alloc(65_536)
    let w = 0
    for (let at = 0; at < row.data.length; at += 8) {
      const count = row.data.readUInt32LE(at)
      for (let k = 0; k < count; k++) page.writeUInt32LE(row.data.readUInt32LE(at + 4), 4 * w++)
    }
    return page
  }
  return writeRunsOver(Buffer.alloc(65_536), row.data)
}

/**
 * The hash a row at page `index` must carry (schema version 7), computed independently: SHA-1 of the page then
 * the index (u32 LE) for deflated and raw rows; for the run forms and patches two FNV lanes seeded by the index over
 * the stored bytes as LE words (forwards / backwards, each product folded by `>>> 13`), the tail bytes, the length.
 */
const expectedHash = (row: Pick<PageRow, "compressed" | "data">, raw: Buffer, index: number): Buffer => {
  const at = Buffer.alloc(4)
  at.writeUInt32LE(index)
  if (row.compressed < 2) return crypto.createHash("sha1").update(raw).update(at).digest()
  const P = 0x01000193
  let a = Math.imul(0x811c9dc5 ^ index, P)
  let b = Math.imul(0x9e3779b9 ^ index, P)
  const data = Buffer.from(row.data)
  const n = data.length
  const words = n >>> 2
  for (let i = 0; i < words; i++) {
    a = Math.imul(a ^ data.readUInt32LE(4 * i), P)
    a ^= a >>> 13
    b = Math.imul(b ^ data.readUInt32LE(4 * (words - 1 - i)), P) ^ i
    b ^= b >>> 13
  }
  for (let i = words * 4; i < n; i++) {
    a = Math.imul(a ^ data[i]!, P)
    b = Math.imul(b ^ data[i]!, P)
  }
  a = Math.imul(a ^ n, P)
  b = Math.imul(b ^ n, P)
  a ^= a >>> 15
  b ^= b >>> 15
  const out = Buffer.alloc(8)
  out.writeInt32LE(a, 0)
  out.writeInt32LE(b, 4)
  return out
}

/** The fields of a binary header row (layout 2), read independently of the adapter; its CRC-32 checked. */
const binaryHeaderOf = (bytes: Buffer) => {
  expect(bytes.subarray(0, 4).toString("latin1")).toBe("ARSH")
  expect(bytes.readUInt32LE(bytes.length - 4)).toBe(zlib.crc32(bytes.subarray(0, bytes.length - 4)))
  let at = 72
  const text = () => {
    const n = bytes.readUInt32LE(at)
    const v = bytes.subarray(at + 4, at + 4 + n).toString("utf8")
    at += 4 + n
    return v
  }
  const agentId = text()
  const moduleId = text()
  const moduleHash = text()
  return {
    version: bytes[4],
    flags: bytes[6],
    invocationCount: bytes.readDoubleLE(32),
    memoryBytes: bytes.readDoubleLE(48),
    agentId,
    moduleId,
    moduleHash,
    globalCount: bytes.readUInt32LE(at)
  }
}

/** Every write to the page table from now on, as `op:index` (a trigger on the real database). */
const auditPageWrites = (file: string): (() => Array<string>) => {
  withRaw(file, (raw) =>
    raw.exec(`
      CREATE TABLE IF NOT EXISTS page_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, page_index INTEGER);
      CREATE TRIGGER IF NOT EXISTS page_ins AFTER INSERT ON instance_snapshot_pages BEGIN INSERT INTO page_audit (op, page_index) VALUES ('write', NEW.page_index); END;
      CREATE TRIGGER IF NOT EXISTS page_upd AFTER UPDATE ON instance_snapshot_pages BEGIN INSERT INTO page_audit (op, page_index) VALUES ('write', NEW.page_index); END;
      CREATE TRIGGER IF NOT EXISTS page_del AFTER DELETE ON instance_snapshot_pages BEGIN INSERT INTO page_audit (op, page_index) VALUES ('delete', OLD.page_index); END;
    `)
  )
  return () =>
    withRaw(file, (raw) => {
      const rows = raw.prepare("SELECT op, page_index FROM page_audit ORDER BY seq").all() as Array<{
        op: string
        page_index: number
      }>
      raw.exec("DELETE FROM page_audit")
      return rows.map((r) => `${r.op}:${r.page_index}`)
    })
}

/** Two repositories on one connection (a second connection to the file is refused by its lock). */
const withTwo = <A, E>(
  options: SqliteInstanceRepository.Options & SqliteDatabase.Options,
  f: (one: InstanceRepository["Service"], other: InstanceRepository["Service"]) => Effect.Effect<A, E>
) =>
  Effect.scoped(
    Effect.gen(function* () {
      const database = yield* SqliteDatabase.open(options)
      const one = yield* SqliteInstanceRepository.make(database, options)
      const other = yield* SqliteInstanceRepository.make(database, options)
      return yield* f(one, other)
    })
  )

const withInstances = <A, E>(
  options: SqliteInstanceRepository.Options & SqliteDatabase.Options,
  f: (r: InstanceRepository["Service"]) => Effect.Effect<A, E>
) => InstanceRepository.use(f).pipe(Effect.provide(SqliteRepositories.layer(options)))

/** `s` with page `index` replaced by a copy whose byte `at` is `value`. */
const withByte = (s: InstanceSnapshot, index: number, at: number, value: number): InstanceSnapshot => ({
  ...s,
  state: {
    ...s.state,
    pages: s.state.pages.map((p) => {
      if (p.index !== index) return p
      const data = new Uint8Array(p.data)
      data[at] = value
      return { index, data }
    })
  }
})

describe("SqliteInstanceRepository", () => {
  it.effect(
    "a header row holds the binary header (everything but the pages); each non-zero page is a row with its hash, stored compactly",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const s = Fixtures.snapshot("codec", { seed: 3 })
        yield* withInstances({ path: file }, (r) => r.saveState(s.agentId, s))
        const header = headerRowOf(file, "codec")
        expect(header).toMatchObject({ layout: 2, page_count: s.state.pages.length, generation: 1 })
        expect(binaryHeaderOf(header.snapshot)).toMatchObject({
          version: 1,
          agentId: "codec",
          moduleId: s.moduleId,
          moduleHash: s.moduleHash,
          invocationCount: s.invocationCount,
          memoryBytes: s.state.memoryBytes,
          globalCount: Object.keys(s.state.globals).length
        })
        expectSnapshotEqual(Header.decode(header.snapshot), { ...s, state: { ...s.state, pages: [] } })
        const rows = pageRowsOf(file, "codec")
        expect(rows.map((r) => r.page_index)).toEqual(s.state.pages.map((p) => p.index))
        for (const [i, row] of rows.entries()) {
          const raw = rawOf(row)
          expect(Buffer.compare(raw, s.state.pages[i]!.data)).toBe(0)
          expect(Buffer.compare(row.hash, expectedHash(row, raw, row.page_index))).toBe(0)
        }
      })
  )

  it.effect(
    "compression really happens: compressible pages are stored in fewer bytes than raw; off, they are raw; either is read by either setting",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const s = Fixtures.sparseSnapshot("sparse", 20)
        const rawPageBytes = s.state.pages.reduce((n, p) => n + p.data.byteLength, 0)
        const stored = () => pageRowsOf(file, "sparse").reduce((n, r) => n + r.data.length, 0)
        yield* withInstances({ path: file }, (r) => r.saveState(s.agentId, s))
        expect(stored()).toBeLessThan(rawPageBytes / 20)
        expectSnapshotEqual(
          Option.getOrThrow(
            yield* withInstances({ path: file, compressSnapshots: false }, (r) => r.loadState(s.agentId))
          ),
          s
        )
        yield* withInstances({ path: file, compressSnapshots: false }, (r) =>
          Effect.gen(function* () {
            yield* r.deleteState(s.agentId)
            yield* r.saveState(s.agentId, s)
          })
        )
        expect(stored()).toBe(rawPageBytes)
        expect(pageRowsOf(file, "sparse").every((r) => r.compressed === 0)).toBe(true)
        expectSnapshotEqual(Option.getOrThrow(yield* withInstances({ path: file }, (r) => r.loadState(s.agentId))), s)
      })
  )

  it.effect(
    "a filled page is stored as fills, a mostly-zero one as its non-zero runs, a compressible dense one deflated, an incompressible one raw",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const base = Fixtures.snapshot("forms", { pages: [0, 1, 2, 3] })
        const sparse = new Uint8Array(65_536)
        // 4,000 varied bytes (too many distinct words for fills), one byte further on, one at the end
        sparse.set(
          Array.from({ length: 4000 }, (_, i) => ((i * 7) & 255) | 1),
          8
        )
        sparse.set([9], 40_000)
        sparse[65_535] = 7
        const dense = new Uint8Array(65_536).map((_, i) => (i % 7) + 1)
        const random = new Uint8Array(crypto.randomBytes(65_536))
        const filled = new Uint8Array(65_536).fill(0x5a)
        filled.fill(0x01, 1000, 3000)
        filled[65_535] = 0
        const s: InstanceSnapshot = {
          ...base,
          state: {
            ...base.state,
            pages: [
              { index: 0, data: sparse },
              { index: 1, data: dense },
              { index: 2, data: random },
              { index: 3, data: filled }
            ]
          }
        }
        yield* withInstances({ path: file }, (r) => r.saveState(s.agentId, s))
        const rows = pageRowsOf(file, "forms")
        expect(rows.map((r) => r.compressed)).toEqual([2, 1, 0, 3])
        // fills: 0x5a… up to byte 1000, 0x01… to 3000, 0x5a… to the last word, which ends 0x00 (4 runs of 8 bytes)
        expect(rows[3]!.data.length).toBe(4 * 8)
        expect(rows[0]!.data.length).toBe(3 * 8 + 4000 + 4 + 4) // three runs: words 2–1001, word 10000, word 16383
        for (const [i, row] of rows.entries()) expect(Buffer.compare(rawOf(row), s.state.pages[i]!.data)).toBe(0)
        expectSnapshotEqual(Option.getOrThrow(yield* withInstances({ path: file }, (r) => r.loadState(s.agentId))), s)
      })
  )

  it.effect(
    "a save writes only the pages that changed, deletes those that went zero, and writes nothing when nothing changed",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const first = Fixtures.snapshot("delta", { seed: 4, pages: [0, 1, 2, 3] })
        yield* withInstances({ path: file }, (r) => r.saveState(first.agentId, first))
        const writes = auditPageWrites(file)
        const changed = withByte(first, 2, 100, first.state.pages[2]!.data[100]! ^ 0xff)
        const second: InstanceSnapshot = {
          ...changed,
          invocationCount: 43,
          state: { ...changed.state, pages: changed.state.pages.filter((p) => p.index !== 3) }
        }
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.saveState(second.agentId, second) // a new connection: the hashes come from the page rows
            expect(writes()).toEqual(["write:2", "delete:3"])
            expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(second.agentId)), second)
            const generation = headerRowOf(file, "delta").generation
            yield* r.saveState(second.agentId, second)
            expect(writes()).toEqual([])
            expect(headerRowOf(file, "delta").generation).toBe(generation) // nothing written at all
            const third = { ...second, invocationCount: 44 }
            yield* r.saveState(third.agentId, third)
            expect(writes()).toEqual([]) // only the header row
            expect(headerRowOf(file, "delta").generation).toBe(generation + 1)
            expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(third.agentId)), third)
          })
        )
      })
  )

  it.effect(
    "a save after another connection saved the same agent writes against what is stored, not what this one last wrote",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const a = Fixtures.snapshot("shared", { seed: 5, pages: [0, 1, 2] })
        const b = Fixtures.snapshot("shared", { seed: 6, pages: [0, 4] })
        // a second runtime cannot open the file (its lock): the other writer is a second repository on the connection
        yield* withTwo({ path: file }, (one, other) =>
          Effect.gen(function* () {
            yield* one.saveState(a.agentId, a)
            yield* other.saveState(b.agentId, b)
            yield* one.saveState(a.agentId, a) // its cache says "unchanged"; the stored generation says otherwise
            expectSnapshotEqual(Option.getOrThrow(yield* one.loadState(a.agentId)), a)
          })
        )
        expect(pageRowsOf(file, "shared").map((r) => r.page_index)).toEqual([0, 1, 2])
      })
  )

  it.effect("a whole-snapshot row of schema version 3 (gzip) is read, and paged by its next save", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      const s = Fixtures.snapshot("v3", { seed: 8 })
      yield* withInstances({ path: file }, () => Effect.void)
      const blob = yield* SnapshotCodec.encode(s, { compression: zlibGzip })
      withRaw(file, (raw) =>
        raw.prepare("INSERT INTO instance_snapshots (agent_id, snapshot) VALUES (?, ?)").run("v3", blob)
      )
      yield* withInstances({ path: file }, (r) =>
        Effect.gen(function* () {
          expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(s.agentId)), s)
          yield* r.saveState(s.agentId, { ...s, invocationCount: 50 })
        })
      )
      expect(headerRowOf(file, "v3")).toMatchObject({ layout: 2, page_count: s.state.pages.length })
      expectSnapshotEqual(Option.getOrThrow(yield* withInstances({ path: file }, (r) => r.loadState(s.agentId))), {
        ...s,
        invocationCount: 50
      })
    })
  )

  it.effect(
    "a page row that is missing, does not inflate or does not match its hash fails the load with RepositoryError",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const s = Fixtures.snapshot("bad-page", { seed: 9, pages: [0, 1, 2] })
        const load = () => Effect.flip(withInstances({ path: file }, (r) => r.loadState(s.agentId)))
        const reset = () =>
          withInstances({ path: file }, (r) => Effect.andThen(r.deleteState(s.agentId), r.saveState(s.agentId, s)))
        yield* reset()
        const rows = pageRowsOf(file, "bad-page")
        withRaw(file, (raw) =>
          raw
            .prepare("UPDATE instance_snapshot_pages SET data = ?, compressed = 1 WHERE page_index = 1")
            .run(Buffer.from("garbage"))
        )
        expect((yield* load()).reason).toMatch(/snapshot of agent "bad-page" is corrupt: page 1 does not inflate/)
        yield* reset()
        const flipped = zlib.deflateRawSync(withByte(s, 0, 7, s.state.pages[0]!.data[7]! ^ 1).state.pages[0]!.data)
        withRaw(file, (raw) =>
          raw.prepare("UPDATE instance_snapshot_pages SET data = ?, compressed = 1 WHERE page_index = 0").run(flipped)
        )
        expect((yield* load()).reason).toMatch(/page 0 does not match its hash/)
        yield* reset()
        withRaw(file, (raw) =>
          raw
            .prepare("UPDATE instance_snapshot_pages SET data = ?, compressed = 2 WHERE page_index = 1")
            .run(Buffer.from([0, 0, 1, 0, 0xff, 0xff, 0, 0]))
        )
        expect((yield* load()).reason).toMatch(/page 1: a run lies outside the page/)
        yield* reset()
        withRaw(file, (raw) => raw.prepare("DELETE FROM instance_snapshot_pages WHERE page_index = 2").run())
        expect((yield* load()).reason).toMatch(/says 3 pages, 2 page rows found/)
        expect(rows.length).toBe(3)
      })
  )

  it.effect(
    "a snapshot saved under another key is kept under that key with its own agentId (as the in-memory adapter does)",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const s = Fixtures.snapshot("inner-id")
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.saveState(agentId("outer-key"), s)
            expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(agentId("outer-key"))), s)
            expect(yield* r.listSaved).toEqual(["outer-key"])
            expect(yield* r.loadState(agentId("inner-id"))).toEqual(Option.none())
          })
        )
      })
  )

  it.effect(
    "group commit: saves issued together complete only once committed (another connection sees each when it completes)",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const agents = Array.from({ length: 12 }, (_, i) => Fixtures.snapshot(`group-${i}`, { seed: 10 + i }))
        const seen: Array<string> = []
        yield* withInstances({ path: file }, (r) =>
          Effect.forEach(
            agents,
            (s) =>
              Effect.tap(r.saveState(s.agentId, s), () =>
                Effect.sync(() => {
                  // read through a connection of its own: committed, not only written in this one
                  if (headerRowOf(file, s.agentId) !== undefined) seen.push(s.agentId)
                })
              ),
            { concurrency: "unbounded", discard: true }
          )
        )
        expect(seen.sort()).toEqual(agents.map((s) => s.agentId).sort())
        const back = yield* withInstances({ path: file }, (r) => Effect.forEach(agents, (s) => r.loadState(s.agentId)))
        for (const [i, s] of agents.entries()) expectSnapshotEqual(Option.getOrThrow(back[i]!), s)
      })
  )

  it.effect(
    "group commit: a save that cannot be stored fails only its own caller; the others of its group are saved",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const before = Fixtures.snapshot("big", { seed: 3, pages: [0, 2] })
        yield* withInstances({ path: file }, (r) => r.saveState(before.agentId, before))
        const pages = withRaw(file, (raw) => raw.pragma("page_count", { simple: true }) as number)
        // room for a few small snapshots, not for 32 incompressible pages
        const huge = Fixtures.snapshot("big", { seed: 4, pages: Array.from({ length: 32 }, (_, i) => i) })
        const small = Array.from({ length: 4 }, (_, i) => Fixtures.snapshot(`small-${i}`, { seed: 20 + i, pages: [0] }))
        const results = yield* withInstances({ path: file, maxPages: pages + 120 }, (r) =>
          Effect.forEach([huge, ...small], (s) => Effect.result(r.saveState(s.agentId, s)), {
            concurrency: "unbounded"
          })
        )
        const [hugeResult, ...smallResults] = results
        expect(hugeResult!._tag).toBe("Failure")
        if (hugeResult!._tag === "Failure") expect(hugeResult!.failure.reason).toMatch(/SQLITE_FULL/)
        expect(smallResults.map((x) => x._tag)).toEqual(["Success", "Success", "Success", "Success"])
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(before.agentId)), before) // whole, not mixed
            for (const s of small) expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(s.agentId)), s)
          })
        )
      })
  )

  it.effect("a delete issued while a save of the same agent waits for its commit is applied after it", () =>
    Effect.gen(function* () {
      const file = yield* tempDb
      const s = Fixtures.snapshot("raced", { seed: 7 })
      yield* withInstances({ path: file }, (r) =>
        Effect.gen(function* () {
          const save = yield* Effect.forkChild(r.saveState(s.agentId, s))
          yield* Effect.yieldNow // the save is queued, not yet committed
          yield* r.deleteState(s.agentId)
          yield* Fiber.join(save)
          expect(yield* r.listSaved).toEqual([])
          expect(yield* r.loadState(s.agentId)).toEqual(Option.none())
        })
      )
    })
  )

  it.effect(
    "a page unchanged since the last save is not written again, whatever its form (fills, runs, deflate, raw)",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const base = Fixtures.snapshot("forms-delta", { pages: [0, 1, 2, 3] })
        const sparse = new Uint8Array(65_536)
        sparse.set([1, 2, 3], 100)
        const dense = new Uint8Array(65_536).map((_, i) => (i % 7) + 1)
        const random = new Uint8Array(crypto.randomBytes(65_536))
        const filled = new Uint8Array(65_536).fill(0x33)
        const first: InstanceSnapshot = {
          ...base,
          state: {
            ...base.state,
            pages: [
              { index: 0, data: filled },
              { index: 1, data: sparse },
              { index: 2, data: dense },
              { index: 3, data: random }
            ]
          }
        }
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.saveState(first.agentId, first)
            const writes = auditPageWrites(file)
            // fresh copies of the same bytes (as an engine's snapshot gives), a new header
            const again = {
              ...first,
              invocationCount: 2,
              state: { ...first.state, pages: first.state.pages.map((p) => ({ index: p.index, data: p.data.slice() })) }
            }
            yield* r.saveState(again.agentId, again)
            expect(writes()).toEqual([])
            // one byte changed in each page, one at a time: exactly that page is written
            for (const index of [0, 1, 2, 3]) {
              const changed = withByte(
                again,
                index,
                30_000 + index,
                again.state.pages[index]!.data[30_000 + index]! ^ 0x10
              )
              yield* r.saveState(changed.agentId, changed)
              expect(writes()).toEqual([`write:${index}`])
              yield* r.saveState(again.agentId, again)
              expect(writes()).toEqual([`write:${index}`])
            }
            expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(again.agentId)), again)
          })
        )
      })
  )

  it.effect(
    "a page handed in again as the same object is unchanged without a compare (snapshot pages are read-only); other agents and objects are compared",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const first = Fixtures.sparseSnapshot("same-object", 3)
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.saveState(first.agentId, first)
            const writes = auditPageWrites(file)
            // the same objects: nothing compared, nothing written. (A test may break the read-only rule to see
            // it: bytes written into a saved page object after its save are not seen.)
            const page = first.state.pages[1]!
            const original = page.data.slice()
            page.data[12_345] = page.data[12_345]! ^ 0xff
            yield* r.saveState(first.agentId, { ...first, invocationCount: 2 })
            expect(writes()).toEqual([])
            // the same bytes in a new object are compared: changed, written
            const copy = { index: page.index, data: page.data.slice() }
            const next = {
              ...first,
              invocationCount: 3,
              state: { ...first.state, pages: first.state.pages.map((p) => (p === page ? copy : p)) }
            }
            yield* r.saveState(next.agentId, next)
            expect(writes()).toEqual([`write:${page.index}`])
            // another agent handed the same object is compared against its own rows, never by identity
            yield* r.saveState(agentId("other"), { ...first, agentId: agentId("other") })
            writes()
            const otherCopy = {
              ...first,
              agentId: agentId("other"),
              invocationCount: 4,
              state: {
                ...first.state,
                pages: first.state.pages.map((p) => (p === page ? { index: p.index, data: original } : p))
              }
            }
            yield* r.saveState(otherCopy.agentId, otherCopy)
            expect(writes()).toEqual([`write:${page.index}`])
            yield* r.saveState(agentId("other"), { ...first, agentId: agentId("other"), invocationCount: 5 })
            expect(writes()).toEqual([`write:${page.index}`])
            const loaded = Option.getOrThrow(yield* r.loadState(agentId("other")))
            expect(Buffer.compare(Buffer.from(loaded.state.pages[1]!.data), Buffer.from(page.data))).toBe(0)
          })
        )
      })
  )
})

// -----------------------------------------------------------------------------
// delta saves (`savePages`)
// -----------------------------------------------------------------------------

const PAGE = 65_536

/** A live "memory" the delta's pages are views of, as an engine hands them (`EngineChanges.pages`). */
class FakeMemory {
  buffer = new ArrayBuffer(4 * PAGE)
  get pages() {
    return this.buffer.byteLength / PAGE
  }
  grow(n: number) {
    const next = new ArrayBuffer(this.buffer.byteLength + n * PAGE)
    new Uint8Array(next).set(new Uint8Array(this.buffer))
    this.buffer = next
  }
  view(p: number) {
    return new Uint8Array(this.buffer, p * PAGE, PAGE)
  }
  isZero(p: number) {
    const words = new Uint32Array(this.buffer, p * PAGE, PAGE / 4)
    for (let i = 0; i < words.length; i++) if (words[i] !== 0) return false
    return true
  }
  /** The whole state, pages copied (what a `snapshot` gives). */
  state(counter: number): InstanceSnapshot["state"] {
    const pages: Array<{ index: number; data: Uint8Array }> = []
    for (let p = 0; p < this.pages; p++) if (!this.isZero(p)) pages.push({ index: p, data: this.view(p).slice() })
    const globals = { ...Fixtures.snapshot("globals").state.globals, counter, big: BigInt(counter) * 3n }
    return { memoryBytes: this.buffer.byteLength, pages, globals }
  }
}

const metadataOf = (id: string, invocationCount: number, state: InstanceSnapshot["state"]): InstanceSnapshot => ({
  ...Fixtures.snapshot(id),
  invocationCount,
  takenAt: 1_700_000_000_000 + invocationCount,
  state
})

describe("SqliteInstanceRepository savePages (delta saves)", () => {
  it.effect(
    "random workloads: deltas on top of the last save load byte for byte as whole saves of the same states do",
    () =>
      Effect.gen(function* () {
        const deltaFile = yield* tempDb
        const wholeFile = yield* tempDb
        yield* withInstances({ path: deltaFile }, (r) => r.listSaved) // creates the tables
        withRaw(deltaFile, (raw) =>
          raw.exec(`
            CREATE TABLE patch_audit (n INTEGER);
            CREATE TRIGGER patch_ins AFTER INSERT ON instance_snapshot_patches BEGIN INSERT INTO patch_audit VALUES (1); END;
            CREATE TRIGGER patch_upd AFTER UPDATE ON instance_snapshot_patches BEGIN INSERT INTO patch_audit VALUES (1); END;
          `)
        )
        for (const seed of [3, 17, 2024]) {
          const id = `agent-${seed}`
          const next = prng(seed).int
          const memory = new FakeMemory()
          const written = new Set<number>() // pages changed since the last delta save
          const blocks: Array<number> = [] // pages given a block of a few KB
          let deltas = 0
          let refused = 0
          yield* withInstances({ path: deltaFile }, (delta) =>
            withInstances({ path: wholeFile }, (whole) =>
              Effect.gen(function* () {
                for (let step = 1; step <= 120; step++) {
                  const pages = memory.pages
                  const p = next(pages)
                  const bytes = new Uint8Array(memory.buffer)
                  switch (next(10)) {
                    case 7: {
                      // a block of a few KB (a run form, like a heap page of the swarm's text agents)
                      const at = p * PAGE + 4 * next(PAGE / 4 - 1024)
                      const salt = next(256)
                      for (let k = 0; k < 4 * (256 + next(768)); k++) bytes[at + k] = ((k * 31 + salt) & 255) | 1
                      blocks.push(p)
                      written.add(p)
                      break
                    }
                    case 8:
                    case 9: {
                      // small edits in one place of such a page (a patch of its run-form row)
                      const q = blocks.length > 0 ? blocks[next(blocks.length)]! : p
                      const at = q * PAGE + next(PAGE - 64)
                      for (let k = 0; k < 1 + next(8); k++) bytes[at + next(64)] = next(256)
                      written.add(q)
                      break
                    }
                    case 0: // a few random bytes (a run form)
                      for (let k = 0; k < 1 + next(20); k++) bytes[p * PAGE + next(PAGE)] = 1 + next(255)
                      written.add(p)
                      break
                    case 1: // a filled page
                      new Uint32Array(memory.buffer, p * PAGE, PAGE / 4).fill(
                        next(4) === 0 ? 0 : 0x01010101 * (1 + next(9))
                      )
                      written.add(p)
                      break
                    case 2: // random bytes (deflated or raw)
                      for (let k = 0; k < PAGE; k += 1 + next(3)) bytes[p * PAGE + k] = next(256)
                      written.add(p)
                      break
                    case 3: // the page zeroed again
                      bytes.fill(0, p * PAGE, (p + 1) * PAGE)
                      written.add(p)
                      break
                    case 4: // the same bytes written again: listed, unchanged
                      written.add(p)
                      break
                    case 5:
                      if (pages < 70) memory.grow(1 + next(30)) // past 64 pages
                      break
                    case 6:
                      break
                  }
                  if (next(3) === 0) continue // several steps between saves
                  // the save after a call: a delta of the listed pages, else (no base) the whole snapshot
                  const listed = [...written].sort((a, b) => a - b)
                  const state = memory.state(step)
                  const snapshot = metadataOf(id, step, {
                    ...state,
                    pages: listed.filter((i) => !memory.isZero(i)).map((i) => ({ index: i, data: memory.view(i) }))
                  })
                  const applied = yield* delta.savePages!(snapshot.agentId, {
                    snapshot,
                    zeroed: listed.filter((i) => memory.isZero(i))
                  })
                  if (applied) deltas++
                  else {
                    refused++
                    yield* delta.saveState(snapshot.agentId, metadataOf(id, step, state))
                  }
                  written.clear()
                  yield* whole.saveState(snapshot.agentId, metadataOf(id, step, state))
                  if (next(5) === 0) {
                    const a = Option.getOrThrow(yield* delta.loadState(snapshot.agentId))
                    const b = Option.getOrThrow(yield* whole.loadState(snapshot.agentId))
                    expectSnapshotEqual(a, b)
                    expectSnapshotEqual(a, metadataOf(id, step, state))
                  }
                }
              })
            )
          )
          expect(refused).toBe(1) // the first save only: nothing known of the agent before it
          expect(deltas).toBeGreaterThan(40)
          // what is on disk, read through a fresh connection, is the last state
          const a = Option.getOrThrow(yield* withInstances({ path: deltaFile }, (r) => r.loadState(agentId(id))))
          const b = Option.getOrThrow(yield* withInstances({ path: wholeFile }, (r) => r.loadState(agentId(id))))
          expectSnapshotEqual(a, b)
          // the page rows of both files (with the delta file's patches written over them) hold the same pages
          expect(storedPagesOf(deltaFile, id)).toEqual(storedPagesOf(wholeFile, id))
          expect(patchRowsOf(wholeFile, id)).toEqual([]) // whole saves leave no patch
          expect(headerRowOf(deltaFile, id).page_count).toBe(pageRowsOf(deltaFile, id).length)
          expect(headerRowOf(deltaFile, id).patch_count).toBe(patchRowsOf(deltaFile, id).length)
        }
        // small changes of run-form pages were written as patches
        const patchWrites = withRaw(deltaFile, (raw) => raw.prepare("SELECT COUNT(*) AS n FROM patch_audit").get()) as {
          n: number
        }
        expect(patchWrites.n).toBeGreaterThan(10)
      }),
    // ≈ 360 whole saves of up to 70 pages (4.5 MB each) next to the deltas: 8–12 s alone, 30 s on a loaded CI machine
    { timeout: 180_000 }
  )

  it.effect(
    "a delta writes only its changed pages, drops its zeroed ones; false without a base (first save, another writer, a failed save)",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const memory = new FakeMemory()
        const bytes = new Uint8Array(memory.buffer)
        bytes[5] = 1
        bytes[PAGE + 7] = 2
        bytes[3 * PAGE + 9] = 3
        const id = agentId("delta")
        const deltaOf = (count: number, listed: ReadonlyArray<number>) => ({
          snapshot: metadataOf("delta", count, {
            ...memory.state(count),
            pages: listed.filter((i) => !memory.isZero(i)).map((i) => ({ index: i, data: memory.view(i) }))
          }),
          zeroed: listed.filter((i) => memory.isZero(i))
        })
        yield* withInstances({ path: file }, (r) => r.listSaved) // creates the tables
        const audit = auditPageWrites(file)
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            expect(yield* r.savePages!(id, deltaOf(1, [0]))).toBe(false) // nothing known yet
            expect(audit()).toEqual([])
            yield* r.saveState(id, metadataOf("delta", 1, memory.state(1)))
            expect(audit()).toEqual(["write:0", "write:1", "write:3"])
            bytes[PAGE + 7] = 4
            bytes[3 * PAGE + 9] = 0
            // page 0 listed but unchanged, page 2 listed and zero (no row): only page 1 written, page 3 dropped
            expect(yield* r.savePages!(id, deltaOf(2, [0, 1, 2, 3]))).toBe(true)
            expect(audit()).toEqual(["write:1", "delete:3"])
            bytes[PAGE + 7] = 99 // the views are not kept: what was saved stays saved
            const loaded = Option.getOrThrow(yield* r.loadState(id))
            expect(loaded.invocationCount).toBe(2)
            expect(loaded.state.pages.map((p) => [p.index, p.data[5], p.data[7]])).toEqual([
              [0, 1, 0],
              [1, 0, 4]
            ])
          })
        )
        // another connection replaces the row: this one's base is stale → false, nothing written
        // (a second runtime cannot open the file — its lock: the other writer is a second repository on the connection)
        yield* withTwo({ path: file }, (r, other) =>
          Effect.gen(function* () {
            yield* Effect.asVoid(r.loadState(id)) // known through a load
            yield* other.saveState(id, metadataOf("delta", 3, memory.state(3)))
            audit()
            expect(yield* r.savePages!(id, deltaOf(4, [1]))).toBe(false)
            expect(audit()).toEqual([])
            expect(headerRowOf(file, "delta").generation).toBe(3)
          })
        )
        // a failed save forgets the base: the next delta is refused
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* Effect.asVoid(r.loadState(id))
            const bad = deltaOf(5, [1])
            const failed = yield* Effect.flip(
              r.savePages!(id, {
                ...bad,
                snapshot: { ...bad.snapshot, state: { ...bad.snapshot.state, memoryBytes: 1000 } }
              })
            )
            expect(failed._tag).toBe("RepositoryError")
            expect(yield* r.savePages!(id, deltaOf(6, [1]))).toBe(false)
          })
        )
      })
  )
})

// -----------------------------------------------------------------------------
// patches (schema version 6)
// -----------------------------------------------------------------------------

/** Every write to the patch table from now on, as `patch:index` / `unpatch:index` (triggers on the real database). */
const auditPatchWrites = (file: string): (() => Array<string>) => {
  withRaw(file, (raw) =>
    raw.exec(`
      CREATE TABLE IF NOT EXISTS patch_log (seq INTEGER PRIMARY KEY AUTOINCREMENT, op TEXT, page_index INTEGER);
      CREATE TRIGGER IF NOT EXISTS patch_log_ins AFTER INSERT ON instance_snapshot_patches BEGIN INSERT INTO patch_log (op, page_index) VALUES ('patch', NEW.page_index); END;
      CREATE TRIGGER IF NOT EXISTS patch_log_upd AFTER UPDATE ON instance_snapshot_patches BEGIN INSERT INTO patch_log (op, page_index) VALUES ('patch', NEW.page_index); END;
      CREATE TRIGGER IF NOT EXISTS patch_log_del AFTER DELETE ON instance_snapshot_patches BEGIN INSERT INTO patch_log (op, page_index) VALUES ('unpatch', OLD.page_index); END;
    `)
  )
  return () =>
    withRaw(file, (raw) => {
      const rows = raw.prepare("SELECT op, page_index FROM patch_log ORDER BY seq").all() as Array<{
        op: string
        page_index: number
      }>
      raw.exec("DELETE FROM patch_log")
      return rows.map((r) => `${r.op}:${r.page_index}`)
    })
}

/** 13 KB of text-like bytes at byte 4,096 of page 0 and a few bytes on page 1 (page 0's row: its non-zero runs). */
const textMemory = (): FakeMemory => {
  const memory = new FakeMemory()
  const bytes = new Uint8Array(memory.buffer)
  for (let k = 0; k < 13_000; k++) bytes[4096 + k] = 32 + ((k * 7 + (k >> 5)) % 90)
  bytes[PAGE + 9] = 5
  return memory
}

/** The delta of `listed` pages of `memory` after call `count` (as `Persistence.saveAfterCall` hands it). */
const deltaOf = (id: string, memory: FakeMemory, count: number, listed: ReadonlyArray<number>) => ({
  snapshot: metadataOf(id, count, {
    ...memory.state(count),
    pages: listed.filter((i) => !memory.isZero(i)).map((i) => ({ index: i, data: memory.view(i) }))
  }),
  zeroed: listed.filter((i) => memory.isZero(i))
})

describe("SqliteInstanceRepository patches (schema version 6)", () => {
  it.effect(
    "a small change of a run-form page is one patch row, not the row; back to the row's page drops it; a large change rewrites the row; a zeroed page drops both",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const memory = textMemory()
        const bytes = new Uint8Array(memory.buffer)
        const id = "patched"
        yield* withInstances({ path: file }, (r) => r.listSaved) // creates the tables
        const pageWrites = auditPageWrites(file)
        const patchWrites = auditPatchWrites(file)
        /** The file, read through a fresh connection, holds `memory` after call `count`. */
        const expectStored = (count: number) =>
          Effect.gen(function* () {
            const loaded = yield* withInstances({ path: file, readonly: true }, (r) => r.loadState(agentId(id)))
            expectSnapshotEqual(Option.getOrThrow(loaded), metadataOf(id, count, memory.state(count)))
            expect(headerRowOf(file, id).patch_count).toBe(patchRowsOf(file, id).length)
          })
        const original = bytes.slice(0, PAGE)
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* r.saveState(agentId(id), metadataOf(id, 1, memory.state(1)))
            expect(pageRowsOf(file, id).map((row) => row.compressed)).toEqual([2, 3])
            expect(pageRowsOf(file, id)[0]!.data.length).toBeGreaterThan(13_000)
            pageWrites()
            // 40 bytes changed in one place: a patch of a few dozen bytes, the 13 KB row untouched
            for (let k = 0; k < 40; k++) bytes[5000 + k] = bytes[5000 + k]! ^ 0x55
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 2, [0, 1]))).toBe(true)
            expect(pageWrites()).toEqual([])
            expect(patchWrites()).toEqual(["patch:0"])
            expect(patchRowsOf(file, id)[0]!.data.length).toBe(8 + 40)
            yield* expectStored(2)
            // another change elsewhere: the patch (against the row, not the last patch) holds both
            bytes[12_000] = bytes[12_000]! ^ 1
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 3, [0]))).toBe(true)
            expect(pageWrites()).toEqual([])
            expect(patchWrites()).toEqual(["patch:0"])
            expect(patchRowsOf(file, id)[0]!.data.length).toBe(8 + 40 + 8 + 4)
            yield* expectStored(3)
            // listed again, unchanged: nothing written
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 4, [0]))).toBe(true)
            expect([...pageWrites(), ...patchWrites()]).toEqual([])
            // the page back to the row's page: only the patch goes
            bytes.set(original)
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 5, [0]))).toBe(true)
            expect(pageWrites()).toEqual([])
            expect(patchWrites()).toEqual(["unpatch:0"])
            yield* expectStored(5)
            // a small change, then a large one (8 KB): the row is rewritten and its patch dropped
            bytes[6000] = bytes[6000]! ^ 1
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 6, [0]))).toBe(true)
            expect(patchWrites()).toEqual(["patch:0"])
            for (let k = 0; k < 8192; k++) bytes[4096 + k] = bytes[4096 + k]! ^ 0x0f
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 7, [0]))).toBe(true)
            expect(pageWrites()).toEqual(["write:0"])
            expect(patchWrites()).toEqual(["unpatch:0"])
            yield* expectStored(7)
            // a patch, then the page zeroed: row and patch dropped
            bytes[7000] = bytes[7000]! ^ 1
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 8, [0]))).toBe(true)
            expect(patchWrites()).toEqual(["patch:0"])
            yield* expectStored(8)
            bytes.fill(0, 0, PAGE)
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 9, [0]))).toBe(true)
            expect(pageWrites()).toEqual(["delete:0"])
            expect(patchWrites()).toEqual(["unpatch:0"])
            yield* expectStored(9)
          })
        )
        // a patch known through a load: the next delta patches on, a whole save drops every patch
        bytes.set(original)
        yield* withInstances({ path: file }, (r) => r.saveState(agentId(id), metadataOf(id, 10, memory.state(10))))
        bytes[4500] = bytes[4500]! ^ 1
        yield* withInstances({ path: file }, (r) =>
          Effect.asVoid(r.savePages!(agentId(id), deltaOf(id, memory, 11, [0])))
        )
        pageWrites()
        patchWrites()
        yield* withInstances({ path: file }, (r) =>
          Effect.gen(function* () {
            yield* Effect.asVoid(r.loadState(agentId(id)))
            bytes[4600] = bytes[4600]! ^ 1
            expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 12, [0]))).toBe(true)
            expect(pageWrites()).toEqual([])
            expect(patchWrites()).toEqual(["patch:0"])
            yield* expectStored(12)
            yield* r.saveState(agentId(id), metadataOf(id, 13, memory.state(13)))
            expect(pageWrites()).toEqual(["write:0"])
            expect(patchWrites()).toEqual(["unpatch:0"])
            yield* expectStored(13)
          })
        )
      })
  )

  it.effect(
    "a patch row that is missing, damaged, malformed or without a run-form row under it fails the load with RepositoryError",
    () =>
      Effect.gen(function* () {
        const file = yield* tempDb
        const memory = textMemory()
        const bytes = new Uint8Array(memory.buffer)
        const id = "bad-patch"
        const load = () => Effect.flip(withInstances({ path: file }, (r) => r.loadState(agentId(id))))
        const reset = () =>
          withInstances({ path: file }, (r) =>
            Effect.gen(function* () {
              yield* r.deleteState(agentId(id))
              yield* r.saveState(agentId(id), metadataOf(id, 1, memory.state(1)))
              bytes[5000] = bytes[5000]! ^ 1
              expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 2, [0]))).toBe(true)
              bytes[5000] = bytes[5000]! ^ 1
              expect(patchRowsOf(file, id).length).toBe(1)
            })
          )
        const sql = (text: string, ...args: Array<unknown>) => withRaw(file, (raw) => raw.prepare(text).run(...args))
        yield* reset()
        const patch = patchRowsOf(file, id)[0]!
        const flipped = Buffer.from(patch.data)
        flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x80
        sql("UPDATE instance_snapshot_patches SET data = ? WHERE page_index = 0", flipped)
        expect((yield* load()).reason).toMatch(
          /snapshot of agent "bad-patch" is corrupt: the patch of page 0 does not match its hash/
        )
        yield* reset()
        sql("DELETE FROM instance_snapshot_patches WHERE page_index = 0")
        expect((yield* load()).reason).toMatch(/says 1 page patches, 0 patch rows found/)
        yield* reset()
        sql("UPDATE instance_snapshots SET patch_count = 0 WHERE agent_id = ?", id) // a patch row the header does not count
        expect((yield* load()).reason).toMatch(/says 0 page patches, 1 patch rows found/)
        yield* reset()
        // well hashed, but a run past the page's end
        const outside = Buffer.from([0xfc, 0xff, 0, 0, 8, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        sql(
          "UPDATE instance_snapshot_patches SET data = ?, hash = ? WHERE page_index = 0",
          outside,
          expectedHash({ compressed: 2, data: outside }, Buffer.alloc(0), 0)
        )
        expect((yield* load()).reason).toMatch(/page 0: a run lies outside the page/)
        yield* reset()
        sql("UPDATE instance_snapshot_patches SET page_index = 3 WHERE page_index = 0") // no row for page 3
        expect((yield* load()).reason).toMatch(/the patch of page 3 has no run-form page row under it/)
      })
  )

  it.effect(
    "real files of schema versions 5 and 6 open (migrated to 7), restore byte for byte, and their next saves are binary headers and patches",
    () =>
      Effect.gen(function* () {
        for (const [version, agents] of [
          [5, { five: FIXTURE_SNAPSHOTS["v5-five"] }],
          [6, { patched: FIXTURE_SNAPSHOTS["v6-patched"], whole: FIXTURE_SNAPSHOTS["v6-whole"] }]
        ] as const) {
          const file = yield* fixtureCopy(version)
          const before = withRaw(file, (raw) => ({
            layouts: raw.prepare("SELECT layout FROM instance_snapshots").all(),
            patches: raw
              .prepare("SELECT COUNT(*) AS n FROM sqlite_master WHERE name = 'instance_snapshot_patches'")
              .get()
          }))
          expect(before.layouts).toEqual(Object.keys(agents).map(() => ({ layout: 1 }))) // codec headers, as written then
          expect(before.patches).toEqual({ n: version === 6 ? 1 : 0 })
          for (const [id, sha] of Object.entries(agents)) {
            const loaded = Option.getOrThrow(yield* withInstances({ path: file }, (r) => r.loadState(agentId(id))))
            expect(encodedSha256(yield* SnapshotCodec.encode(loaded))).toBe(sha)
          }
          const versions = withRaw(file, (raw) =>
            raw.prepare("SELECT version FROM schema_version ORDER BY version").all()
          )
          expect(versions).toEqual([1, 2, 3, 4, 5, 6, 7].map((v) => ({ version: v })))
          // patch rows live in a rowid table now (cells up to 4,061 bytes in the leaf: no overflow pages for a patch)
          const patchTable = withRaw(file, (raw) =>
            raw.prepare("SELECT sql FROM sqlite_master WHERE name = 'instance_snapshot_patches'").get()
          ) as { sql: string }
          expect(patchTable.sql).not.toMatch(/WITHOUT ROWID/i)
          // every row now carries a hash that covers its index (checked independently)
          for (const id of Object.keys(agents)) {
            for (const row of pageRowsOf(file, id))
              expect(Buffer.compare(row.hash, expectedHash(row, rawOf(row), row.page_index))).toBe(0)
            for (const patch of patchRowsOf(file, id))
              expect(
                Buffer.compare(
                  patch.hash,
                  expectedHash({ compressed: 2, data: patch.data }, Buffer.alloc(0), patch.page_index)
                )
              ).toBe(0)
          }
          // the next saves: a delta (a patch over the text page) then a reload, byte for byte; the header row is binary
          const id = Object.keys(agents)[0]!
          yield* withInstances({ path: file }, (r) =>
            Effect.gen(function* () {
              const loaded = Option.getOrThrow(yield* r.loadState(agentId(id)))
              const text = new Uint8Array(loaded.state.pages[0]!.data)
              text[9000] = text[9000]! ^ 0x21
              const next = { ...loaded, invocationCount: loaded.invocationCount + 1 }
              const changed = { ...next, state: { ...next.state, pages: [{ index: 0, data: text }] } }
              expect(yield* r.savePages!(agentId(id), { snapshot: changed, zeroed: [] })).toBe(true)
              expect(headerRowOf(file, id).layout).toBe(2)
              expect(patchRowsOf(file, id).length).toBe(1)
              const expected = {
                ...next,
                state: {
                  ...next.state,
                  pages: next.state.pages.map((p) => (p.index === 0 ? { index: 0, data: text } : p))
                }
              }
              expectSnapshotEqual(
                Option.getOrThrow(
                  yield* withInstances({ path: file, readonly: true }, (r2) => r2.loadState(agentId(id)))
                ),
                expected
              )
            })
          )
        }
      })
  )

  it.effect(
    "a page row or a patch row moved to another page index fails the load with RepositoryError (its hash covers the index)",
    () =>
      Effect.gen(function* () {
        const memory = textMemory()
        const bytes = new Uint8Array(memory.buffer)
        const id = "moved"
        const sql = (file: string, text: string) => withRaw(file, (raw) => raw.prepare(text).run())
        const load = (file: string) => Effect.flip(withInstances({ path: file }, (r) => r.loadState(agentId(id))))
        const saved = () =>
          Effect.gen(function* () {
            const file = yield* tempDb
            yield* withInstances({ path: file }, (r) =>
              Effect.gen(function* () {
                yield* r.saveState(agentId(id), metadataOf(id, 1, memory.state(1)))
                bytes[5000] = bytes[5000]! ^ 1
                expect(yield* r.savePages!(agentId(id), deltaOf(id, memory, 2, [0]))).toBe(true)
                bytes[5000] = bytes[5000]! ^ 1
              })
            )
            expect(pageRowsOf(file, id).map((r) => r.page_index)).toEqual([0, 1])
            expect(patchRowsOf(file, id).map((r) => r.page_index)).toEqual([0])
            return file
          })
        // the text page has a patch: make room at index 2 (inside memory), then move rows there
        const memoryPages = memory.state(1).memoryBytes / PAGE
        expect(memoryPages).toBeGreaterThan(2)
        let file = yield* saved()
        // page 1 (fills) moved to index 2
        sql(file, "UPDATE instance_snapshot_pages SET page_index = 2 WHERE page_index = 1")
        expect((yield* load(file)).reason).toMatch(
          /snapshot of agent "moved" is corrupt: page 2 does not match its hash/
        )
        file = yield* saved()
        // page 0 (runs) and its patch swapped with page 1 by index: both rows still whole, at the wrong places
        sql(file, "UPDATE instance_snapshot_pages SET page_index = 3 - page_index WHERE page_index IN (0, 1)")
        sql(file, "UPDATE instance_snapshot_pages SET page_index = page_index - 2 WHERE page_index >= 2")
        expect((yield* load(file)).reason).toMatch(/does not match its hash/)
        file = yield* saved()
        // the patch row alone moved onto another run-form row (page 1 holds fills: patchable)
        sql(file, "UPDATE instance_snapshot_patches SET page_index = 1 WHERE page_index = 0")
        expect((yield* load(file)).reason).toMatch(/the patch of page 1 does not match its hash/)
        // and the same rows in place load fine (the state after call 2: byte 5000 flipped)
        file = yield* saved()
        const loaded = Option.getOrThrow(yield* withInstances({ path: file }, (r) => r.loadState(agentId(id))))
        bytes[5000] = bytes[5000]! ^ 1
        expectSnapshotEqual(loaded, metadataOf(id, 2, memory.state(2)))
        bytes[5000] = bytes[5000]! ^ 1
      })
  )
})

/** The `SnapshotCodec` bytes' SHA-256 of the snapshots the fixture files hold (the files' generator printed them). */
const FIXTURE_SNAPSHOTS = {
  "v5-five": "fdf309a1c48e63eb30d117fb7402ff70c156dee05c9d72ee5c678f431095f678",
  "v6-patched": "ba126b46d7fa7fec88e837697b8d317defb1f5098f29d927ee46801627ab3145",
  "v6-whole": "6262683a6943c2894a560faadac6c1f812d28bd3b3952c59c01999c35077dfe7"
} as const

const encodedSha256 = (bytes: Uint8Array): string => crypto.createHash("sha256").update(bytes).digest("hex")

/** A temporary copy of `test/fixtures/v<version>.sqlite` (real files written by schema versions 5 and 6; see `test/fixtures/README.md`). */
const fixtureCopy = (version: 5 | 6) =>
  Effect.map(tempDb, (file) => {
    fs.copyFileSync(fileURLToPath(new URL(`./fixtures/v${version}.sqlite`, import.meta.url)), file)
    return file
  })
