/**
 * `InstanceRepository` on NATS KV (spec "Repository Interfaces /
 * InstanceRepository"; DESIGN.md "Beyond one machine"): every host that
 * shares the bucket sees an agent's last snapshot, so an agent passivated or
 * evicted on one host is activated from its state on another.
 *
 * Layout: one KV key per agent (`k` + base64url of the agent id's UTF-8
 * bytes, so any id is a legal key) in bucket `bucket` (history 1). Its value
 * is either
 * - the snapshot's `SnapshotCodec` bytes (magic `ARSN`; payload gzip-compressed
 *   unless `compressSnapshots` is `false`), when they fit in `inlineLimit`
 *   bytes (default: the server's `max_payload` − 8 KiB, i.e. ~1 MiB), or
 * - a pointer (magic `ARSP` + UTF-8 JSON `{ object, size, sha256 }`) to an
 *   object in the Object Store `objectStore` named `<key>/<sha256>` that holds
 *   the codec bytes, chunked by the store — a snapshot over the server's max
 *   payload is never refused and never cut. The object is written (and
 *   sealed) before the pointer, and the previous object is deleted after
 *   it, so a reader sees the old snapshot or the new one. Two hosts saving
 *   one agent's large snapshot at the same moment may leave an orphan object
 *   (never a torn snapshot); one owner per agent (`Leases`) avoids that.
 *
 * A value that is not a valid snapshot (bad magic, CRC-32, truncation; an
 * object whose size or SHA-256 differs from its pointer) fails `loadState`
 * with `RepositoryError { operation: "instance.loadState", reason:
 * "SnapshotCorrupt: …" }` naming the codec's error — never a crash, never a
 * snapshot returned. A snapshot is saved under its own agent id
 * (`saveState(id, s)` with `id !== s.agentId` is refused), and one the codec
 * could not give back unchanged fails with `reason: "SnapshotInvalid: …"`.
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved" |
 * "open", reason }`; NATS failures (timeouts while the server is away)
 * are reported the same way with the client's message.
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
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { attempt, idOf, keyOf, sha256Hex, startsWith } from "./internal/errors.js"
import * as Snapshots from "./internal/snapshots.js"
import { Nats } from "./Nats.js"

/** Options of the KV instance repository. */
export interface Options {
  /** KV bucket of the snapshots (default `"agent-runtime-instances"`); created if missing. */
  readonly bucket?: string | undefined
  /** Object Store for snapshots larger than `inlineLimit` (default `"agent-runtime-snapshots"`); created if missing. */
  readonly objectStore?: string | undefined
  /** gzip the snapshot payload (default `true`). Values written either way are read back. */
  readonly compressSnapshots?: boolean | undefined
  /** Largest snapshot kept inline in KV, bytes (default: server `max_payload` − 8 KiB). */
  readonly inlineLimit?: number | undefined
}

const SNAPSHOT_MAGIC = [0x41, 0x52, 0x53, 0x4e] as const // "ARSN"
const POINTER_MAGIC = [0x41, 0x52, 0x53, 0x50] as const // "ARSP"

interface Pointer {
  readonly object: string
  readonly size: number
  readonly sha256: string
}

const encodePointer = (p: Pointer): Uint8Array => {
  const json = new TextEncoder().encode(JSON.stringify(p))
  const out = new Uint8Array(4 + json.byteLength)
  out.set(POINTER_MAGIC, 0)
  out.set(json, 4)
  return out
}

const decodePointer = (bytes: Uint8Array): Pointer | undefined => {
  try {
    const p = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(4))) as Partial<Pointer>
    return typeof p.object === "string" && typeof p.size === "number" && typeof p.sha256 === "string"
      ? { object: p.object, size: p.size, sha256: p.sha256 }
      : undefined
  } catch {
    return undefined
  }
}

/**
 * Opens (creating if missing) the bucket and the object store on the shared
 * connection. Fails with `RepositoryError { operation: "open" }`.
 */
export const make = (
  options: Options = {}
): Effect.Effect<InstanceRepositories.InstanceRepositoryShape, RepositoryError, Nats> =>
  Effect.gen(function* () {
    const nats = yield* Nats
    const kv = yield* attempt("open", () =>
      new Kvm(nats.jetstream).create(options.bucket ?? "agent-runtime-instances", { history: 1 })
    )
    const store = yield* attempt("open", () =>
      new Objm(nats.jetstream).create(options.objectStore ?? "agent-runtime-snapshots")
    )
    const compress = options.compressSnapshots ?? true
    const inlineLimit = options.inlineLimit ?? nats.maxPayload - 8 * 1024

    /** The pointer held under `key`, if its value is one (for cleanup; errors ignored). */
    const currentPointer = (key: string) =>
      Effect.promise(async () => {
        const entry = await kv.get(key).catch(() => null)
        if (entry === null || entry.operation !== "PUT" || !startsWith(entry.value, POINTER_MAGIC)) return undefined
        return decodePointer(entry.value)
      })

    const dropObject = (pointer: Pointer | undefined, keep?: string) =>
      pointer === undefined || pointer.object === keep
        ? Effect.void
        : attempt("instance.cleanup", () => store.delete(pointer.object)).pipe(
            Effect.catch((e) => Effect.logWarning(`orphan snapshot object ${pointer.object} left: ${e.reason}`))
          )

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> =>
      Effect.gen(function* () {
        const operation = "instance.saveState"
        if (snapshot.agentId !== agentId) {
          return yield* new RepositoryError({
            operation,
            reason: `a snapshot of agent ${JSON.stringify(snapshot.agentId)} cannot be saved under ${JSON.stringify(agentId)}: keys are the snapshot's own agent id`
          })
        }
        const bytes = yield* Effect.mapError(
          Snapshots.encode(snapshot, compress),
          (e) => new RepositoryError({ operation, reason: `${e._tag}: ${e.reason}` })
        )
        const key = keyOf(agentId)
        const previous = yield* currentPointer(key)
        if (bytes.byteLength <= inlineLimit) {
          yield* attempt(operation, () => kv.put(key, bytes))
          yield* dropObject(previous)
          return
        }
        const pointer: Pointer = {
          object: `${key}/${sha256Hex(bytes)}`,
          size: bytes.byteLength,
          sha256: sha256Hex(bytes)
        }
        yield* attempt(operation, () => store.putBlob({ name: pointer.object }, bytes))
        yield* attempt(operation, () => kv.put(key, encodePointer(pointer)))
        yield* dropObject(previous, pointer.object)
      })

    const corrupt = (agentId: AgentId, reason: string) =>
      new RepositoryError({
        operation: "instance.loadState",
        reason: `SnapshotCorrupt: the stored snapshot of agent ${JSON.stringify(agentId)} is corrupt: ${reason}`
      })

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      Effect.gen(function* () {
        const operation = "instance.loadState"
        const entry = yield* attempt(operation, () => kv.get(keyOf(agentId)))
        if (entry === null || entry.operation !== "PUT") return Option.none()
        let bytes: Uint8Array = entry.value
        if (startsWith(bytes, POINTER_MAGIC)) {
          const pointer = decodePointer(bytes)
          if (pointer === undefined) return yield* corrupt(agentId, "unreadable object-store pointer")
          const object = yield* attempt(operation, () => store.getBlob(pointer.object))
          if (object === null) return yield* corrupt(agentId, `object ${pointer.object} is missing`)
          if (object.byteLength !== pointer.size || sha256Hex(object) !== pointer.sha256) {
            return yield* corrupt(
              agentId,
              `object ${pointer.object} has ${object.byteLength} bytes / a SHA-256 other than its pointer's`
            )
          }
          bytes = object
        } else if (!startsWith(bytes, SNAPSHOT_MAGIC)) {
          return yield* corrupt(agentId, "not a snapshot (bad magic)")
        }
        const snapshot = yield* Effect.mapError(Snapshots.decode(bytes), (e) => corrupt(agentId, e.message))
        if (snapshot.agentId !== agentId) {
          return yield* corrupt(agentId, `it was saved for agent ${JSON.stringify(snapshot.agentId)}`)
        }
        return Option.some(snapshot)
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      Effect.gen(function* () {
        const key = keyOf(agentId)
        const previous = yield* currentPointer(key)
        const entry = yield* attempt("instance.deleteState", () => kv.get(key))
        if (entry === null || entry.operation !== "PUT") return
        yield* attempt("instance.deleteState", () => kv.delete(key))
        yield* dropObject(previous)
      })

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt(
      "instance.listSaved",
      async () => {
        const ids: Array<AgentId> = []
        for await (const key of await kv.keys()) {
          const id = idOf(key)
          if (id !== undefined) ids.push(id as AgentId)
        }
        return ids
      }
    )

    return { saveState, loadState, deleteState, listSaved } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** The `InstanceRepository` layer on NATS KV (needs `Nats`). */
export const layer = (options: Options = {}): Layer.Layer<InstanceRepository, RepositoryError, Nats> =>
  Layer.effect(InstanceRepository, make(options))
