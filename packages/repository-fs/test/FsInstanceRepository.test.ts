import { agentId, InstanceRepository, type InstanceSnapshot } from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { FsInstanceRepository } from "../src/index.js"

const fileOf = (directory: string, id: string) =>
  path.join(directory, createHash("sha256").update(id).digest("hex") + ".snapshot")

const open = (directory: string) => FsInstanceRepository.make({ directory })

describe("FsInstanceRepository", () => {
  it.effect("one file per agent, and a reopened repository reads what an earlier one wrote", () =>
    Effect.gen(function*() {
      const directory = yield* TestFiles.tempDirectory()
      const s = Fixtures.snapshot("persisted")
      yield* (yield* open(directory)).saveState(s.agentId, s)
      expect(fs.readdirSync(directory)).toEqual([path.basename(fileOf(directory, "persisted"))])
      const again = yield* open(directory)
      expectSnapshotEqual(Option.getOrThrow(yield* again.loadState(s.agentId)), s)
      expect(yield* again.listSaved).toEqual([s.agentId])
    }))

  it.effect("many parallel saves of one agent never leave a torn file: a complete snapshot is read back", () =>
    Effect.gen(function*() {
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
          Effect.andThen(repo.saveState(id, v), Effect.tap(repo.loadState(id), (o) => Effect.sync(() => loads.push(o)))),
        { concurrency: "unbounded" }
      )
      const check = (loaded: InstanceSnapshot) => expectSnapshotEqual(loaded, versions[loaded.invocationCount]!)
      const final = Option.getOrThrow(yield* repo.loadState(id))
      check(final)
      expect(loads.length).toBe(versions.length)
      for (const o of loads) check(Option.getOrThrow(o))
      // nothing left behind but the one file
      expect(fs.readdirSync(directory)).toEqual([path.basename(fileOf(directory, "contended"))])
    }), 60_000)

  it.effect("a truncated snapshot file fails with RepositoryError at every cut, never a partial snapshot", () =>
    Effect.gen(function*() {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const s = Fixtures.snapshot("cut")
      yield* repo.saveState(s.agentId, s)
      const file = fileOf(directory, "cut")
      const whole = fs.readFileSync(file)
      for (const length of [0, 5, 11, 12, 100, whole.length - 65_536 - 32, whole.length - 33, whole.length - 1]) {
        fs.writeFileSync(file, whole.subarray(0, length))
        const error = yield* Effect.flip(repo.loadState(s.agentId))
        expect(error._tag).toBe("RepositoryError")
        expect(error.operation).toBe("instance.loadState")
        expect(error.reason).toMatch(/truncated|corrupt|magic/)
      }
      fs.writeFileSync(file, whole)
      expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(s.agentId)), s)
    }))

  it.effect("a flipped byte in page data, header or checksum fails with RepositoryError (checksum)", () =>
    Effect.gen(function*() {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const s = Fixtures.snapshot("flipped")
      yield* repo.saveState(s.agentId, s)
      const file = fileOf(directory, "flipped")
      const whole = fs.readFileSync(file)
      const headerLength = whole.readUInt32LE(8)
      // inside the header's page list the digit changes but the JSON stays valid; then page data; then the checksum
      const headerText = whole.subarray(12, 12 + headerLength).toString("utf8")
      const digitAt = 12 + Buffer.byteLength(headerText.slice(0, headerText.indexOf("\"takenAt\":") + 11), "utf8")
      for (const at of [digitAt, 12 + headerLength + 10, whole.length - 100_000, whole.length - 1]) {
        const broken = Buffer.from(whole)
        broken[at] = at === digitAt ? (broken[at] === 0x31 ? 0x32 : 0x31) : broken[at]! ^ 0xff
        fs.writeFileSync(file, broken)
        const error = yield* Effect.flip(repo.loadState(s.agentId))
        expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.loadState" })
        expect(error.reason).toMatch(/checksum mismatch/)
      }
    }))

  it.effect("garbage, a bad header, a future format and a file of another agent are RepositoryErrors; listSaved reports them too", () =>
    Effect.gen(function*() {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const a = Fixtures.snapshot("agent-a")
      const b = Fixtures.snapshot("agent-b")
      yield* repo.saveState(a.agentId, a)
      yield* repo.saveState(b.agentId, b)
      const fileA = fileOf(directory, "agent-a")
      const fileB = fileOf(directory, "agent-b")
      const original = fs.readFileSync(fileA)

      fs.writeFileSync(fileA, Buffer.from("this is not a snapshot at all, just garbage bytes"))
      expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/bad magic/)
      expect(yield* Effect.flip(repo.listSaved)).toMatchObject({ _tag: "RepositoryError", operation: "instance.listSaved" })

      const badHeader = Buffer.from(original)
      badHeader.write("{", 12 + 5, "latin1") // breaks the JSON without changing lengths
      fs.writeFileSync(fileA, badHeader)
      expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/corrupt header/)

      const future = Buffer.from(original)
      future.writeUInt16LE(2, 6)
      fs.writeFileSync(fileA, future)
      expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/format version 2/)

      // b's file copied over a's name: load and list refuse it instead of returning b as a
      fs.copyFileSync(fileB, fileA)
      expect((yield* Effect.flip(repo.loadState(a.agentId))).reason).toMatch(/saved for agent "agent-b"/)
      expect((yield* Effect.flip(repo.listSaved)).reason).toMatch(/saved for agent "agent-b"/)

      fs.writeFileSync(fileA, original)
      expect([...(yield* repo.listSaved)].sort()).toEqual(["agent-a", "agent-b"])
    }))

  it.effect("a snapshot saved under another key keeps its own agentId (as the in-memory adapter does)", () =>
    Effect.gen(function*() {
      const repo = yield* open(yield* TestFiles.tempDirectory())
      const s = Fixtures.snapshot("inner-id")
      yield* repo.saveState(agentId("outer-key"), s)
      expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(agentId("outer-key"))), s)
      expect(yield* repo.listSaved).toEqual(["outer-key"])
      expect(yield* repo.loadState(agentId("inner-id"))).toEqual(Option.none())
    }))

  it.effect("a snapshot with a non-finite header number is refused at save with RepositoryError", () =>
    Effect.gen(function*() {
      const repo = yield* open(yield* TestFiles.tempDirectory())
      const s: InstanceSnapshot = { ...Fixtures.snapshot("bad"), takenAt: Number.NaN }
      const error = yield* Effect.flip(repo.saveState(s.agentId, s))
      expect(error).toMatchObject({ _tag: "RepositoryError", operation: "instance.saveState" })
      expect(error.reason).toMatch(/takenAt must be a finite number/)
      expect(yield* repo.listSaved).toEqual([])
    }))

  it.effect("leftover temp files of a crashed writer are ignored", () =>
    Effect.gen(function*() {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const s = Fixtures.snapshot("survivor")
      yield* repo.saveState(s.agentId, s)
      fs.writeFileSync(path.join(directory, ".tmp-abc.snapshot-123"), Buffer.from("half a snap"))
      expect(yield* repo.listSaved).toEqual([s.agentId])
      expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(s.agentId)), s)
    }))

  it.effect("a read-only directory: opening fails with RepositoryError open; saving into one made read-only later fails with RepositoryError and keeps the old snapshot", (ctx) =>
    Effect.gen(function*() {
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
      expect(yield* Effect.flip(repo.deleteState(before.agentId))).toMatchObject({ operation: "instance.deleteState" })
      expectSnapshotEqual(Option.getOrThrow(yield* repo.loadState(before.agentId)), before)
    }))

  it.effect("the layer provides InstanceRepository and fails to build on an unusable path", () =>
    Effect.gen(function*() {
      const directory = yield* TestFiles.tempDirectory()
      const s = Fixtures.snapshot("via-layer")
      yield* Effect.gen(function*() {
        const repo = yield* InstanceRepository
        yield* repo.saveState(s.agentId, s)
      }).pipe(Effect.provide(FsInstanceRepository.layer({ directory })))
      expectSnapshotEqual(Option.getOrThrow(yield* (yield* open(directory)).loadState(s.agentId)), s)
      // a regular file where the directory should be
      const file = path.join(directory, "file")
      fs.writeFileSync(file, "x")
      const error = yield* Effect.flip(Effect.provide(Effect.void, FsInstanceRepository.layer({ directory: path.join(file, "sub") })))
      expect(error).toMatchObject({ _tag: "RepositoryError", operation: "open" })
    }))
})
