/**
 * `ModuleRepository` on the NATS Object Store (spec "Repository Interfaces /
 * ModuleRepository"; DESIGN.md "Beyond one machine"): hosts share modules by
 * hash, so a host that never saw a module loads it from the store (the
 * runtime then verifies its signature before compiling, as for any
 * repository).
 *
 * Layout:
 * - Object Store `objectStore`: the module bytes as given, one object per
 *   distinct content, named `<module hash>/<SHA-256 of the stored bytes>`
 *   (the module hash is the signed one — of the bytes without their
 *   signature section — so a module stored with and without an embedded
 *   signature are two objects). Chunked by the store; any size.
 * - KV bucket `bucket` (history 1): one record per module id (key `k` +
 *   base64url of the id), UTF-8 JSON `{ format: 1, id, hash, object, size,
 *   sha256, metadata }` (metadata with the `ModuleMetadata` JSON codec). The
 *   record is written after the object and is the commit point.
 *
 * `load` checks what comes back: its size and SHA-256 must be the record's,
 * else it fails with `RepositoryError { operation: "module.load", reason:
 * "refused: …" }` — wrong bytes are never returned (so never compiled).
 * `findByHash` and `list` read every record (O(modules)). `delete` removes the
 * record, then the object unless another record names it.
 *
 * Errors: `ModuleNotFound` (load/delete of a missing id); `RepositoryError {
 * operation: "module.load" | "module.save" | "module.findByHash" |
 * "module.list" | "module.delete" | "open", reason }` for NATS failures and
 * corrupt records or objects.
 *
 * @since 0.1.0
 */
import {
  ModuleMetadata,
  ModuleNotFound,
  ModuleRepository,
  RepositoryError,
  type ModuleHash,
  type ModuleId,
  type ModuleRepositories,
  type StoredModule
} from "@agent-runtime/domain"
import { Kvm, type KV } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { attempt, keyOf, sha256Hex } from "./internal/errors.js"
import { Nats } from "./Nats.js"

/** Options of the object-store module repository. */
export interface Options {
  /** KV bucket of the module records (default `"agent-runtime-modules"`); created if missing. */
  readonly bucket?: string | undefined
  /** Object Store of the module bytes (default `"agent-runtime-modules"`); created if missing. */
  readonly objectStore?: string | undefined
}

const Record = Schema.Struct({
  format: Schema.Literal(1),
  id: Schema.String,
  hash: Schema.String,
  object: Schema.String,
  size: Schema.Number,
  sha256: Schema.String,
  metadata: Schema.toCodecJson(ModuleMetadata)
})
type Record = typeof Record.Type
const RecordJson = Schema.fromJsonString(Record)
const decodeRecord = Schema.decodeUnknownExit(RecordJson)
const encodeRecord = Schema.encodeExit(RecordJson)

/** Every record in the bucket (skipping deleted keys). */
const allRecords = (kv: KV, operation: string): Effect.Effect<ReadonlyArray<Record>, RepositoryError> =>
  Effect.gen(function* () {
    const keys = yield* attempt(operation, async () => {
      const out: Array<string> = []
      for await (const key of await kv.keys()) out.push(key)
      return out.sort()
    })
    const records: Array<Record> = []
    for (const key of keys) {
      const record = yield* readRecord(kv, key, operation)
      if (record !== undefined) records.push(record)
    }
    return records
  })

const readRecord = (kv: KV, key: string, operation: string): Effect.Effect<Record | undefined, RepositoryError> =>
  Effect.flatMap(
    attempt(operation, () => kv.get(key)),
    (entry) => {
      if (entry === null || entry.operation !== "PUT") return Effect.succeed(undefined)
      const decoded = decodeRecord(new TextDecoder().decode(entry.value))
      return Exit.isSuccess(decoded)
        ? Effect.succeed(decoded.value)
        : Effect.fail(new RepositoryError({ operation, reason: `module record ${key} is corrupt` }))
    }
  )

/**
 * Opens (creating if missing) the bucket and the object store on the shared
 * connection. Fails with `RepositoryError { operation: "open" }`.
 */
export const make = (
  options: Options = {}
): Effect.Effect<ModuleRepositories.ModuleRepositoryShape, RepositoryError, Nats> =>
  Effect.gen(function* () {
    const nats = yield* Nats
    const kv = yield* attempt("open", () =>
      new Kvm(nats.jetstream).create(options.bucket ?? "agent-runtime-modules", { history: 1 })
    )
    const store = yield* attempt("open", () =>
      new Objm(nats.jetstream).create(options.objectStore ?? "agent-runtime-modules")
    )

    const load = (id: ModuleId): Effect.Effect<StoredModule, ModuleNotFound | RepositoryError> =>
      Effect.gen(function* () {
        const operation = "module.load"
        const record = yield* readRecord(kv, keyOf(id), operation)
        if (record === undefined) return yield* new ModuleNotFound({ moduleId: id })
        if (record.id !== id) {
          return yield* new RepositoryError({
            operation,
            reason: `module record of ${JSON.stringify(id)} holds id ${JSON.stringify(record.id)}`
          })
        }
        const bytes = yield* attempt(operation, () => store.getBlob(record.object))
        if (bytes === null)
          return yield* new RepositoryError({ operation, reason: `module object ${record.object} is missing` })
        const digest = sha256Hex(bytes)
        if (bytes.byteLength !== record.size || digest !== record.sha256) {
          return yield* new RepositoryError({
            operation,
            reason: `refused: module object ${record.object} has ${bytes.byteLength} bytes with SHA-256 ${digest}, expected ${record.size} bytes with ${record.sha256}`
          })
        }
        return { id, hash: record.hash as ModuleHash, bytes, metadata: record.metadata } satisfies StoredModule
      })

    const save = (module: StoredModule): Effect.Effect<void, RepositoryError> =>
      Effect.gen(function* () {
        const operation = "module.save"
        const bytes = module.bytes.slice()
        const sha256 = sha256Hex(bytes)
        const object = `${module.hash}/${sha256}`
        const existing = yield* attempt(operation, () => store.info(object))
        if (existing === null || existing.deleted || existing.size !== bytes.byteLength) {
          yield* attempt(operation, () => store.putBlob({ name: object }, bytes))
        }
        const encoded = encodeRecord({
          format: 1,
          id: module.id,
          hash: module.hash,
          object,
          size: bytes.byteLength,
          sha256,
          metadata: module.metadata
        })
        if (Exit.isFailure(encoded))
          return yield* new RepositoryError({ operation, reason: "module metadata cannot be encoded" })
        const previous = yield* readRecord(kv, keyOf(module.id), operation).pipe(Effect.orElseSucceed(() => undefined))
        yield* attempt(operation, () => kv.put(keyOf(module.id), new TextEncoder().encode(encoded.value)))
        if (previous !== undefined && previous.object !== object) yield* dropIfUnused(previous.object)
      })

    /** Deletes an object no record names any more (a failure is logged: the object is an orphan, not an error). */
    const dropIfUnused = (object: string) =>
      Effect.gen(function* () {
        const records = yield* allRecords(kv, "module.delete")
        if (records.some((r) => r.object === object)) return
        yield* attempt("module.delete", () => store.delete(object))
      }).pipe(Effect.catch((e) => Effect.logWarning(`module object ${object} left behind: ${e.reason}`)))

    const findByHash = (hash: ModuleHash): Effect.Effect<Option.Option<ModuleId>, RepositoryError> =>
      Effect.map(allRecords(kv, "module.findByHash"), (records) => {
        const found = records.find((r) => r.hash === hash)
        return found === undefined ? Option.none() : Option.some(found.id as ModuleId)
      })

    const list: ModuleRepositories.ModuleRepositoryShape["list"] = Effect.map(
      allRecords(kv, "module.list"),
      (records) => records.map((r) => ({ id: r.id as ModuleId, metadata: r.metadata }))
    )

    const remove = (id: ModuleId): Effect.Effect<void, ModuleNotFound | RepositoryError> =>
      Effect.gen(function* () {
        const record = yield* readRecord(kv, keyOf(id), "module.delete").pipe(
          // a corrupt record is still removable
          Effect.catch(() => Effect.succeed("corrupt" as const))
        )
        if (record === undefined) return yield* new ModuleNotFound({ moduleId: id })
        yield* attempt("module.delete", () => kv.delete(keyOf(id)))
        if (record !== "corrupt") yield* dropIfUnused(record.object)
      })

    return { load, save, findByHash, list, delete: remove } satisfies ModuleRepositories.ModuleRepositoryShape
  })

/** The `ModuleRepository` layer on the NATS Object Store (needs `Nats`). */
export const layer = (options: Options = {}): Layer.Layer<ModuleRepository, RepositoryError, Nats> =>
  Layer.effect(ModuleRepository, make(options))
