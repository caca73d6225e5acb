/**
 * The messages between the page and an agent executor (a worker, or the
 * page itself in in-page mode), as positional arrays of wire values
 * (`Codec.ts`). No imports: worker-safe.
 *
 * Requests `[op, id, ...]` (`id`: the engine-wide instance number):
 * - `[INSTANTIATE, id, module, imports, tracking, wasi]`
 * - `[INVOKE, id, fn, args, fuel | null]`
 * - `[READ, id, offset, length]`, `[WRITE, id, offset, bytes]`
 * - `[SNAPSHOT, id]`, `[RESTORE, id, state]`, `[DROP, id]`
 * - `[CRASH]`: fault injection — the worker throws an uncaught error.
 *
 * Responses: `[1, value, memoryBytes, fuelRemaining | null, diff, output]` or
 * `[0, error, memoryBytes, diff, output]`; `error` is `[tag, ...fields]`;
 * `output` is `null` or what a WASI agent wrote during the request,
 * `[stdout bytes, stderr bytes, exitCode | null]`.
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

/** 1 WebAssembly page in bytes. */
export const PAGE = 65_536

/** One import: a host function proxied by index, a plain value, or a memory the executor creates (pages of 64 KiB). */
export type ImportSpec =
  | readonly [module: string, name: string, kind: 0, index: number]
  | readonly [module: string, name: string, kind: 1, value: unknown]
  | readonly [module: string, name: string, kind: 2, memory: { readonly initial: number; readonly maximum: number; readonly shared: boolean }]

/** Snapshot tracking: `[mode, maxBytes]`; 0 = off, 1 = always, 2 = while memory ≤ maxBytes. */
export type Tracking = readonly [mode: 0 | 1 | 2, maxBytes: number]

/** WASI setup: `[args, env, files: [guestPath, bytes][]]` (an in-memory preopened `/`). */
export type WasiSpec = readonly [
  args: ReadonlyArray<string>,
  env: ReadonlyArray<string>,
  files: ReadonlyArray<readonly [string, Uint8Array]>
]

/** Engine state: `[memoryBytes, pageIndexes, pageData, globalNames, globalValues]`; `null` data = page now zero. */
export type StateWire = readonly [
  memoryBytes: number,
  indexes: ReadonlyArray<number>,
  data: ReadonlyArray<Uint8Array | null>,
  globalNames: ReadonlyArray<string>,
  globalValues: ReadonlyArray<number | bigint>
]

/** A diff after a call: `null` = not tracked, `false` = tracking stopped (memory above the limit). */
export type Diff = StateWire | null | false

/** WASI output of one request: `[stdout, stderr, exitCode | null]`. */
export type OutputWire = readonly [stdout: Uint8Array, stderr: Uint8Array, exitCode: number | null] | null

export type ErrorWire =
  | readonly ["Trap", fn: string, reason: string]
  | readonly ["FunctionNotFound", fn: string]
  | readonly ["FuelExhausted", fn: string, fuel: number]
  | readonly ["InstantiationError", reason: string]
  | readonly ["Exit", fn: string, code: number]
  | readonly ["MemoryExceeded", used: number, limit: number]

export type Response =
  | readonly [ok: 1, value: unknown, memoryBytes: number, fuelRemaining: number | null, diff: Diff, output: OutputWire]
  | readonly [ok: 0, error: ErrorWire, memoryBytes: number, diff: Diff, output: OutputWire]
