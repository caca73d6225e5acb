/**
 * The `ModuleRepository` port (spec "Repository Interfaces / ModuleRepository"):
 * stores module bytes and metadata so a runtime (or another host) can load
 * them again. Compiled code is never stored — engines compile from bytes.
 *
 * Adapters: `layerMemory` here; file system and SQLite (Node), IndexedDB
 * (browser), NATS object store (several hosts).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type { ModuleHash, ModuleId } from "./Ids.js"
import type { ModuleMetadata } from "./ModuleMetadata.js"
import { ModuleNotFound, type RepositoryError } from "./RuntimeError.js"

/** What a module repository keeps per module. */
export interface StoredModule {
  readonly id: ModuleId
  readonly hash: ModuleHash
  readonly bytes: Uint8Array
  readonly metadata: ModuleMetadata
}

export interface ModuleRepositoryShape {
  /** Loads a module (spec `load_wasm`). */
  readonly load: (id: ModuleId) => Effect.Effect<StoredModule, ModuleNotFound | RepositoryError>
  /** Saves (or replaces) a module (spec `save`). The caller may reuse its buffer afterwards: what is stored does not change. */
  readonly save: (module: StoredModule) => Effect.Effect<void, RepositoryError>
  /**
   * `save` of bytes handed over (optional): the caller will never change
   * `module.bytes` again, so the repository may keep that very array instead
   * of a copy — a repository that keeps bytes in memory saves a copy of a
   * module that may be megabytes (the in-memory one does). `loadModule`
   * hands over the runtime's own copy, which nothing changes; bytes `load`
   * returns may then be that array: read-only. Absent → `save`. A wrapper
   * that replaces `save` (to observe saves) must replace or drop this member
   * too, else the runtime's saves bypass its `save`.
   */
  readonly saveOwned?: ((module: StoredModule) => Effect.Effect<void, RepositoryError>) | undefined
  /** The id of a module with this hash, if stored (spec `find_by_hash`). */
  readonly findByHash: (hash: ModuleHash) => Effect.Effect<Option.Option<ModuleId>, RepositoryError>
  /** Metadata of every stored module (spec `list`). */
  readonly list: Effect.Effect<
    ReadonlyArray<{ readonly id: ModuleId; readonly metadata: ModuleMetadata }>,
    RepositoryError
  >
  /** Deletes a module; deleting a missing one fails with `ModuleNotFound` (spec `delete`). */
  readonly delete: (id: ModuleId) => Effect.Effect<void, ModuleNotFound | RepositoryError>
}

/** The `ModuleRepository` service key. */
export class ModuleRepository extends Context.Service<ModuleRepository, ModuleRepositoryShape>()(
  "@agent-runtime/domain/ModuleRepository"
) {}

/**
 * An in-memory repository (a `Map`). `save` copies the bytes so callers may
 * reuse their buffers; `saveOwned` keeps the bytes handed over as they are.
 */
export const makeMemory = (): ModuleRepositoryShape => {
  const modules = new Map<ModuleId, StoredModule>()
  return {
    load: (id) =>
      Effect.suspend(() => {
        const m = modules.get(id)
        return m === undefined ? Effect.fail(new ModuleNotFound({ moduleId: id })) : Effect.succeed(m)
      }),
    save: (module) => Effect.sync(() => void modules.set(module.id, { ...module, bytes: module.bytes.slice() })),
    saveOwned: (module) => Effect.sync(() => void modules.set(module.id, module)),
    findByHash: (hash) =>
      Effect.sync(() => {
        for (const m of modules.values()) if (m.hash === hash) return Option.some(m.id)
        return Option.none()
      }),
    list: Effect.sync(() => [...modules.values()].map((m) => ({ id: m.id, metadata: m.metadata }))),
    delete: (id) =>
      Effect.suspend(() => (modules.delete(id) ? Effect.void : Effect.fail(new ModuleNotFound({ moduleId: id }))))
  }
}

/** The in-memory `ModuleRepository` layer (the embedded default). */
export const layerMemory: Layer.Layer<ModuleRepository> = Layer.sync(ModuleRepository, makeMemory)
