/**
 * `ModuleRepository`, `InstanceRepository` and `MetricsRepository` on
 * IndexedDB (through `idb`), so modules, agent snapshots and metric samples
 * survive a page reload (DESIGN.md "Ports": IndexedDB adapters; spec
 * "Repository Interfaces").
 *
 * One database (default name `"agent-runtime"`, version 1) with three object
 * stores: `modules` (key `id`, index `hash`; bytes as `Uint8Array`, metadata
 * as its plain fields, rebuilt as `ModuleMetadata` on read), `instances`
 * (key: the agent id; the `InstanceSnapshot` as a structured clone — pages
 * as `Uint8Array`, i64 globals as `bigint`, `-0` and `NaN` kept), and
 * `metrics` (auto-increment key, index `timestamp`). Every write is one
 * IndexedDB transaction: a snapshot is written whole or not at all.
 *
 * Errors: every failure is a typed `RepositoryError { operation, reason }`
 * — a full disk or origin quota (`QuotaExceededError`) says "quota
 * exceeded"; IndexedDB missing or refused (some private modes, sandboxed
 * iframes, `indexedDB.open` blocked) fails `open` / the layer. The fallback
 * is explicit: `layerOrMemory` uses the domain's in-memory repositories when
 * IndexedDB cannot be opened and reports why (`IndexedDbStatus`).
 *
 * @since 0.1.0
 */
import {
  type AgentId,
  InstanceRepositories,
  InstanceRepository,
  type InstanceSnapshot,
  MetricsRepositories,
  MetricsRepository,
  type ModuleId,
  ModuleMetadata,
  ModuleNotFound,
  ModuleRepositories,
  ModuleRepository,
  RepositoryError,
  type RuntimeMetrics,
  type StoredModule
} from "@agent-runtime/domain"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type DBSchema, type IDBPDatabase, openDB } from "idb"

type ModuleRepositoryShape = ModuleRepositories.ModuleRepositoryShape
type InstanceRepositoryShape = InstanceRepositories.InstanceRepositoryShape
type MetricsRepositoryShape = MetricsRepositories.MetricsRepositoryShape
const aggregateSamples = MetricsRepositories.aggregateSamples

/** The database layout. */
interface RuntimeDb extends DBSchema {
  modules: {
    key: string
    value: { id: string; hash: string; bytes: Uint8Array; metadata: Record<string, unknown> }
    indexes: { hash: string }
  }
  instances: { key: string; value: InstanceSnapshot }
  metrics: { key: number; value: RuntimeMetrics; indexes: { timestamp: number } }
}

/** An open database. */
export type Database = IDBPDatabase<RuntimeDb>

/** Settings of the IndexedDB repositories. */
export interface IndexedDbOptions {
  /** Database name (default `"agent-runtime"`); one runtime per name. */
  readonly name?: string | undefined
}

const message = (e: unknown): string => (e instanceof Error ? `${e.name}: ${e.message}` : String(e))

/** Maps an IndexedDB failure to a `RepositoryError` (quota errors named as such). */
export const repositoryError = (operation: string, e: unknown): RepositoryError => {
  if (e instanceof RepositoryError) return e
  const name = typeof e === "object" && e !== null && "name" in e ? String((e as { name: unknown }).name) : ""
  if (name === "QuotaExceededError") {
    return new RepositoryError({
      operation,
      reason: `quota exceeded: the browser refused to store more data (${message(e)})`
    })
  }
  return new RepositoryError({ operation, reason: message(e) })
}

const attempt = <A>(operation: string, f: () => Promise<A>): Effect.Effect<A, RepositoryError> =>
  Effect.tryPromise({ try: f, catch: (e) => repositoryError(operation, e) })

/** Opens (creating or upgrading) the database. Fails with `RepositoryError` when IndexedDB is missing or refused. */
export const open = (options: IndexedDbOptions = {}): Effect.Effect<Database, RepositoryError> =>
  Effect.suspend(() => {
    const factory = (globalThis as { indexedDB?: unknown }).indexedDB
    if (factory === undefined || factory === null) {
      return Effect.fail(
        new RepositoryError({
          operation: "open",
          reason: "IndexedDB is not available in this context (private mode, sandboxed iframe or a non-browser host)"
        })
      )
    }
    return attempt("open", () =>
      openDB<RuntimeDb>(options.name ?? "agent-runtime", 1, {
        upgrade: (db) => {
          const modules = db.createObjectStore("modules", { keyPath: "id" })
          modules.createIndex("hash", "hash")
          db.createObjectStore("instances")
          const metrics = db.createObjectStore("metrics", { autoIncrement: true })
          metrics.createIndex("timestamp", "timestamp")
        },
        blocked: () => undefined
      })
    )
  })

/** Deletes a database (tests, "forget everything"). */
export const deleteDatabase = (name = "agent-runtime"): Effect.Effect<void, RepositoryError> =>
  attempt(
    "deleteDatabase",
    () =>
      new Promise<void>((resolve, reject) => {
        const request = indexedDB.deleteDatabase(name)
        request.onsuccess = () => resolve()
        request.onerror = () => reject(request.error)
        request.onblocked = () => resolve()
      })
  )

const metadataOf = (id: string, fields: Record<string, unknown>): ModuleMetadata => {
  try {
    return new ModuleMetadata(fields as ConstructorParameters<typeof ModuleMetadata>[0])
  } catch (e) {
    throw new RepositoryError({
      operation: "load",
      reason: `metadata of module ${JSON.stringify(id)} is corrupt: ${message(e)}`
    })
  }
}

/** A `ModuleRepository` on an open database. */
export const makeModuleRepository = (db: Database): ModuleRepositoryShape => ({
  load: (id) =>
    Effect.flatMap(
      attempt("load", () => db.get("modules", id)),
      (row): Effect.Effect<StoredModule, ModuleNotFound | RepositoryError> =>
        row === undefined
          ? Effect.fail(new ModuleNotFound({ moduleId: id }))
          : Effect.try({
              try: () => ({
                id: row.id as ModuleId,
                hash: row.hash as StoredModule["hash"],
                bytes: row.bytes,
                metadata: metadataOf(row.id, row.metadata)
              }),
              catch: (e) => repositoryError("load", e)
            })
    ),
  save: (module) =>
    attempt("save", async () => {
      await db.put("modules", {
        id: module.id,
        hash: module.hash,
        bytes: module.bytes.slice(),
        metadata: { ...module.metadata }
      })
    }),
  findByHash: (hash) =>
    Effect.map(
      attempt("findByHash", () => db.getKeyFromIndex("modules", "hash", hash)),
      (key) => (key === undefined ? Option.none() : Option.some(key as ModuleId))
    ),
  list: attempt("list", async () => {
    const rows = await db.getAll("modules")
    return rows.map((r) => ({ id: r.id as ModuleId, metadata: metadataOf(r.id, r.metadata) }))
  }),
  delete: (id) =>
    Effect.flatMap(
      attempt("delete", async () => {
        const tx = db.transaction("modules", "readwrite")
        const found = (await tx.store.getKey(id)) !== undefined
        if (found) await tx.store.delete(id)
        await tx.done
        return found
      }),
      (found) => (found ? Effect.void : Effect.fail(new ModuleNotFound({ moduleId: id })))
    )
})

/** An `InstanceRepository` on an open database. A snapshot write is one transaction. */
export const makeInstanceRepository = (db: Database): InstanceRepositoryShape => ({
  saveState: (agentId, snapshot) =>
    attempt("saveState", async () => void (await db.put("instances", snapshot, agentId))),
  loadState: (agentId) =>
    Effect.map(
      attempt("loadState", () => db.get("instances", agentId)),
      Option.fromUndefinedOr
    ),
  deleteState: (agentId) => attempt("deleteState", () => db.delete("instances", agentId)),
  listSaved: attempt("listSaved", async () => (await db.getAllKeys("instances")) as Array<AgentId>)
})

/** A `MetricsRepository` on an open database (samples kept until deleted; `maxSamples` prunes the oldest). */
export const makeMetricsRepository = (db: Database, maxSamples = 100_000): MetricsRepositoryShape => {
  const inRange = (from: number, to: number) =>
    from >= to
      ? Promise.resolve([])
      : db.getAllFromIndex("metrics", "timestamp", IDBKeyRange.bound(from, to, false, true))
  return {
    record: (metrics) =>
      attempt("record", async () => {
        const tx = db.transaction("metrics", "readwrite")
        await tx.store.add({ ...metrics })
        const count = await tx.store.count()
        if (count > maxSamples) {
          let cursor = await tx.store.index("timestamp").openCursor()
          for (let excess = count - maxSamples; excess > 0 && cursor !== null; excess--) {
            await cursor.delete()
            cursor = await cursor.continue()
          }
        }
        await tx.done
      }),
    query: (range) => attempt("query", () => inRange(range.from, range.to)),
    aggregate: (range, granularity) =>
      attempt("aggregate", async () => aggregateSamples(await inRange(range.from, range.to), granularity))
  }
}

/** Where the repositories of `layerOrMemory` ended up. */
export interface IndexedDbStatusShape {
  readonly backend: "indexedDB" | "memory"
  /** Why the in-memory fallback was used (`undefined` on IndexedDB). */
  readonly reason: string | undefined
}

/** The service telling which backend `layerOrMemory` chose. */
export class IndexedDbStatus extends Context.Service<IndexedDbStatus, IndexedDbStatusShape>()(
  "@agent-runtime/engine-browser/IndexedDbStatus"
) {}

type Repositories = ModuleRepository | InstanceRepository | MetricsRepository

const layerOf = (db: Database): Layer.Layer<Repositories> =>
  Layer.mergeAll(
    Layer.succeed(ModuleRepository, makeModuleRepository(db)),
    Layer.succeed(InstanceRepository, makeInstanceRepository(db)),
    Layer.succeed(MetricsRepository, makeMetricsRepository(db))
  )

/** The three repositories on IndexedDB (scoped: the database closes with the scope). Fails when IndexedDB cannot be opened. */
export const layer = (options: IndexedDbOptions = {}): Layer.Layer<Repositories, RepositoryError> =>
  Layer.unwrap(
    Effect.map(
      Effect.acquireRelease(open(options), (db) => Effect.sync(() => db.close())),
      layerOf
    )
  )

/**
 * IndexedDB when it can be opened, otherwise the domain's in-memory
 * repositories (nothing survives a reload then); `IndexedDbStatus` says which
 * and why. Never fails.
 */
export const layerOrMemory = (options: IndexedDbOptions = {}): Layer.Layer<Repositories | IndexedDbStatus> =>
  Layer.unwrap(
    Effect.match(
      Effect.acquireRelease(open(options), (db) => Effect.sync(() => db.close())),
      {
        onSuccess: (db) =>
          Layer.merge(layerOf(db), Layer.succeed(IndexedDbStatus, { backend: "indexedDB", reason: undefined })),
        onFailure: (e) =>
          Layer.mergeAll(
            ModuleRepositories.layerMemory,
            InstanceRepositories.layerMemory,
            MetricsRepositories.layerMemory,
            Layer.succeed(IndexedDbStatus, { backend: "memory", reason: e.message })
          )
      }
    )
  )
