/**
 * The agent executor: owns `WebAssembly.Instance`s and serves protocol
 * requests (`Protocol.ts`) synchronously. It runs inside each worker
 * (`BrowserWorker.ts`) and, in in-page mode, on the page itself.
 *
 * Error mapping is `NativeEngine`'s (WebAssembly JS API §"Error Objects"):
 * `LinkError`/`TypeError` at instantiation → `InstantiationError`;
 * `RuntimeError` → `Trap` with the engine's message; `RangeError: Maximum
 * call stack size exceeded` → `Trap` "call stack exhausted"; a host
 * function's exception → `Trap` with the reason the page computed; WASI
 * `proc_exit` → an exit outcome. Fuel: when a call comes with fuel and the
 * instance exports the fuel global (`agent-runtime:fuel`, a mutable i64), the
 * global is set before the call and read after it; a trap with the global
 * below zero is `FuelExhausted`. Snapshot tracking: after every completed
 * call the executor compares linear memory page by page (64 KiB) with a
 * shadow copy and reports only the pages that changed, plus the exported
 * mutable globals, so the page can restore the agent on a fresh worker.
 *
 * Nothing a guest does escapes as an exception (only the fault-injection
 * request `CRASH`).
 *
 * @internal
 */
import { createWasi, ProcExit, WASI_MODULE, type WasiSession } from "../BrowserWasi.js"
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
} from "./Protocol.js"

/** A host function's failure, with the reason the page mapped it to. */
export class HostCallError extends Error {}

/** The fault-injection request: escapes the executor on purpose. */
export class InjectedFault extends Error {}

interface Live {
  readonly exports: WebAssembly.Exports
  readonly memory: WebAssembly.Memory | undefined
  readonly globals: ReadonlyArray<readonly [string, WebAssembly.Global]>
  readonly fuel: WebAssembly.Global | undefined
  readonly wasi: WasiSession | undefined
  tracking: Tracking[0]
  readonly maxBytes: number
  shadow: Uint8Array | undefined
}

/** What an executor needs from where it runs. */
export interface ExecutorOptions {
  /** Export name of the fuel global (`FUEL_EXPORT`). */
  readonly fuelExport: string
  /** The import function for host function `index` of instance `id` (throws `HostCallError`). */
  readonly hostFunction: (id: number, index: number) => (...args: Array<unknown>) => unknown
}

export interface Executor {
  /** Serves one request; never throws except for `CRASH`. */
  readonly handle: (request: unknown) => Response
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** The reason an exception thrown out of a guest call becomes (NativeEngine's wording). */
export const callErrorReason = (e: unknown): string => {
  if (e instanceof WebAssembly.RuntimeError) return e.message
  if (e instanceof RangeError && /call stack/i.test(e.message)) return `call stack exhausted (${e.message})`
  if (e instanceof TypeError) return `type error at the JS boundary: ${e.message}`
  return `host function threw: ${message(e)}`
}

const callError = (fn: string, e: unknown): ErrorWire => {
  if (e instanceof ProcExit) return ["Exit", fn, e.code]
  if (e instanceof HostCallError) return ["Trap", fn, e.message]
  return ["Trap", fn, callErrorReason(e)]
}

const findMemory = (exports: WebAssembly.Exports, imports: Record<string, Record<string, unknown>>) => {
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Memory) return v
  for (const ns of Object.values(imports)) for (const v of Object.values(ns)) if (v instanceof WebAssembly.Memory) return v
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

const pageIsZero = (words: Uint32Array, page: number): boolean => {
  const start = page * (PAGE / 4)
  const end = start + PAGE / 4
  for (let i = start; i < end; i++) if (words[i] !== 0) return false
  return true
}

const pagesEqual = (a: Uint32Array, b: Uint32Array, page: number): boolean => {
  const start = page * (PAGE / 4)
  const end = start + PAGE / 4
  for (let i = start; i < end; i++) if (a[i] !== b[i]) return false
  return true
}

/** The whole state (non-zero pages + mutable globals), or with `shadow` only what changed since it. */
const capture = (live: Live, shadow: Uint8Array | undefined): StateWire => {
  const bytes = memoryBytes(live)
  const indexes: Array<number> = []
  const data: Array<Uint8Array | null> = []
  if (live.memory !== undefined && bytes > 0) {
    const buffer = live.memory.buffer
    const words = new Uint32Array(buffer, 0, bytes / 4)
    const old = shadow === undefined ? undefined : new Uint32Array(shadow.buffer, shadow.byteOffset, bytes / 4)
    for (let p = 0; p * PAGE < bytes; p++) {
      const zero = pageIsZero(words, p)
      if (old === undefined) {
        if (!zero) {
          indexes.push(p)
          data.push(new Uint8Array(buffer, p * PAGE, PAGE).slice())
        }
        continue
      }
      if (pagesEqual(words, old, p)) continue
      const page = new Uint8Array(buffer, p * PAGE, PAGE)
      shadow!.set(page, p * PAGE)
      indexes.push(p)
      data.push(zero ? null : page.slice())
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

/** Builds an executor. */
export const makeExecutor = (options: ExecutorOptions): Executor => {
  const instances = new Map<number, Live>()

  const ok = (live: Live | undefined, value: unknown, fuelRemaining: number | null = null): Response => [
    1,
    value,
    live === undefined ? 0 : memoryBytes(live),
    fuelRemaining,
    live === undefined ? null : diff(live),
    live?.wasi?.drain() ?? null
  ]

  const fail = (live: Live | undefined, error: ErrorWire, withDiff = true): Response => [
    0,
    error,
    live === undefined ? 0 : memoryBytes(live),
    live === undefined || !withDiff ? null : diff(live),
    live?.wasi?.drain() ?? null
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

  const instantiate = (
    id: number,
    module: unknown,
    imports: ReadonlyArray<ImportSpec>,
    tracking: Tracking,
    wasiSpec: WasiSpec | null
  ): Response => {
    if (!(module instanceof WebAssembly.Module)) {
      return fail(undefined, ["InstantiationError", "not a module compiled by the browser engine"])
    }
    const importObject: Record<string, Record<string, unknown>> = {}
    for (const spec of imports) {
      const ns = (importObject[spec[0]] ??= {})
      if (spec[2] === 2) {
        // an imported memory the host asked for, capped at the agent's budget
        try {
          ns[spec[1]] = new WebAssembly.Memory(spec[3])
        } catch (e) {
          return fail(undefined, ["InstantiationError", `cannot create the imported memory ${spec[0]}.${spec[1]}: ${message(e)}`])
        }
      } else {
        ns[spec[1]] = spec[2] === 0 ? options.hostFunction(id, spec[3]) : spec[3]
      }
    }
    const wasi = wasiSpec === null ? undefined : createWasi(wasiSpec)
    if (wasi !== undefined) importObject[WASI_MODULE] = wasi.imports
    let instance: WebAssembly.Instance
    try {
      instance = new WebAssembly.Instance(module, importObject as WebAssembly.Imports)
    } catch (e) {
      // LinkError: an import of the wrong kind or type; TypeError: an import module or value is missing
      if (e instanceof WebAssembly.LinkError || e instanceof TypeError) return fail(undefined, ["InstantiationError", e.message])
      if (e instanceof RangeError && /memory/i.test(e.message)) {
        return fail(undefined, ["InstantiationError", `cannot allocate linear memory: ${e.message}`])
      }
      return fail(undefined, callError("(start)", e))
    }
    const exports = instance.exports
    const memory = findMemory(exports, importObject)
    const fuel = exports[options.fuelExport]
    const live: Live = {
      exports,
      memory,
      globals: mutableGlobals(exports),
      fuel: fuel instanceof WebAssembly.Global ? fuel : undefined,
      wasi,
      tracking: tracking[0],
      maxBytes: tracking[1],
      shadow: undefined
    }
    if (wasi !== undefined && memory !== undefined) wasi.bind(memory)
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
      if (e instanceof ProcExit) live.wasi?.exited(e.code)
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

  const handleRequest = (request: unknown): Response => {
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
        return fail(undefined, ["Trap", "(executor)", `unknown request ${String(r[0])}`])
    }
  }

  return {
    handle: (request) => {
      try {
        return handleRequest(request)
      } catch (e) {
        if (e instanceof InjectedFault) throw e
        // a bug on our side, never the guest's: report it instead of dying
        return fail(undefined, ["Trap", "(executor)", `internal error: ${message(e)}`])
      }
    }
  }
}
