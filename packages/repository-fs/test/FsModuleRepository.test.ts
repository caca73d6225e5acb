import { makeMetadata, moduleId, ModuleRepository } from "@agent-runtime/domain"
import { Fixtures, TestFiles } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import * as fs from "node:fs"
import * as path from "node:path"
import { FsModuleRepository } from "../src/index.js"

const sha = (data: Uint8Array | string) => createHash("sha256").update(data).digest("hex")
const recordOf = (directory: string, id: string) => path.join(directory, `${sha(id)}.json`)
const wasmOf = (directory: string, id: string, bytes: Uint8Array) =>
  path.join(directory, `${sha(id)}-${sha(bytes)}.wasm`)

const open = (directory: string) => FsModuleRepository.make({ directory })

describe("FsModuleRepository", () => {
  it.effect(
    "a module is <sha256(id)>-<sha256(bytes)>.wasm plus <sha256(id)>.json; a reopened repository reads it",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const m = Fixtures.module("counter", Fixtures.seeded(1).bytes(500), Fixtures.fullMetadata())
        yield* (yield* open(directory)).save(m)
        expect(fs.readdirSync(directory).sort()).toEqual(
          [path.basename(recordOf(directory, "counter")), path.basename(wasmOf(directory, "counter", m.bytes))].sort()
        )
        expect(Buffer.compare(fs.readFileSync(wasmOf(directory, "counter", m.bytes)), m.bytes)).toBe(0)
        const record = JSON.parse(fs.readFileSync(recordOf(directory, "counter"), "utf8"))
        expect(record).toMatchObject({ format: 1, id: "counter", hash: m.hash, size: 500, sha256: sha(m.bytes) })
        expect(record.metadata.name).toBe("counter")
        const loaded = yield* (yield* open(directory)).load(m.id)
        expect(Buffer.compare(loaded.bytes, m.bytes)).toBe(0)
        expect({ ...loaded.metadata }).toEqual({ ...m.metadata })
      })
  )

  it.effect(
    "replacing a module removes the old .wasm; a crash before the commit record keeps the old module whole",
    () =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const repo = yield* open(directory)
        const rng = Fixtures.seeded(2)
        const v1 = Fixtures.module("m", rng.bytes(100))
        const v2 = Fixtures.module("m", rng.bytes(120))
        yield* repo.save(v1)
        yield* repo.save(v2)
        expect(fs.existsSync(wasmOf(directory, "m", v1.bytes))).toBe(false)
        expect(fs.existsSync(wasmOf(directory, "m", v2.bytes))).toBe(true)
        // a writer that died after writing v3's bytes but before its record
        const v3 = rng.bytes(90)
        fs.writeFileSync(wasmOf(directory, "m", v3), v3)
        const loaded = yield* repo.load(moduleId("m"))
        expect(loaded.hash).toBe(v2.hash)
        expect(Buffer.compare(loaded.bytes, v2.bytes)).toBe(0)
      })
  )

  it.effect("truncated, corrupted or missing module bytes fail load with RepositoryError, never wrong bytes", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const m = Fixtures.module("fragile", Fixtures.seeded(3).bytes(4096))
      yield* repo.save(m)
      const wasm = wasmOf(directory, "fragile", m.bytes)
      fs.writeFileSync(wasm, m.bytes.subarray(0, 4000))
      const truncated = yield* Effect.flip(repo.load(m.id))
      expect(truncated).toMatchObject({ _tag: "RepositoryError", operation: "module.load" })
      expect(truncated._tag === "RepositoryError" && truncated.reason).toMatch(/truncated or corrupt/)
      const flipped = Buffer.from(m.bytes)
      flipped[2000] = flipped[2000]! ^ 1
      fs.writeFileSync(wasm, flipped)
      expect(yield* Effect.flip(repo.load(m.id))).toMatchObject({ _tag: "RepositoryError", operation: "module.load" })
      fs.rmSync(wasm)
      const missing = yield* Effect.flip(repo.load(m.id))
      expect(missing._tag === "RepositoryError" && missing.reason).toMatch(/is missing/)
    })
  )

  it.effect("a corrupt record fails load, list and findByHash with RepositoryError; delete still removes it", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const rng = Fixtures.seeded(4)
      const good = Fixtures.module("good", rng.bytes(10))
      const bad = Fixtures.module("bad", rng.bytes(10))
      yield* repo.save(good)
      yield* repo.save(bad)
      const record = recordOf(directory, "bad")
      const text = fs.readFileSync(record, "utf8")
      for (const broken of [text.slice(0, text.length / 2), "", "null", text.replace('"format":1', '"format":9')]) {
        fs.writeFileSync(record, broken)
        expect(yield* Effect.flip(repo.load(bad.id))).toMatchObject({
          _tag: "RepositoryError",
          operation: "module.load"
        })
        expect(yield* Effect.flip(repo.list)).toMatchObject({ _tag: "RepositoryError", operation: "module.list" })
        expect(yield* Effect.flip(repo.findByHash(bad.hash))).toMatchObject({ operation: "module.findByHash" })
      }
      yield* repo.delete(bad.id)
      expect((yield* repo.list).map((e) => e.id)).toEqual(["good"])
    })
  )

  it.effect("a record whose id is not the one asked for (a copied file) is a RepositoryError", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const a = Fixtures.module("a", Fixtures.seeded(5).bytes(10))
      yield* repo.save(a)
      fs.copyFileSync(recordOf(directory, "a"), recordOf(directory, "b"))
      const error = yield* Effect.flip(repo.load(moduleId("b")))
      expect(error._tag === "RepositoryError" && error.reason).toMatch(/holds id "a"/)
    })
  )

  it.effect("concurrent saves of one module id leave one complete module and no stray files", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const repo = yield* open(directory)
      const rng = Fixtures.seeded(6)
      const versions = Array.from({ length: 25 }, (_, i) =>
        Fixtures.module("hot", rng.bytes(1000 + i), makeMetadata({ name: "hot", version: String(i) }))
      )
      yield* Effect.forEach(versions, (v) => repo.save(v), { concurrency: "unbounded" })
      const loaded = yield* repo.load(moduleId("hot"))
      const v = versions[Number(loaded.metadata.version)]!
      expect(loaded.hash).toBe(v.hash)
      expect(Buffer.compare(loaded.bytes, v.bytes)).toBe(0)
      expect(fs.readdirSync(directory).sort()).toEqual(
        [path.basename(recordOf(directory, "hot")), path.basename(wasmOf(directory, "hot", v.bytes))].sort()
      )
    })
  )

  it.effect(
    "read-only directory: open fails with RepositoryError open; save fails with RepositoryError and the module stays",
    (ctx) =>
      Effect.gen(function* () {
        const directory = yield* TestFiles.tempDirectory()
        const repo = yield* open(directory)
        const m = Fixtures.module("ro", Fixtures.seeded(7).bytes(10))
        yield* repo.save(m)
        if (!(yield* TestFiles.readOnly(directory))) return ctx.skip("cannot make a directory read-only here")
        expect(yield* Effect.flip(open(directory))).toMatchObject({ _tag: "RepositoryError", operation: "open" })
        const error = yield* Effect.flip(repo.save(Fixtures.module("ro", Fixtures.seeded(8).bytes(10))))
        expect(error).toMatchObject({ _tag: "RepositoryError", operation: "module.save" })
        expect(yield* Effect.flip(repo.delete(m.id))).toMatchObject({
          _tag: "RepositoryError",
          operation: "module.delete"
        })
        expect(Buffer.compare((yield* repo.load(m.id)).bytes, m.bytes)).toBe(0)
      })
  )

  it.effect("the layer provides ModuleRepository", () =>
    Effect.gen(function* () {
      const directory = yield* TestFiles.tempDirectory()
      const m = Fixtures.module("via-layer", Fixtures.seeded(9).bytes(10))
      yield* Effect.gen(function* () {
        yield* (yield* ModuleRepository).save(m)
      }).pipe(Effect.provide(FsModuleRepository.layer({ directory })))
      expect((yield* (yield* open(directory)).load(m.id)).hash).toBe(m.hash)
    })
  )
})
