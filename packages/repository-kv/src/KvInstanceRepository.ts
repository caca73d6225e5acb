/**
 * `KvInstanceRepository`: the domain's `InstanceRepository` port (spec
 * "Repository Interfaces / InstanceRepository") on a key-value store with the
 * shape of Workers KV or Durable Object storage — users plug in theirs
 * (`env.MY_KV`, `state.storage`) without this package importing any
 * Cloudflare type (STYLE.md "Adapters declare the small structural
 * interfaces they need").
 *
 * One key per agent: `<prefix><agentId>` (default prefix
 * `agent-runtime:instance:`), whose value is a JSON text (format
 * `agent-runtime/instance-snapshot` v1): the snapshot's fields, each
 * non-zero 64 KiB memory page as base64, i64 globals as decimal strings
 * (`{ "i64": "…" }`) so no precision is lost, and the f64 values JSON has no
 * number for as `{ "f64": "NaN" | "Infinity" | "-Infinity" | "-0" }`. `listSaved` pages through
 * `list({ prefix, cursor })` — Workers KV's `{ keys, list_complete, cursor }`
 * and Durable Object storage's `Map` are both understood.
 *
 * Errors: every failure of the store (a rejected promise) and every stored
 * value that cannot be decoded → `RepositoryError { operation, reason }`.
 *
 * @since 0.1.0
 */
import {
  type AgentId,
  InstanceRepositories,
  InstanceRepository,
  type InstanceSnapshot,
  RepositoryError
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { fromBase64, toBase64 } from "./internal/base64.js"

type InstanceRepositoryShape = InstanceRepositories.InstanceRepositoryShape

/** Workers KV's `list` result (`KVNamespaceListResult`). */
export interface KvListResult {
  readonly keys: ReadonlyArray<{ readonly name: string }>
  readonly list_complete: boolean
  readonly cursor?: string | undefined
}

/**
 * The key-value operations the repository needs: a subset of Workers KV
 * (`KVNamespace`) and of Durable Object storage (`DurableObjectStorage`).
 * Values are strings. `get` of a missing key resolves to `null` (KV) or
 * `undefined` (Durable Objects).
 */
export interface KeyValueStore {
  readonly get: (key: string) => Promise<unknown>
  readonly put: (key: string, value: string) => Promise<unknown>
  readonly delete: (key: string) => Promise<unknown>
  readonly list: (options: {
    readonly prefix: string
    readonly cursor?: string
  }) => Promise<KvListResult | ReadonlyMap<string, unknown>>
}

/** Options of the repository. */
export interface KvRepositoryOptions {
  /** Prefix of every key (default `"agent-runtime:instance:"`). */
  readonly prefix?: string | undefined
}

/** The stored JSON's `format`. */
export const SNAPSHOT_FORMAT = "agent-runtime/instance-snapshot"

type StoredGlobal = number | { readonly i64: string } | { readonly f64: "NaN" | "Infinity" | "-Infinity" | "-0" }

const encodeGlobal = (value: number | bigint): StoredGlobal => {
  if (typeof value === "bigint") return { i64: value.toString() }
  if (Number.isNaN(value)) return { f64: "NaN" }
  if (value === Infinity) return { f64: "Infinity" }
  if (value === -Infinity) return { f64: "-Infinity" }
  if (Object.is(value, -0)) return { f64: "-0" }
  return value
}

const F64: Readonly<Record<string, number>> = { NaN: Number.NaN, Infinity: Infinity, "-Infinity": -Infinity, "-0": -0 }

const decodeGlobal = (g: unknown): number | bigint | undefined => {
  if (typeof g === "number") return g
  if (typeof g !== "object" || g === null) return undefined
  const r = g as { i64?: unknown; f64?: unknown }
  if (typeof r.i64 === "string" && /^-?\d+$/.test(r.i64)) return BigInt(r.i64)
  if (typeof r.f64 === "string" && Object.hasOwn(F64, r.f64)) return F64[r.f64]
  return undefined
}

interface Stored {
  readonly format: typeof SNAPSHOT_FORMAT
  readonly v: 1
  readonly snapshot: Omit<InstanceSnapshot, "state">
  readonly state: {
    readonly memoryBytes: number
    readonly pages: ReadonlyArray<{ readonly index: number; readonly data: string }>
    readonly globals: { readonly [name: string]: StoredGlobal }
  }
}

/** Encodes a snapshot as the stored JSON text. */
export const encodeSnapshot = (snapshot: InstanceSnapshot): string => {
  const { state, ...rest } = snapshot
  const globals: Record<string, StoredGlobal> = {}
  for (const [name, value] of Object.entries(state.globals)) globals[name] = encodeGlobal(value)
  const stored: Stored = {
    format: SNAPSHOT_FORMAT,
    v: 1,
    snapshot: rest,
    state: {
      memoryBytes: state.memoryBytes,
      pages: state.pages.map((p) => ({ index: p.index, data: toBase64(p.data) })),
      globals
    }
  }
  return JSON.stringify(stored)
}

/** Decodes the stored JSON text; `undefined` with a reason when it is not a stored snapshot. */
export const decodeSnapshot = (text: string): InstanceSnapshot | string => {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return "not JSON"
  }
  const stored = value as Partial<Stored> | null
  if (stored === null || typeof stored !== "object" || stored.format !== SNAPSHOT_FORMAT || stored.v !== 1) {
    return `not a ${SNAPSHOT_FORMAT} v1 value`
  }
  const state = stored.state
  const snapshot = stored.snapshot
  if (
    state === undefined ||
    snapshot === undefined ||
    !Array.isArray(state.pages) ||
    typeof state.memoryBytes !== "number"
  ) {
    return "missing fields"
  }
  const pages: Array<{ index: number; data: Uint8Array }> = []
  for (const p of state.pages) {
    const data = fromBase64(p.data)
    if (data === undefined || !Number.isInteger(p.index)) return `page ${String(p.index)} is malformed`
    pages.push({ index: p.index, data })
  }
  const globals: Record<string, number | bigint> = {}
  for (const [name, g] of Object.entries(state.globals ?? {})) {
    const value = decodeGlobal(g)
    if (value === undefined) return `global ${name} is malformed`
    globals[name] = value
  }
  return { ...snapshot, state: { memoryBytes: state.memoryBytes, pages, globals } } as InstanceSnapshot
}

/** The repository over a key-value store (see the module doc). */
export const make = (store: KeyValueStore, options: KvRepositoryOptions = {}): InstanceRepositoryShape => {
  const prefix = options.prefix ?? "agent-runtime:instance:"
  const attempt = <A>(operation: string, f: () => Promise<A>) =>
    Effect.tryPromise({
      try: f,
      catch: (e) => new RepositoryError({ operation, reason: e instanceof Error ? e.message : String(e) })
    })
  return {
    saveState: (agentId, snapshot) =>
      Effect.asVoid(attempt("saveState", () => store.put(prefix + agentId, encodeSnapshot(snapshot)))),
    loadState: (agentId) =>
      Effect.flatMap(
        attempt("loadState", () => store.get(prefix + agentId)),
        (value) => {
          if (value === null || value === undefined) return Effect.succeed(Option.none())
          if (typeof value !== "string") {
            return Effect.fail(
              new RepositoryError({ operation: "loadState", reason: `value of ${agentId} is not a string` })
            )
          }
          const decoded = decodeSnapshot(value)
          return typeof decoded === "string"
            ? Effect.fail(
                new RepositoryError({ operation: "loadState", reason: `value of ${agentId} is corrupt: ${decoded}` })
              )
            : Effect.succeed(Option.some(decoded))
        }
      ),
    deleteState: (agentId) => Effect.asVoid(attempt("deleteState", () => store.delete(prefix + agentId))),
    listSaved: attempt("listSaved", async () => {
      const ids: Array<AgentId> = []
      let cursor: string | undefined
      for (let page = 0; page < 10_000; page++) {
        const result = await store.list(cursor === undefined ? { prefix } : { prefix, cursor })
        if (result instanceof Map) {
          for (const key of result.keys()) ids.push(key.slice(prefix.length) as AgentId)
          return ids
        }
        const kv = result as KvListResult
        for (const k of kv.keys) ids.push(k.name.slice(prefix.length) as AgentId)
        if (kv.list_complete || kv.cursor === undefined) return ids
        cursor = kv.cursor
      }
      throw new Error("list did not complete after 10000 pages")
    })
  }
}

/** The `InstanceRepository` layer over a key-value store. */
export const layer = (store: KeyValueStore, options: KvRepositoryOptions = {}): Layer.Layer<InstanceRepository> =>
  Layer.succeed(InstanceRepository, make(store, options))

/** An in-memory `KeyValueStore` with Workers KV's `list` shape (pages of `pageSize` keys, sorted), for tests and local runs. */
export const memoryStore = (pageSize = 1000): KeyValueStore & { readonly entries: Map<string, string> } => {
  const entries = new Map<string, string>()
  return {
    entries,
    get: async (key) => entries.get(key) ?? null,
    put: async (key, value) => void entries.set(key, value),
    delete: async (key) => void entries.delete(key),
    list: async ({ prefix, cursor }) => {
      const keys = [...entries.keys()].filter((k) => k.startsWith(prefix)).sort()
      const start = cursor === undefined ? 0 : Number(cursor)
      const page = keys.slice(start, start + pageSize)
      const next = start + page.length
      return next < keys.length
        ? { keys: page.map((name) => ({ name })), list_complete: false, cursor: String(next) }
        : { keys: page.map((name) => ({ name })), list_complete: true }
    }
  }
}
