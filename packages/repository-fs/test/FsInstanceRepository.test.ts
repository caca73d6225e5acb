import { agentId, InstanceRepository, SnapshotCodec, type InstanceSnapshot } from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import * as zlib from "node:zlib"
import { FsInstanceRepository } from "../src/index.js"

const fileOf = (directory: string, id: string) =>
  path.join(directory, createHash("sha256").update(id).digest("hex") + ".snapshot")

const open = (directory: string) => FsInstanceRepository.make({ directory })

/** gzip from node:zlib: an independent reader of the files' compressed payload. */
const zlibGzip: SnapshotCodec.SnapshotCompression = {
  compress: async (b) => new Uint8Array(zlib.gzipSync(b)),
  decompress: async (b) => new Uint8Array(zlib.gunzipSync(b))
}

/** The codec's JSON header of stored bytes. */
const headerOf = (bytes: Buffer): Record<string, unknown> =>
  JSON.parse(bytes.subarray(16, 16 + bytes.readUInt32LE(8)).toString("utf8"))

describe("FsInstanceRepository", () => {
  it.effect("one file per agent, and a reopened repository reads what an earlier one wrote", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const s = Fixtures.snapshot("persisted")
      yield* (yield* open(directory)).saveState(s.agentId, s)
      expect(fs.readdirSync(directory)).toEqual([path.basename(fileOf(directory, "persisted"))])
      const again = yield* open(directory)
      expectSnapshotEqual(Option.getOrThrow(yield* again.loadState(s.agentId)), s)
      expect(yield* again.listSaved).toEqual([s.agentId])
    })
  )

  it.effect(
    "many parallel saves of one agent never leave a torn file: a complete snapshot is read back",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const repo = yield* open(directory)
        const id = agentId("contended")
        const versions = Array.from({ length: 40 }, (_, i) =>
          Fixtures.snapshot("contended", { seed: 100 + i, pages: [0, 1 + (i % 5), 8 + i], invocationCount: i })
        )
        // saves and loads interleaved: every load sees nothing yet or one whole version
        const loads: Array<Option.Option<InstanceSnapshot>> = []
        yield* Effect.forEach(
          versions,
          (v) =>
            Effect.andThen(
              repo.saveState(id, v),
              Effect.tap(repo.loadState(id), (o) => Effect.sync(() => loads.push(o)))
            ),
          { concurrency: "unbounded" }
        )
        const check = (loaded: InstanceSnapshot) => expectSnapshotEqual(loaded, versions[loaded.invocationCount]!)
        const final = Option.getOrThrow(yield* repo.loadState(id))
        check(final)
        expect(loads.length).toBe(versions.length)
        for (const o of loads) check(Option.getOrThrow(o))
        // nothing left behind but the one file
        expect(fs.readdirSync(directory)).toEqual([path.basename(fileOf(directory, "contended"))])
      }),
    60_000
  )

  it.effect("the file is exactly the SnapshotCodec bytes, payload gzip-compressed (any gzip reader inflates it)", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const s = Fixtures.snapshot("codec")
      yield* (yield* open(directory)).saveState(s.agentId, s)
      const bytes = fs.readFileSync(fileOf(directory, "codec"))
      // decoded by the domain's codec with node:zlib, not the adapter's CompressionStream
      const decoded = yield* SnapshotCodec.decode(bytes, { compression: zlibGzip, expectedModuleHash: s.moduleHash })
      expectSnapshotEqual(decoded, s)
      expect(headerOf(bytes)).toMatchObject({ compressed: true, agentId: "codec" })
      // without a decompressor the codec refuses it: the payload really is compressed
      expect((yield* Effect.flip(SnapshotCodec.decode(bytes)))._tag).toBe("SnapshotCorrupt")
    })
  )

  it.effect(
    "compression really happens: compressible memory is stored in fewer bytes than its raw pages; off, the file is larger; either file is read by either setting",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const zipped = yield* open(directory)
        const plain = yield* FsInstanceRepository.make({ directory, compressSnapshots: false })
        // 20 pages with a few bytes set each, as an agent's heap mostly is
        const s = Fixtures.sparseSnapshot("sparse", 20)
        const rawPageBytes = s.state.pages.reduce((n, p) => n + p.data.byteLength, 0)
        yield* zipped.saveState(s.agentId, s)
        const compressedSize = fs.statSync(fileOf(directory, "sparse")).size
        expect(compressedSize).toBeLessThan(rawPageBytes / 20)
        expectSnapshotEqual(Option.getOrThrow(yield* plain.loadState(s.agentId)), s)
        yield* plain.saveState(s.agentId, s)
        const plainSize = fs.statSync(fileOf(directory, "sparse")).size
        expect(plainSize).toBeGreaterThan(rawPageBytes)
        expect(headerOf(fs.readFileSync(fileOf(directory, "sparse")))).toMatchObject({ compressed: false })
        expectSnapshotEqual(Option.getOrThrow(yield* zipped.loadState(s.agentId)), s)
      })
  )

  it.effect("a truncated snapshot file fails with RepositoryError at every cut, never a partial snapshot", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const s = Fixtures.snapshot("cut")
      yield* repo.saveState(s.agentId, s)
      const file = fileOf(directory, "cut")
      const whole = fs.readFileSync(file)
      for (const length of [
        0,
        3,
        5,
        15,
        16,
        100,
        Math.floor(whole.length / 2),
        whole.length - 5,
        whole.length - 4,
        whole.length - 1
      ]) {
        fs.writeFileSync(file, whole.subarray(0, length))
        const error = yield* Effect.flip(repo.loadState(s.agentId))
        expect(error._tag).toBe("RepositoryError")
        expect(error.operation).toBe("instance.loadState")
        expect(error.reason).toMatch(/is corrupt: .*(truncated|shorter|magic)/)
      }
      fs.writeFileSync(file, whole)
      expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(s.agentId)), s)
    })
  )

  it.effect(
    "a flipped byte anywhere in the file (header, compressed payload, checksum) fails with RepositoryError",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const repo = yield* open(directory)
        const s = Fixtures.snapshot("flipped")
        yield* repo.saveState(s.agentId, s)
        const file = fileOf(directory, "flipped")
        const whole = fs.readFileSync(file)
        const headerLength = whole.readUInt32LE(8)
        // a digit of takenAt (the JSON stays valid), then bytes spread over the whole file
        const headerText = whole.subarray(16, 16 + headerLength).toString("utf8")
        const digitAt = 16 + Buffer.byteLength(headerText.slice(0, headerText.indexOf('"takenAt":') + 11), "utf8")
        const spread = Array.from({ length: 40 }, (_, i) => Math.floor((i * (whole.length - 1)) / 39))
        for (const at of [digitAt, 16 + headerLength + 10, ...spread]) {
          const broken = Buffer.from(whole)
          broken[at] = at === digitAt ? (broken[at] === 0x31 ? 0x32 : 0x31) : broken[at]! ^ 0xff
          fs.writeFileSync(file, broken)
          const error = yield* Effect.flip(repo.loadState(s.agentId))
          expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.loadState" })
          expect(error.reason).toMatch(/is corrupt: .*(checksum mismatch|magic|length mismatch|version|reserved)/)
        }
        // a payload that is not gzip behind a valid checksum: the decompressor's refusal is a RepositoryError too
        const forged = Buffer.from(whole)
        forged.fill(0x55, 16 + headerLength, 16 + headerLength + 32)
        forged.writeUInt32LE(SnapshotCodec.crc32(forged.subarray(0, forged.length - 4)), forged.length - 4)
        fs.writeFileSync(file, forged)
        expect((yield* Effect.flip(repo.loadState(s.agentId))).reason).toMatch(/is corrupt: decompression failed/)
      })
  )

  it.effect(
    "garbage, a file of the earlier format, a future format and a file of another agent are RepositoryErrors; listSaved reports them too",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const repo = yield* open(directory)
        const a = Fixtures.snapshot("agent-a")
        const b = Fixtures.snapshot("agent-b")
        yield* repo.saveState(a.agentId, a)
        yield* repo.saveState(b.agentId, b)
        const fileA = fileOf(directory, "agent-a")
        const fileB = fileOf(directory, "agent-b")
        const original = fs.readFileSync(fileA)
        const listError = () => Effect.flip(repo.listSaved)

        fs.writeFileSync(fileA, Buffer.from("this is not a snapshot at all, just garbage bytes"))
        expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/bad magic/)
        expect(yield* listError()).toMatchObject({ _tag: "RepositoryError", operation: "instance.listSaved" })

        // the start of a file written before the adapter used the codec: "ARSNAP", u16 1, header length
        const legacy = Buffer.concat([
          Buffer.from("ARSNAP", "latin1"),
          Buffer.from([1, 0, 2, 0, 0, 0]),
          Buffer.from("{}"),
          Buffer.alloc(32)
        ])
        fs.writeFileSync(fileA, legacy)
        expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/before it stored SnapshotCodec bytes/)
        expect((yield* listError()).reason).toMatch(/before it stored SnapshotCodec bytes/)

        const future = Buffer.from(original)
        future.writeUInt16LE(SnapshotCodec.FORMAT_VERSION + 1, 4)
        future.writeUInt32LE(SnapshotCodec.crc32(future.subarray(0, future.length - 4)), future.length - 4)
        fs.writeFileSync(fileA, future)
        expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/unsupported snapshot format version 2/)
        expect((yield* listError()).reason).toMatch(/unsupported snapshot format version 2/)

        // b's file copied over a's name: load and list refuse it instead of returning b as a
        fs.copyFileSync(fileB, fileA)
        expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/saved for agent "agent-b"/)
        expect((yield* listError()).reason).toMatch(/saved for agent "agent-b"/)

        fs.writeFileSync(fileA, original)
        expect([...(yield* repo.listSaved)].sort()).toEqual(["agent-a", "agent-b"])
      })
  )

  it.effect(
    "a snapshot is saved under its own agent id only (files are keyed by it): another key is refused, nothing written",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const repo = yield* open(directory)
        const s = Fixtures.snapshot("inner-id")
        const error = yield* Effect.flip(repo.saveState(agentId("outer-key"), s))
        expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.saveState" })
        expect(error.reason).toMatch(/agent "inner-id" cannot be saved under "outer-key"/)
        expect(fs.readdirSync(directory)).toEqual([])
        expect(yield* repo.listSaved).toEqual([])
      })
  )

  it.effect(
    "snapshots the codec could not give back unchanged are refused at save with RepositoryError, the previous one kept",
    () =>
      Effect.gen(function* () {
        const repo = yield* open(yield* TestFiles.tempDirectory())
        const good = Fixtures.snapshot("bad")
        yield* repo.saveState(good.agentId, good)
        const [p0, p1] = [good.state.pages[0]!, good.state.pages[1]!]
        const cases: ReadonlyArray<readonly [InstanceSnapshot, RegExp]> = [
          [{ ...good, takenAt: Number.NaN }, /takenAt/],
          [{ ...good, memoryLimit: Number.POSITIVE_INFINITY }, /memoryLimit/],
          [{ ...good, state: { ...good.state, memoryBytes: 1000, pages: [] } }, /64 KiB/],
          [{ ...good, state: { ...good.state, pages: [p1, p0] } }, /out of order or repeated/],
          [{ ...good, state: { ...good.state, pages: [p0, { index: 0, data: p1.data }] } }, /out of order or repeated/],
          [{ ...good, state: { ...good.state, pages: [{ index: 0, data: new Uint8Array(100) }] } }, /65536 bytes/],
          [{ ...good, state: { ...good.state, pages: [{ index: 99, data: p0.data }] } }, /outside state.memoryBytes/],
          [{ ...good, state: { ...good.state, globals: { big: 1n << 64n } } }, /outside the i64 range/]
        ]
        for (const [s, reason] of cases) {
          const error = yield* Effect.flip(repo.saveState(s.agentId, s))
          expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.saveState" })
          expect(error.reason).toMatch(/snapshot cannot be stored/)
          expect(error.reason).toMatch(reason)
        }
        expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(good.agentId)), good)
      })
  )

  it.effect("leftover temp files of a crashed writer are ignored", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const s = Fixtures.snapshot("survivor")
      yield* repo.saveState(s.agentId, s)
      fs.writeFileSync(path.join(directory, ".tmp-abc.snapshot-123"), Buffer.from("half a snap"))
      expect(yield* repo.listSaved).toEqual([s.agentId])
      expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(s.agentId)), s)
    })
  )

  it.effect(
    "a read-only directory: opening fails with RepositoryError open; saving into one made read-only later fails with RepositoryError and keeps the old snapshot",
    (ctx) =>
      Effect.gen(function* () {
        const root = yield* TestFiles.tempDirectory()
        const locked = path.join(root, "locked")
        fs.mkdirSync(locked)
        const repo = yield* open(root)
        const before = Fixtures.snapshot("ro", { seed: 1 })
        yield* repo.saveState(before.agentId, before)
        const ok = (yield* TestFiles.readOnly(root, [fileOf(root, "ro")])) && (yield* TestFiles.readOnly(locked))
        if (!ok) return ctx.skip("cannot make a directory read-only here")
        const openError = yield* Effect.flip(open(path.join(locked, "repo")))
        expect(openError).toMatchObject({ _tag: "RepositoryError", operation: "open" })
        const openExisting = yield* Effect.flip(open(locked))
        expect(openExisting.operation).toBe("open")
        const after = Fixtures.snapshot("ro", { seed: 2 })
        const error = yield* Effect.flip(repo.saveState(after.agentId, after))
        expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.saveState" })
        expect(error.reason).toMatch(/EACCES|EPERM|EROFS/)
        expect(yield* Effect.flip(repo.deleteState(before.agentId))).toMatchObject({
          operation: "instance.deleteState"
        })
        expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(before.agentId)), before)
      })
  )

  it.effect("the layer provides InstanceRepository and fails to build on an unusable path", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const s = Fixtures.snapshot("via-layer")
      yield* Effect.gen(function* () {
        const repo = yield* InstanceRepository
        yield* repo.saveState(s.agentId, s)
      }).pipe(Effect.provide(FsInstanceRepository.layer({ directory })))
      expectSnapshotEqual(Option.getOrThrow(yield* (yield* open(directory)).loadState(s.agentId)), s)
      // a regular file where the directory should be
      const file = path.join(directory, "file")
      fs.writeFileSync(file, "x")
      const error = yield* Effect.flip(
        Effect.provide(Effect.void, FsInstanceRepository.layer({ directory: path.join(file, "sub") }))
      )
      expect(error).toMatchObject({ _tag: "RepositoryError", operation: "open" })
    })
  )
})
