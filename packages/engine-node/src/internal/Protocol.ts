/**
 * The messages of the host ↔ worker protocol, as positional arrays of wire
 * values (`Codec.ts`). Shared by `NodeEngine`/`WorkerPool` (host) and
 * `NodeWorker` (worker). No imports: safe in the worker.
 *
 * Requests `[op, id, ...]` (`id`: the engine-wide instance number):
 * - `[INSTANTIATE, id, module, imports, tracking, wasi]`
 * - `[INVOKE, id, fn, args, fuel | null]`
 * - `[READ, id, offset, length]`, `[WRITE, id, offset, bytes]`
 * - `[SNAPSHOT, id]`, `[RESTORE, id, state]`, `[DROP, id]`
 * - `[CRASH]`: fault injection — the worker throws an uncaught error.
 *
 * Responses: `[1, value, memoryBytes, fuelRemaining | null, diff]` or
 * `[0, error, memoryBytes, diff]` where `error` is `[tag, ...fields]`
 * (`["Trap", fn, reason]`, `["FunctionNotFound", fn]`,
 * `["FuelExhausted", fn, fuel]`, `["InstantiationError", reason]`,
 * `["Exit", fn, code]` for `proc_exit`, `["MemoryExceeded", used, limit]`
 * when a restore cannot grow memory).
 *
 * Host calls: `[id, importIndex, args]` → `[1, results]` or `[0, reason]`.
 *
 * @internal
 */

export const OP_INSTANTIATE = 1
export const OP_INVOKE = 2
export const OP_READ = 3
export const OP_WRITE = 4
export const OP_SNAPSHOT = 5
export const OP_RESTORE = 6
export const OP_DROP = 7
export const OP_CRASH = 8

/** One import the worker must provide: a host function proxied by index, or a plain value. */
export type ImportSpec =
  | readonly [module: string, name: string, kind: 0, index: number]
  | readonly [module: string, name: string, kind: 1, value: unknown]
  | readonly [module: string, name: string, kind: 2, memory: { initial: number; maximum: number; shared: boolean }]

/**
 * Snapshot tracking in the worker: `[mode, maxBytes]`. Mode 0 = off, 1 = always,
 * 2 = only while linear memory is at most `maxBytes`.
 */
export type Tracking = readonly [mode: 0 | 1 | 2, maxBytes: number]

/** WASI setup: `[programName, stdinFd, stdoutFd, stderrFd, preopens: [guest, host][]]`. */
export type WasiSpec = readonly [
  name: string,
  stdin: number,
  stdout: number,
  stderr: number,
  preopens: ReadonlyArray<readonly [string, string]>
]

/**
 * Engine state on the wire: `[memoryBytes, pageIndexes, pageData, globalNames, globalValues]`.
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

export type ErrorWire =
  | readonly ["Trap", fn: string, reason: string]
  | readonly ["FunctionNotFound", fn: string]
  | readonly ["FuelExhausted", fn: string, fuel: number]
  | readonly ["InstantiationError", reason: string]
  | readonly ["Exit", fn: string, code: number]
  | readonly ["MemoryExceeded", used: number, limit: number]

export type Response =
  | readonly [ok: 1, value: unknown, memoryBytes: number, fuelRemaining: number | null, diff: Diff]
  | readonly [ok: 0, error: ErrorWire, memoryBytes: number, diff: Diff]

export const PAGE = 65_536
