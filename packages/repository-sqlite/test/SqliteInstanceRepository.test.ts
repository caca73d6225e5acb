/**
 * The SQLite instance repository's storage: one BLOB per agent holding the
 * domain's `SnapshotCodec` bytes, the payload gzip-compressed by default.
 */
import { agentId, InstanceRepository, SnapshotCodec } from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import Database from "better-sqlite3"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { SqliteInstanceRepository, SqliteRepositories } from "../src/index.js"

const tempDb = Effect.map(TestFiles.tempDirectory(), (dir) => path.join(dir, "runtime.sqlite"))

/** gzip from node:zlib: an independent reader of the stored payload. */
const zlibGzip: SnapshotCodec.SnapshotCompression = {
  compress: async (b) => new Uint8Array(zlib.gzipSync(b)),
  decompress: async (b) => new Uint8Array(zlib.gunzipSync(b))
}

const blobOf = (file: string, id: string): Buffer => {
  const raw = new Database(file, { readonly: true })
  try {
    return (raw.prepare("SELECT snapshot FROM instance_snapshots WHERE agent_id = ?").get(id) as { snapshot: Buffer }).snapshot
  } finally {
    raw.close()
  }
}

const headerOf = (bytes: Buffer): Record<string, unknown> => JSON.parse(bytes.subarray(16, 16 + bytes.readUInt32LE(8)).toString("utf8"))

const withInstances = <A, E>(
  options: SqliteInstanceRepository.Options & { readonly path: string },
  f: (r: InstanceRepository["Service"]) => Effect.Effect<A, E>
) => InstanceRepository.use(f).pipe(Effect.provide(SqliteRepositories.layer(options)))

describe("SqliteInstanceRepository", () => {
  it.effect("a row holds exactly the SnapshotCodec bytes, payload gzip-compressed (any gzip reader inflates it)", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const s = Fixtures.snapshot("codec", { seed: 3 })
      yield* withInstances({ path: file }, (r) => r.saveState(s.agentId, s))
      const blob = blobOf(file, "codec")
      expect(headerOf(blob)).toMatchObject({ compressed: true, agentId: "codec" })
      expectSnapshotEqual(yield* SnapshotCodec.decode(blob, { compression: zlibGzip, expectedModuleHash: s.moduleHash }), s)
      expect((yield* Effect.flip(SnapshotCodec.decode(blob)))._tag).toBe("SnapshotCorrupt")
    }))

  it.effect("compression really happens: compressible memory is stored in fewer bytes than its raw pages; off, the row is larger; either row is read by either setting", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const s = Fixtures.sparseSnapshot("sparse", 20)
      const rawPageBytes = s.state.pages.reduce((n, p) => n + p.data.byteLength, 0)
      yield* withInstances({ path: file }, (r) => r.saveState(s.agentId, s))
      expect(blobOf(file, "sparse").length).toBeLessThan(rawPageBytes / 20)
      expectSnapshotEqual(Option.getOrThrow(yield* withInstances({ path: file, compressSnapshots: false }, (r) => r.loadState(s.agentId))), s)
      yield* withInstances({ path: file, compressSnapshots: false }, (r) => r.saveState(s.agentId, s))
      const plain = blobOf(file, "sparse")
      expect(plain.length).toBeGreaterThan(rawPageBytes)
      expect(headerOf(plain)).toMatchObject({ compressed: false })
      expectSnapshotEqual(Option.getOrThrow(yield* withInstances({ path: file }, (r) => r.loadState(s.agentId))), s)
    }))

  it.effect("a snapshot saved under another key is kept under that key with its own agentId (as the in-memory adapter does)", () =>
    Effect.gen(function*() {
      const file = yield* tempDb
      const s = Fixtures.snapshot("inner-id")
      yield* withInstances({ path: file }, (r) =>
        Effect.gen(function*() {
          yield* r.saveState(agentId("outer-key"), s)
          expectSnapshotEqual(Option.getOrThrow(yield* r.loadState(agentId("outer-key"))), s)
          expect(yield* r.listSaved).toEqual(["outer-key"])
          expect(yield* r.loadState(agentId("inner-id"))).toEqual(Option.none())
        }))
    }))
})
