/**
 * The host ↔ worker protocol of the worker engine: every request the host
 * sends to an executor (a worker, or the page itself in the browser's
 * in-page mode), the reply each request gets, and the *host calls* a worker
 * makes while a request runs (a guest calling a host import). Messages are
 * positional arrays of wire values (`Codec.ts`) so the shared call path
 * encodes nothing but the values; their shapes are discriminated unions, so
 * the compiler follows a call from `WorkerEngine` through `WorkerPool` and
 * `CallChannel` to `WorkerExecutor` and back: `ReplyTo<R>` is the reply type
 * of request `R`.
 *
 * Requests `[op, id, ...]` (`id`: the engine-wide instance number):
 * - `[Op.Instantiate, id, module, imports, memory, tracking, wasi]` (`memory`:
 *   the imported memory the executor creates with the budget as maximum)
 * - `[Op.Invoke, id, fn, args, fuel | null]` → results
 * - `[Op.Read, id, offset, length]` → bytes; `[Op.Write, id, offset, bytes]`
 * - `[Op.Snapshot, id]` → state; `[Op.Restore, id, state]`; `[Op.Drop, id]`
 * - `[Op.Crash]`: fault injection — the worker throws an uncaught error.
 * - `[Op.Ping]` → `null`: the first request of a fresh worker, so its
 *   start-up (thread, script, channel) is not charged to a request's deadline.
 *
 * Replies: `[1, value, memoryBytes, fuelRemaining | null, diff, output]` or
 * `[0, error, memoryBytes, diff, output]`; `error` is `[tag, ...fields]`;
 * `diff` is the state change for recovery (`null` untracked); `output` is
 * what a WASI agent wrote during the request where the platform ships it
 * back (the browser's shim), else `null`.
 *
 * Host calls: `[id, importIndex, args]` → `[1, result]` or `[0, reason]`.
 *
 * Units: bytes (1 page = 64 KiB), fuel units.
 *
 * @since 0.2.0
 */
import type { EngineState, HostMemory } from "@agent-runtime/domain"
import type { Wire } from "./Codec.js"

/** The WASI import namespace (WASI preview1). */
export const WASI_MODULE = "wasi_snapshot_preview1"

/** Request opcodes. */
export const Op = {
  Instantiate: 1,
  Invoke: 2,
  Read: 3,
  Write: 4,
  Snapshot: 5,
  Restore: 6,
  Drop: 7,
  Crash: 8,
  Ping: 9
} as const

/** One import: a host function proxied by index (kind 0) or a plain value (kind 1). */
export type ImportSpec =
  | readonly [module: string, name: string, kind: 0, index: number]
  | readonly [module: string, name: string, kind: 1, value: unknown]

/** Snapshot tracking: `[mode, maxBytes]`; 0 = off, 1 = always, 2 = while linear memory ≤ `maxBytes`. */
export type Tracking = readonly [mode: 0 | 1 | 2, maxBytes: number]

/**
 * Engine state: `[memoryBytes, pageIndexes, pageData, globalNames, globalValues]`.
 * In a diff, a `null` page datum means "this page is now all zero".
 */
export type StateWire = readonly [
  memoryBytes: number,
  indexes: ReadonlyArray<number>,
  data: ReadonlyArray<Uint8Array | null>,
  globalNames: ReadonlyArray<string>,
  globalValues: ReadonlyArray<number | bigint>
]

/** A diff after a call: `null` = not tracked, `false` = tracking stopped (memory above the limit). */
export type Diff = StateWire | null | false

/** WASI output of one request: `[stdout, stderr, exitCode | null]`, or `null` when nothing was written. */
export type OutputWire = readonly [stdout: Uint8Array, stderr: Uint8Array, exitCode: number | null] | null

/** A failure, as the executor reports it. */
export type ErrorWire =
  | readonly ["Trap", fn: string, reason: string]
  | readonly ["FunctionNotFound", fn: string]
  | readonly ["FuelExhausted", fn: string, fuel: number]
  | readonly ["InstantiationError", reason: string]
  | readonly ["Exit", fn: string, code: number]
  | readonly ["MemoryExceeded", used: number, limit: number]

/** A value a guest passes or returns (i64 as bigint; `null` for a null reference). */
export type ValueWire = number | bigint | null

// -- requests -------------------------------------------------------------------

/**
 * Instantiates a module; `memory` is the domain's `InstantiateOptions.memory`
 * (created by the executor when the imports lack it); `wasi` is the
 * platform's WASI setup (`W`), `null` without WASI.
 */
export type InstantiateRequest<W = unknown> = readonly [
  op: typeof Op.Instantiate,
  id: number,
  module: WebAssembly.Module,
  imports: ReadonlyArray<ImportSpec>,
  memory: HostMemory | null,
  tracking: Tracking,
  wasi: W | null
]
/** Calls export `fn` of instance `id` with `args` (wire values; i64 as bigint), setting `fuel` units first when not null. Reply: `ReplyTo<InvokeRequest>`. */
export type InvokeRequest = readonly [
  op: typeof Op.Invoke,
  id: number,
  fn: string,
  args: ReadonlyArray<ValueWire>,
  fuel: number | null
]
/** Copies `length` bytes at byte `offset` out of instance `id`'s linear memory. */
export type ReadRequest = readonly [op: typeof Op.Read, id: number, offset: number, length: number]
/** Copies `bytes` into instance `id`'s linear memory at byte `offset`. */
export type WriteRequest = readonly [op: typeof Op.Write, id: number, offset: number, bytes: Uint8Array]
/** Takes instance `id`'s state: non-zero 64 KiB pages and mutable globals. */
export type SnapshotRequest = readonly [op: typeof Op.Snapshot, id: number]
/** Overwrites instance `id`'s memory and globals with `state`. */
export type RestoreRequest = readonly [op: typeof Op.Restore, id: number, state: StateWire]
/** Forgets instance `id` (its memory is freed with it). */
export type DropRequest = readonly [op: typeof Op.Drop, id: number]
/** Ends the worker's thread on purpose (tests of recovery). */
export type CrashRequest = readonly [op: typeof Op.Crash]
/** Answered as soon as the worker runs: its start-up is not charged to a request's deadline. */
export type PingRequest = readonly [op: typeof Op.Ping]

/** Every request. */
export type Request<W = unknown> =
  | InstantiateRequest<W>
  | InvokeRequest
  | ReadRequest
  | WriteRequest
  | SnapshotRequest
  | RestoreRequest
  | DropRequest
  | CrashRequest
  | PingRequest

// -- replies --------------------------------------------------------------------

/** A reply whose success value is `V`. */
export type Reply<V = unknown> =
  | readonly [ok: 1, value: V, memoryBytes: number, fuelRemaining: number | null, diff: Diff, output: OutputWire]
  | readonly [ok: 0, error: ErrorWire, memoryBytes: number, diff: Diff, output: OutputWire]

/** The success value of each request. */
export type ValueOf<R> = R extends InvokeRequest
  ? ReadonlyArray<ValueWire>
  : R extends ReadRequest
    ? Uint8Array
    : R extends SnapshotRequest
      ? StateWire
      : null

/** The reply type of request `R`. */
export type ReplyTo<R> = Reply<ValueOf<R>>

// -- host calls -----------------------------------------------------------------

/** A guest's call of host import `index` of instance `id`. */
export type HostCall = readonly [id: number, index: number, args: ReadonlyArray<ValueWire>]

/**
 * A host call's outcome: what the host function returned, as a wire value
 * (the guest's engine converts it as `ToWebAssemblyValue` does), or the
 * reason the guest traps with.
 */
export type HostReply = readonly [ok: 1, result: Wire] | readonly [ok: 0, reason: string]

/** The first message a worker receives: its end of the channel. */
export type WorkerInit<C = unknown> = readonly [tag: "init", channel: C]

// -- state conversion -----------------------------------------------------------

/** The port's `EngineState` as a wire state. */
export const stateToWire = (state: EngineState): StateWire => [
  state.memoryBytes,
  state.pages.map((p) => p.index),
  state.pages.map((p) => p.data),
  Object.keys(state.globals),
  Object.values(state.globals)
]

/** A full wire state (no `null` pages) as the port's `EngineState`. */
export const stateFromWire = (wire: StateWire): EngineState => {
  const [memoryBytes, indexes, data, names, values] = wire
  const globals: Record<string, number | bigint> = {}
  names.forEach((name, i) => (globals[name] = values[i]!))
  return { memoryBytes, pages: indexes.map((index, i) => ({ index, data: data[i]! })), globals }
}
