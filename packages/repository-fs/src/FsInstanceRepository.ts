/**
 * `InstanceRepository` on a directory (spec "Repository Interfaces /
 * InstanceRepository"): one file per agent, `<key>.snapshot`, where `<key>`
 * is the hex SHA-256 of the agent id.
 *
 * A file holds exactly the bytes of the domain's `SnapshotCodec` (versioned,
 * CRC-32-checked; see its docs for the layout): the metadata header stays
 * readable, the payload (the non-zero 64 KiB pages and the mutable globals —
 * bigints and the exact bits of -0, NaN, ±Infinity kept) is gzip-compressed
 * through the platform's `CompressionStream` unless `compressSnapshots` is
 * `false`. Either kind of file is read back, whatever the option.
 *
 * Saves are atomic (temp file + fsync + rename + directory fsync): a reader,
 * a crash or any number of concurrent saves of one agent leave the previous
 * snapshot or a complete new one, never a torn file. A truncated or
 * corrupted file (the codec's `SnapshotCorrupt`: magic, lengths, CRC-32,
 * header) fails with `RepositoryError` whose reason is the codec's; it is
 * never returned and never skipped silently. `listSaved` reads only each
 * file's uncompressed header.
 *
 * A snapshot is saved under its own agent id: the file is found by the id's
 * hash and listed by the id in its header, so `saveState(id, snapshot)` with
 * `id !== snapshot.agentId` is refused (the in-memory adapter, which keys a
 * `Map`, accepts it).
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved" |
 * "open", reason }` for I/O failures, corrupt files, files of another agent,
 * and snapshots the codec could not give back unchanged (non-finite header
 * numbers, pages that are not 64 KiB in increasing order inside
 * `memoryBytes`, globals outside i64).
 *
 * @since 0.1.0
 */
import {
  InstanceRepository,
  RepositoryError,
  type AgentId,
  type InstanceRepositories,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import {
  attempt,
  Corrupt,
  ensureDirectory,
  keyOf,
  readIfExists,
  removeIfExists,
  TEMP_PREFIX,
  writeAtomic
} from "./internal/files.js"
import * as Snapshots from "./internal/snapshots.js"

/** Options of the file-system instance repository. */
export interface Options {
  /** Directory holding one snapshot file per agent; created (with parents) if missing. */
  readonly directory: string
  /**
   * gzip the snapshot payload (pages and globals) through `CompressionStream`
   * (default `true`). Files written either way are read back.
   */
  readonly compressSnapshots?: boolean | undefined
}

const SUFFIX = ".snapshot"

/** Reads only the prefix and header of a snapshot file (for listing). */
const readHeaderBytes = async (file: string): Promise<Uint8Array> => {
  const handle = await fs.open(file, "r")
  try {
    const prefix = Buffer.alloc(Snapshots.PREFIX_BYTES)
    const { bytesRead } = await handle.read(prefix, 0, prefix.byteLength, 0)
    const end = Snapshots.headerEnd(prefix.subarray(0, bytesRead))
    if (end === undefined) return prefix.subarray(0, bytesRead)
    const { size } = await handle.stat()
    const length = Math.min(end, size)
    const out = Buffer.alloc(length)
    const read = await handle.read(out, 0, length, 0)
    return out.subarray(0, read.bytesRead)
  } finally {
    await handle.close()
  }
}

/**
 * Builds the repository over `options.directory` (created if missing).
 * Fails with `RepositoryError { operation: "open" }` if the directory cannot
 * be created or is not readable and writable.
 */
export const make = (options: Options): Effect.Effect<InstanceRepositories.InstanceRepositoryShape, RepositoryError> =>
  Effect.gen(function* () {
    const directory = path.resolve(options.directory)
    const compress = options.compressSnapshots ?? true
    yield* ensureDirectory(directory)
    const fileOf = (agentId: AgentId) => path.join(directory, keyOf(agentId) + SUFFIX)

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> =>
      Effect.gen(function* () {
        const refuse = (reason: string) => new RepositoryError({ operation: "instance.saveState", reason })
        if (snapshot.agentId !== agentId) {
          return yield* refuse(
            `a snapshot of agent ${JSON.stringify(snapshot.agentId)} cannot be saved under ${JSON.stringify(agentId)}: files are keyed by the snapshot's own agent id`
          )
        }
        const bytes = yield* Effect.mapError(Snapshots.encode(snapshot, compress), (reason) =>
          refuse(`snapshot cannot be stored: ${reason}`)
        )
        yield* attempt("instance.saveState", () => writeAtomic(directory, keyOf(agentId) + SUFFIX, [bytes]))
      })

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      Effect.gen(function* () {
        const file = fileOf(agentId)
        const bytes = yield* attempt("instance.loadState", () => readIfExists(file))
        if (bytes === undefined) return Option.none()
        const snapshot = yield* Effect.mapError(
          Snapshots.decode(bytes),
          (reason) =>
            new RepositoryError({
              operation: "instance.loadState",
              reason: `snapshot file ${file} is corrupt: ${reason}`
            })
        )
        if (snapshot.agentId !== agentId) {
          return yield* new RepositoryError({
            operation: "instance.loadState",
            reason: `snapshot file ${file} was saved for agent ${JSON.stringify(snapshot.agentId)}, not ${JSON.stringify(agentId)}`
          })
        }
        return Option.some(snapshot)
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      attempt("instance.deleteState", async () => {
        await removeIfExists(fileOf(agentId))
      })

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt(
      "instance.listSaved",
      async () => {
        const names = (await fs.readdir(directory))
          .filter((n) => n.endsWith(SUFFIX) && !n.startsWith(TEMP_PREFIX))
          .sort()
        const ids: Array<AgentId> = []
        for (const name of names) {
          const file = path.join(directory, name)
          let header: Uint8Array
          try {
            header = await readHeaderBytes(file)
          } catch (e) {
            // deleted between readdir and open
            if ((e as NodeJS.ErrnoException).code === "ENOENT") continue
            throw e
          }
          const read = Snapshots.headerAgentId(header)
          if ("problem" in read) throw new Corrupt(`snapshot file ${file} is corrupt: ${read.problem}`)
          const id = read.agentId as AgentId
          if (keyOf(id) + SUFFIX !== name)
            throw new Corrupt(
              `snapshot file ${file} was saved for agent ${JSON.stringify(id)}, whose file is ${keyOf(id)}${SUFFIX}`
            )
          ids.push(id)
        }
        return ids
      }
    )

    return { saveState, loadState, deleteState, listSaved } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** The `InstanceRepository` layer over a directory. */
export const layer = (options: Options): Layer.Layer<InstanceRepository, RepositoryError> =>
  Layer.effect(InstanceRepository, make(options))
