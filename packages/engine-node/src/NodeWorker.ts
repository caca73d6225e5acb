/**
 * The worker side of the Node engine: the script every pool worker runs
 * (`worker_threads`). It owns the `WebAssembly.Instance`s of the agents
 * assigned to its worker and serves the host's requests over the call channel
 * (`CallChannel.ts`), one at a time.
 *
 * - Instantiation receives the host's compiled `WebAssembly.Module` (posted,
 *   so V8 shares the compiled code: no recompilation) and builds the import
 *   object: every host function becomes a stub that proxies the call
 *   synchronously to the host (`channel.hostCall`), plain values are used as
 *   they are, and WASI imports come from `node:wasi` (`NodeWasi.ts`).
 * - Errors are mapped exactly as `NativeEngine` maps them (WebAssembly JS API
 *   §"Error Objects"): `LinkError`/`TypeError` at instantiation →
 *   `InstantiationError`; `RuntimeError` → `Trap` with V8's message;
 *   `RangeError: Maximum call stack size exceeded` → `Trap` "call stack
 *   exhausted"; a host function's exception → `Trap` with the reason the
 *   host computed; `proc_exit` → an exit outcome.
 * - Fuel: when a call comes with fuel and the instance exports the fuel
 *   global (`agent-runtime:fuel`, a mutable i64), the global is set before the
 *   call and read after it; a trap with the global below zero is
 *   `FuelExhausted`.
 * - Snapshot tracking: after every completed call (returned or trapped) the
 *   worker compares linear memory page by page (64 KiB) with its shadow copy
 *   of the last state it reported and sends only the changed pages (`null`
 *   for a page that became zero) plus the exported mutable globals; the host
 *   keeps the resulting state to restore the agent on a fresh worker.
 *
 * Nothing a guest does escapes as an exception; only the fault-injection
 * request `CRASH` ends the worker on purpose.
 *
 * With the shared channel the worker never returns to its event loop: it
 * blocks in `Atomics.wait` between requests and takes posted payloads with
 * `receiveMessageOnPort`. Everything here is therefore synchronous (WASI's
 * calls are); nothing may rely on timers, promises or `'message'` events.
 * `worker.terminate()` still interrupts it, also inside `Atomics.wait`.
 *
 * @since 0.1.0
 */
import { workerData } from "node:worker_threads"
import { type ChannelData, openWorker } from "./CallChannel.js"
import type { Wire } from "./internal/Codec.js"
import {
  type Diff,
  type ErrorWire,
  type ImportSpec,
  OP_CRASH,
  OP_DROP,
  OP_INSTANTIATE,
  OP_INVOKE,
  OP_READ,
  OP_RESTORE,
  OP_SNAPSHOT,
  OP_WRITE,
  PAGE,
  type Response,
  type StateWire,
  type Tracking,
  type WasiSpec
} from "./internal/Protocol.js"
import { createWasi, ProcExit, suppressWasiWarning } from "./NodeWasi.js"

/** What the host passes in `workerData`. */
export interface WorkerConfig {
  readonly channel: ChannelData
  /** Export name of the fuel global (`FUEL_EXPORT` of `@agent-runtime/wasm-binary`). */
  readonly fuelExport: string
}

interface Live {
  readonly exports: WebAssembly.Exports
  readonly memory: WebAssembly.Memory | undefined
  readonly globals: ReadonlyArray<readonly [string, WebAssembly.Global]>
  readonly fuel: WebAssembly.Global | undefined
  tracking: Tracking[0]
  readonly maxBytes: number
  shadow: Uint8Array | undefined
}

/** A host function's failure, with the reason the host mapped it to. */
class HostCallError extends Error {}

/** The fault-injection request: escapes the request loop on purpose. */
class InjectedFault extends Error {}

const ZERO_PAGE = Buffer.alloc(PAGE)

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const callError = (fn: string, e: unknown): ErrorWire => {
  if (e instanceof ProcExit) return ["Exit", fn, e.code]
  if (e instanceof HostCallError) return ["Trap", fn, e.message]
  if (e instanceof WebAssembly.RuntimeError) return ["Trap", fn, e.message]
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    return ["Trap", fn, `call stack exhausted (${e.message})`]
  }
  if (e instanceof TypeError) return ["Trap", fn, `type error at the JS boundary: ${e.message}`]
  return ["Trap", fn, `host function threw: ${message(e)}`]
}

const findMemory = (
  exports: WebAssembly.Exports,
  imports: Record<string, Record<string, unknown>>
): WebAssembly.Memory | undefined => {
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Memory) return v
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns)) if (v instanceof WebAssembly.Memory) return v
  }
  return undefined
}

const mutableGlobals = (exports: WebAssembly.Exports): Array<readonly [string, WebAssembly.Global]> => {
  const globals: Array<readonly [string, WebAssembly.Global]> = []
  for (const [name, v] of Object.entries(exports)) {
    if (!(v instanceof WebAssembly.Global)) continue
    try {
      v.value = v.value // throws TypeError for an immutable global: only mutable state is captured
      globals.push([name, v])
    } catch {
      // immutable
    }
  }
  return globals
}

const memoryBytes = (live: Live): number => (live.memory === undefined ? 0 : live.memory.buffer.byteLength)

/** The whole state: non-zero pages and mutable globals (or, with `shadow`, only what changed since it). */
const capture = (live: Live, shadow: Uint8Array | undefined): StateWire => {
  const bytes = memoryBytes(live)
  const indexes: Array<number> = []
  const data: Array<Uint8Array | null> = []
  if (live.memory !== undefined) {
    const memory = Buffer.from(live.memory.buffer, 0, bytes)
    const old = shadow === undefined ? undefined : Buffer.from(shadow.buffer, shadow.byteOffset, shadow.byteLength)
    for (let p = 0; p * PAGE < bytes; p++) {
      const page = memory.subarray(p * PAGE, (p + 1) * PAGE)
      if (old === undefined) {
        if (!page.equals(ZERO_PAGE)) {
          indexes.push(p)
          data.push(new Uint8Array(page))
        }
        continue
      }
      const before = old.subarray(p * PAGE, (p + 1) * PAGE)
      if (page.equals(before)) continue
      before.set(page)
      indexes.push(p)
      data.push(page.equals(ZERO_PAGE) ? null : new Uint8Array(page))
    }
  }
  const names: Array<string> = []
  const values: Array<number | bigint> = []
  for (const [name, g] of live.globals) {
    const v: unknown = g.value
    if (typeof v === "number" || typeof v === "bigint") {
      names.push(name)
      values.push(v)
    }
  }
  return [bytes, indexes, data, names, values]
}

/** The state change since the last report, per the instance's tracking mode. */
const diff = (live: Live): Diff => {
  if (live.tracking === 0) return null
  const bytes = memoryBytes(live)
  if (live.tracking === 2 && bytes > live.maxBytes) {
    live.tracking = 0
    live.shadow = undefined
    return false
  }
  let shadow = live.shadow ?? new Uint8Array(0)
  if (shadow.byteLength < bytes) {
    const grown = new Uint8Array(bytes)
    grown.set(shadow)
    shadow = grown
  }
  live.shadow = shadow
  return capture(live, shadow)
}

const instances = new Map<number, Live>()

const ok = (live: Live | undefined, value: unknown, fuelRemaining: number | null = null): Response => [
  1,
  value,
  live === undefined ? 0 : memoryBytes(live),
  fuelRemaining,
  live === undefined ? null : diff(live)
]

const fail = (live: Live | undefined, error: ErrorWire, withDiff = true): Response => [
  0,
  error,
  live === undefined ? 0 : memoryBytes(live),
  live === undefined || !withDiff ? null : diff(live)
]

const terminated = (op: string): Response => fail(undefined, ["Trap", op, "instance terminated"])

const bounds = (live: Live, op: string, offset: number, length: number): ErrorWire | undefined => {
  if (live.memory === undefined) return ["Trap", op, "the instance has no linear memory"]
  const size = live.memory.buffer.byteLength
  if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > size) {
    return ["Trap", op, `memory access out of bounds: [${offset}, ${offset + length}) of ${size} bytes`]
  }
  return undefined
}

const config = workerData as WorkerConfig
const channel = openWorker(config.channel)

const hostFunction = (id: number, index: number) => (...args: Array<unknown>): unknown => {
  const reply = channel.hostCall([id, index, args as Array<Wire>]) as readonly [number, unknown]
  if (reply[0] !== 1) throw new HostCallError(String(reply[1]))
  const values = reply[1] as ReadonlyArray<unknown>
  return values.length === 0 ? undefined : values.length === 1 ? values[0] : values
}

const instantiate = (
  id: number,
  module: unknown,
  imports: ReadonlyArray<ImportSpec>,
  tracking: Tracking,
  wasiSpec: WasiSpec | null
): Response => {
  if (!(module instanceof WebAssembly.Module)) {
    return fail(undefined, ["InstantiationError", "not a module compiled by the node engine"])
  }
  const importObject: Record<string, Record<string, unknown>> = {}
  for (const spec of imports) {
    const ns = (importObject[spec[0]] ??= {})
    ns[spec[1]] = spec[2] === 0
      ? hostFunction(id, spec[3])
      : spec[2] === 2
      ? new WebAssembly.Memory(spec[3]) // an imported memory the host asked for, capped at the budget
      : spec[3]
  }
  const wasi = wasiSpec === null ? undefined : createWasi(wasiSpec)
  if (wasi !== undefined) importObject["wasi_snapshot_preview1"] = wasi.imports
  let instance: WebAssembly.Instance
  try {
    instance = new WebAssembly.Instance(module, importObject as WebAssembly.Imports)
  } catch (e) {
    // LinkError: an import of the wrong kind or type; TypeError: an import module or value is missing
    if (e instanceof WebAssembly.LinkError || e instanceof TypeError) {
      return fail(undefined, ["InstantiationError", e.message])
    }
    if (e instanceof RangeError && /memory/i.test(e.message)) {
      return fail(undefined, ["InstantiationError", `cannot allocate linear memory: ${e.message}`])
    }
    return fail(undefined, callError("(start)", e))
  }
  const exports = instance.exports
  const memory = findMemory(exports, importObject)
  const fuel = exports[config.fuelExport]
  const live: Live = {
    exports,
    memory,
    globals: mutableGlobals(exports),
    fuel: fuel instanceof WebAssembly.Global ? fuel : undefined,
    tracking: tracking[0],
    maxBytes: tracking[1],
    shadow: undefined
  }
  if (wasi !== undefined && exports["memory"] instanceof WebAssembly.Memory) {
    try {
      wasi.bind(exports["memory"])
    } catch (e) {
      return fail(undefined, ["InstantiationError", `WASI: ${message(e)}`])
    }
  }
  instances.set(id, live)
  return ok(live, null)
}

const invoke = (live: Live, fn: string, args: ReadonlyArray<unknown>, fuel: number | null): Response => {
  const f = live.exports[fn]
  if (typeof f !== "function") return fail(live, ["FunctionNotFound", fn], false)
  const metered = fuel !== null && live.fuel !== undefined ? live.fuel : undefined
  if (metered !== undefined) metered.value = BigInt(fuel!)
  let result: unknown
  try {
    result = (f as (...a: ReadonlyArray<unknown>) => unknown)(...args)
  } catch (e) {
    if (metered !== undefined && (metered.value as bigint) < 0n) return fail(live, ["FuelExhausted", fn, fuel!])
    return fail(live, callError(fn, e))
  }
  const results = result === undefined ? [] : Array.isArray(result) ? result : [result]
  for (const v of results) {
    if (v !== null && typeof v !== "number" && typeof v !== "bigint") {
      return fail(live, ["Trap", fn, `a ${typeof v} result cannot cross the worker boundary`])
    }
  }
  return ok(live, results, metered === undefined ? null : Number(metered.value as bigint))
}

const restore = (live: Live, state: StateWire): Response => {
  const [bytes, indexes, data, names, values] = state
  if (live.memory !== undefined) {
    const current = live.memory.buffer.byteLength
    if (bytes > current) {
      try {
        live.memory.grow((bytes - current) / PAGE)
      } catch {
        return fail(live, ["MemoryExceeded", bytes, current])
      }
    }
    const view = new Uint8Array(live.memory.buffer)
    view.fill(0)
    for (let i = 0; i < indexes.length; i++) {
      const page = data[i]
      if (page) view.set(page, indexes[i]! * PAGE)
    }
  } else if (indexes.length > 0) {
    return fail(live, ["Trap", "restore", "snapshot has memory but the instance has none"])
  }
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!
    const g = live.exports[name]
    if (!(g instanceof WebAssembly.Global)) {
      return fail(live, ["Trap", "restore", `snapshot global ${name} is not exported by this module`])
    }
    try {
      g.value = values[i]
    } catch (e) {
      return fail(live, ["Trap", "restore", `cannot set global ${name}: ${message(e)}`])
    }
  }
  return ok(live, null)
}

const handle = (request: Wire): Response => {
  const r = request as ReadonlyArray<any>
  if (r[0] === OP_CRASH) throw new InjectedFault("injected worker fault")
  const id = r[1] as number
  if (r[0] === OP_INSTANTIATE) return instantiate(id, r[2], r[3], r[4], r[5])
  const live = instances.get(id)
  switch (r[0]) {
    case OP_INVOKE:
      return live === undefined ? terminated(r[2]) : invoke(live, r[2], r[3], r[4])
    case OP_READ: {
      if (live === undefined) return terminated("readMemory")
      const err = bounds(live, "readMemory", r[2], r[3])
      return err !== undefined ? fail(live, err, false) : ok(live, new Uint8Array(live.memory!.buffer, r[2], r[3]).slice())
    }
    case OP_WRITE: {
      if (live === undefined) return terminated("writeMemory")
      const bytes = r[3] as Uint8Array
      const err = bounds(live, "writeMemory", r[2], bytes.byteLength)
      if (err !== undefined) return fail(live, err, false)
      new Uint8Array(live.memory!.buffer).set(bytes, r[2])
      return ok(live, null)
    }
    case OP_SNAPSHOT:
      return live === undefined ? terminated("snapshot") : ok(live, capture(live, undefined))
    case OP_RESTORE:
      return live === undefined ? terminated("restore") : restore(live, r[2])
    case OP_DROP:
      instances.delete(id)
      return ok(undefined, null)
    default:
      return fail(undefined, ["Trap", "(worker)", `unknown request ${String(r[0])}`])
  }
}

const serveOne = (request: Wire): Response => {
  try {
    return handle(request)
  } catch (e) {
    if (e instanceof InjectedFault) throw e
    // a bug on our side, never the guest's: report it instead of dying
    return fail(undefined, ["Trap", "(worker)", `internal error: ${message(e)}`])
  }
}

suppressWasiWarning()
channel.serve(serveOne)
