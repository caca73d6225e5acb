/**
 * `ModuleRepository` on a directory (spec "Repository Interfaces /
 * ModuleRepository"), for hosts without SQLite.
 *
 * Layout: each module is two files in `directory`:
 * - `<key>-<sha256 of the bytes>.wasm` — the module bytes as given;
 * - `<key>.json` — `{ format, id, hash, file, size, sha256, metadata }`, the
 *   commit record naming the `.wasm` file (metadata encoded with the
 *   `ModuleMetadata` JSON codec, the signature as base64).
 *
 * `<key>` is the hex SHA-256 of the module id, so any id is a safe file name.
 * Both files are written atomically (temp file + fsync + rename); the `.json`
 * is written last and is the commit point, so a crash leaves the old module
 * or the new one — never a mix — and at worst an orphan `.wasm` file. On
 * load the bytes are checked against the recorded size and SHA-256: a
 * truncated or corrupted file fails with `RepositoryError`, never returns
 * wrong bytes. `findByHash` and `list` read every `.json` (O(modules)).
 *
 * Operations on one id are serialised in this process. Several processes
 * may read one directory; only one should write it.
 *
 * Errors: `ModuleNotFound` (load/delete of a missing id); `RepositoryError {
 * operation: "module.load" | "module.save" | "module.findByHash" |
 * "module.list" | "module.delete" | "open", reason }` for I/O failures (a
 * read-only or full disk, permissions) and corrupt files.
 *
 * @since 0.1.0
 */
import {
  ModuleMetadata,
  ModuleNotFound,
  ModuleRepository,
  type ModuleHash,
  type ModuleId,
  type ModuleRepositories,
  type RepositoryError,
  type StoredModule
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import {
  attempt,
  Corrupt,
  ensureDirectory,
  keyOf,
  makeKeyedLock,
  readIfExists,
  removeIfExists,
  sha256Hex,
  TEMP_PREFIX,
  writeAtomic
} from "./internal/files.js"

/** Options of the file-system module repository. */
export interface Options {
  /** Directory holding the module files; created (with parents) if missing. */
  readonly directory: string
}

const Record = Schema.Struct({
  format: Schema.Literal(1),
  id: Schema.String,
  hash: Schema.String,
  file: Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}-[0-9a-f]{64}\.wasm$/)),
  size: Schema.Number.check(Schema.isInt(), Schema.isGreaterThanOrEqualTo(0)),
  sha256: Schema.String.check(Schema.isPattern(/^[0-9a-f]{64}$/)),
  metadata: Schema.toCodecJson(ModuleMetadata)
})
type Record = typeof Record.Type
const RecordJson = Schema.fromJsonString(Record)
const decodeRecord = Schema.decodeUnknownExit(RecordJson)
const encodeRecord = Schema.encodeExit(RecordJson)

/**
 * Builds the repository over `options.directory` (created if missing).
 * Fails with `RepositoryError { operation: "open" }` if the directory cannot
 * be created or is not readable and writable.
 */
export const make = (options: Options): Effect.Effect<ModuleRepositories.ModuleRepositoryShape, RepositoryError> =>
  Effect.gen(function* () {
    const directory = path.resolve(options.directory)
    yield* ensureDirectory(directory)
    const locked = makeKeyedLock()
    const recordPath = (key: string) => path.join(directory, `${key}.json`)

    const readRecord = async (file: string): Promise<Record | undefined> => {
      const text = await readIfExists(file)
      if (text === undefined) return undefined
      const decoded = decodeRecord(text.toString("utf8"))
      if (decoded._tag === "Failure") throw new Corrupt(`module record ${file} is corrupt`)
      return decoded.value
    }

    const recordFiles = async (): Promise<ReadonlyArray<string>> =>
      (await fs.readdir(directory))
        .filter((name) => name.endsWith(".json") && !name.startsWith(TEMP_PREFIX))
        .sort()
        .map((name) => path.join(directory, name))

    const load = (id: ModuleId): Effect.Effect<StoredModule, ModuleNotFound | RepositoryError> =>
      attempt("module.load", () =>
        locked(keyOf(id), async () => {
          const file = recordPath(keyOf(id))
          const record = await readRecord(file)
          if (record === undefined) return undefined
          if (record.id !== id)
            throw new Corrupt(`module record ${file} holds id ${JSON.stringify(record.id)}, not ${JSON.stringify(id)}`)
          const wasm = path.join(directory, record.file)
          const bytes = await readIfExists(wasm)
          if (bytes === undefined) throw new Corrupt(`module file ${wasm} is missing`)
          if (bytes.byteLength !== record.size || sha256Hex(bytes) !== record.sha256) {
            throw new Corrupt(
              `module file ${wasm} is truncated or corrupt (${bytes.byteLength} bytes, expected ${record.size})`
            )
          }
          const stored: StoredModule = {
            id: record.id as ModuleId,
            hash: record.hash as ModuleHash,
            bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength),
            metadata: record.metadata
          }
          return stored
        })
      ).pipe(
        Effect.flatMap((m) => (m === undefined ? Effect.fail(new ModuleNotFound({ moduleId: id })) : Effect.succeed(m)))
      )

    const save = (module: StoredModule): Effect.Effect<void, RepositoryError> =>
      attempt("module.save", () => {
        const key = keyOf(module.id)
        return locked(key, async () => {
          const bytes = module.bytes.slice()
          const digest = sha256Hex(bytes)
          const record: Record = {
            format: 1,
            id: module.id,
            hash: module.hash,
            file: `${key}-${digest}.wasm`,
            size: bytes.byteLength,
            sha256: digest,
            metadata: module.metadata
          }
          const encoded = encodeRecord(record)
          if (encoded._tag === "Failure")
            throw new Corrupt(`module metadata cannot be encoded: ${String(encoded.cause)}`)
          const previous = await readRecord(recordPath(key)).catch(() => undefined)
          await writeAtomic(directory, record.file, [bytes])
          await writeAtomic(directory, `${key}.json`, [Buffer.from(encoded.value, "utf8")])
          if (previous !== undefined && previous.file !== record.file)
            await removeIfExists(path.join(directory, previous.file))
        })
      })

    const findByHash = (hash: ModuleHash): Effect.Effect<Option.Option<ModuleId>, RepositoryError> =>
      attempt("module.findByHash", async () => {
        for (const file of await recordFiles()) {
          const record = await readRecord(file)
          if (record !== undefined && record.hash === hash) return Option.some(record.id as ModuleId)
        }
        return Option.none<ModuleId>()
      })

    const list: ModuleRepositories.ModuleRepositoryShape["list"] = attempt("module.list", async () => {
      const out: Array<{ readonly id: ModuleId; readonly metadata: ModuleMetadata }> = []
      for (const file of await recordFiles()) {
        const record = await readRecord(file)
        if (record !== undefined) out.push({ id: record.id as ModuleId, metadata: record.metadata })
      }
      return out
    })

    const remove = (id: ModuleId): Effect.Effect<void, ModuleNotFound | RepositoryError> =>
      attempt("module.delete", () => {
        const key = keyOf(id)
        return locked(key, async () => {
          const record = await readRecord(recordPath(key)).catch((e: unknown) => {
            // a corrupt record is still removable
            if (e instanceof Corrupt) return "corrupt" as const
            throw e
          })
          if (record === undefined) return false
          // the record first: once it is gone the module is gone, an orphan .wasm is harmless
          await removeIfExists(recordPath(key))
          if (record !== "corrupt") await removeIfExists(path.join(directory, record.file))
          return true
        })
      }).pipe(Effect.flatMap((found) => (found ? Effect.void : Effect.fail(new ModuleNotFound({ moduleId: id })))))

    return { load, save, findByHash, list, delete: remove } satisfies ModuleRepositories.ModuleRepositoryShape
  })

/** The `ModuleRepository` layer over a directory. */
export const layer = (options: Options): Layer.Layer<ModuleRepository, RepositoryError> =>
  Layer.effect(ModuleRepository, make(options))
