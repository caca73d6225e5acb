/**
 * `InstanceRepository` on a directory (spec "Repository Interfaces /
 * InstanceRepository"): one file per agent, `<key>.snapshot`, where `<key>`
 * is the hex SHA-256 of the agent id.
 *
 * A file holds the whole `InstanceSnapshot`: a JSON header (the snapshot's
 * fields; globals keep bigints and the exact bits of numbers such as -0 and
 * NaN), the non-zero 64 KiB pages as raw bytes, and a SHA-256 of the file.
 * Saves are atomic (temp file + fsync + rename): a reader, a crash or any
 * number of concurrent saves of one agent leave the previous snapshot or a
 * complete new one, never a torn file. A truncated or corrupted file (bad
 * magic, lengths or checksum) fails with `RepositoryError`; it is never
 * returned and never skipped silently.
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved" |
 * "open", reason }` for I/O failures, corrupt files and snapshots that cannot
 * be stored (non-finite header numbers).
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
import { attempt, Corrupt, ensureDirectory, keyOf, readIfExists, removeIfExists, TEMP_PREFIX, writeAtomic } from "./internal/files.js"
import * as SnapshotFile from "./internal/snapshotFile.js"

/** Options of the file-system instance repository. */
export interface Options {
  /** Directory holding one snapshot file per agent; created (with parents) if missing. */
  readonly directory: string
}

const SUFFIX = ".snapshot"

/** Reads only the prefix and header of a snapshot file (for listing). */
const readHeaderBytes = async (file: string): Promise<Uint8Array> => {
  const handle = await fs.open(file, "r")
  try {
    const prefix = Buffer.alloc(12)
    const { bytesRead } = await handle.read(prefix, 0, 12, 0)
    const end = SnapshotFile.headerEnd(prefix.subarray(0, bytesRead))
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
  Effect.gen(function*() {
    const directory = path.resolve(options.directory)
    yield* ensureDirectory(directory)
    const fileOf = (agentId: AgentId) => path.join(directory, keyOf(agentId) + SUFFIX)

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> => {
      const invalid = SnapshotFile.invalidReason(snapshot)
      if (invalid !== undefined) return Effect.fail(new RepositoryError({ operation: "instance.saveState", reason: invalid }))
      const chunks = SnapshotFile.encode(agentId, snapshot)
      return attempt("instance.saveState", () => writeAtomic(directory, keyOf(agentId) + SUFFIX, chunks))
    }

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      attempt("instance.loadState", async () => {
        const file = fileOf(agentId)
        const bytes = await readIfExists(file)
        if (bytes === undefined) return Option.none()
        const { savedAs, snapshot } = SnapshotFile.decode(bytes, file)
        if (savedAs !== agentId) {
          throw new Corrupt(`snapshot file ${file} was saved for agent ${JSON.stringify(savedAs)}, not ${JSON.stringify(agentId)}`)
        }
        return Option.some(snapshot)
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      attempt("instance.deleteState", async () => {
        await removeIfExists(fileOf(agentId))
      })

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt("instance.listSaved", async () => {
      const names = (await fs.readdir(directory)).filter((n) => n.endsWith(SUFFIX) && !n.startsWith(TEMP_PREFIX)).sort()
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
        const id = SnapshotFile.headerSavedAs(header, file)
        if (keyOf(id) + SUFFIX !== name) throw new Corrupt(`snapshot file ${file} was saved for agent ${JSON.stringify(id)}, whose file is ${keyOf(id)}${SUFFIX}`)
        ids.push(id)
      }
      return ids
    })

    return { saveState, loadState, deleteState, listSaved } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** The `InstanceRepository` layer over a directory. */
export const layer = (options: Options): Layer.Layer<InstanceRepository, RepositoryError> =>
  Layer.effect(InstanceRepository, make(options))
