/**
 * The worker side of the worker engine: the executor that owns the agents'
 * instances of one worker (or of the page itself, in the browser's in-page
 * mode) and answers protocol requests (`Protocol.ts`) synchronously, and
 * `serve`, the whole body of a worker entry script.
 *
 * Every instance is an engine-kit `Instance` (the same in-thread instance
 * engine-native runs), so values, fuel, snapshots and error mapping are the
 * in-process engine's (WebAssembly JS API §"Error Objects"). Added here:
 * - host imports are stubs that proxy each call synchronously to the host
 *   (`CallChannel.hostCall`) and return what the host function returned, so
 *   the engine converts it here as it would in-process (`ToWebAssemblyValue`);
 *   a host function's failure comes back as the reason the host computed and
 *   traps the guest with it;
 * - WASI comes from the platform (`ExecutorPlatform.createWasi`); `proc_exit`
 *   unwinds the guest and ends the call with an `Exit` error (code 0 is a
 *   normal return for the host);
 * - results must cross a thread: a result that is not a number, bigint or
 *   null is a `Trap`;
 * - snapshot tracking for recovery: after every completed call (returned or
 *   trapped) the executor compares linear memory page by page (64 KiB) with
 *   its shadow copy of the state it last reported and sends only the pages
 *   that changed (`null` for a page that became zero) plus the exported
 *   mutable globals; the host keeps the result to restore the agent on a
 *   fresh worker (`Tracking`). A module rewritten with the dirty-page write
 *   barrier (wasm-binary `DIRTY_PAGES_EXPORT`) says which pages its code may
 *   have written: only those (and the page after each, for a store that
 *   spills over) are compared, none when the bitmap is 0. Writes the guest's
 *   code does not make — instantiation (data segments), `writeMemory`,
 *   `restore`, any WASI call — and a failed call (a trap may unwind frames
 *   whose bits were not published yet) make the next comparison a full one,
 *   as for a module without the barrier.
 *
 * Per call, nothing is looked up or allocated that a previous call of the
 * same export already made: each export's caller (`prepareDirect`) is made on
 * its first call and kept with the instance, the memory usage is the one the
 * call measured, the exported mutable globals are listed once (most modules
 * have none: nothing to read), and a diff that found nothing is one tuple per
 * instance, reused while the memory size holds.
 *
 * In-page (the executor on the caller's thread, no tracking) the engine
 * also calls instances directly, without a request (`InPageExecutor.instance`:
 * the same work as an `Op.Invoke`, for the domain's synchronous call path).
 *
 * Nothing a guest does escapes as an exception; only the fault-injection
 * request `Crash` ends a worker on purpose. With the shared channel the
 * worker blocks in `Atomics.wait` between requests, so everything here is
 * synchronous: nothing may rely on timers, promises or message events.
 *
 * @since 0.2.0
 */
import type { CallSlot, WasmValue } from "@agent-runtime/domain"
import { DIRTY_PAGES_EXPORT } from "@agent-runtime/wasm-binary"
import { type ChannelInit, type ChannelMessage, openWorker, type WorkerChannel } from "./CallChannel.js"
// the synchronous core with plain tagged errors: nothing here pulls Schema or Effect into the worker bundle
import * as Instance from "./internal/core.js"
import { type DirtyAccess, dirtyAccess } from "./internal/dirty.js"
import { FuelExhausted, FunctionNotFound, InstantiationError, MemoryExceeded, Trap } from "./internal/errors.js"
import { PAGE_BYTES } from "./internal/pages.js"
import {
  type Diff,
  type ErrorWire,
  type HostReply,
  type ImportSpec,
  type InstantiateRequest,
  Op,
  type OutputWire,
  type Reply,
  type Request,
  stateFromWire,
  type StateWire,
  stateToWire,
  type Tracking,
  type ValueWire,
  type WorkerInit
} from "./Protocol.js"
import type { WorkerScope } from "./WorkerHost.js"

/** One instance's WASI, as a platform provides it inside the executor. */
export interface WasiSession {
  /** The `wasi_snapshot_preview1` import namespace. */
  readonly imports: Readonly<Record<string, unknown>>
  /** Binds the instance's linear memory right after instantiation (may throw → `InstantiationError` "WASI: …"). */
  readonly bind: (memory: WebAssembly.Memory) => void
  /** Records a `proc_exit` code. */
  readonly exited: (code: number) => void
  /** What was written (and the exit code) since the last drain, for the reply; `null` when nothing. */
  readonly drain: () => OutputWire
}

/** What an executor needs from the platform it runs on. `W` is the platform's WASI setup. */
export interface ExecutorPlatform<W> {
  /** A fresh WASI for one instance. */
  readonly createWasi: (spec: W) => WasiSession
  /** The `proc_exit` code when `e` is the platform's exit exception, else `undefined`. */
  readonly exitCode: (e: unknown) => number | undefined
  /**
   * Compares two 64 KiB pages (snapshot tracking); default: a 32-bit word
   * loop. Node passes `Buffer#equals` (one `memcmp`).
   */
  readonly pagesEqual?: ((a: Uint8Array, b: Uint8Array) => boolean) | undefined
  /** The `InstantiationError` reason when a request carries no `WebAssembly.Module`. */
  readonly notAModule: string
}

/** What an executor needs from where it runs. */
export interface ExecutorOptions<W> {
  readonly platform: ExecutorPlatform<W>
  /** The import function for host function `index` of instance `id`: throws `HostCallError` with the host's reason. */
  readonly hostFunction: (id: number, index: number) => (...args: Array<unknown>) => unknown
}

/** Serves one request; never throws except for `Op.Crash` (`InjectedFault`). */
export type Executor<W> = (request: Request<W>) => Reply

/**
 * In-page only (the executor runs on its caller's thread): a synchronous
 * caller of one export of one instance, bypassing requests — what an
 * `Op.Invoke` request of it does, with the same results and errors: it
 * calls the export with `args` (`null` / number / bigint, already checked)
 * and `fuel` (fuel units; `undefined`: unmetered), and returns `undefined`
 * after writing the export's raw return value, the memory usage after the
 * call (bytes) and the fuel left to `slot` — or the error as the wire
 * reports it (`ErrorWire`: `Trap`, `FuelExhausted`, `Exit` for a WASI
 * `proc_exit`, including code 0), leaving `slot` as it was. A result that
 * is not a number, bigint or null is a `Trap`, as in a worker. Never throws.
 */
export type InPageCall = (
  args: ReadonlyArray<WasmValue>,
  fuel: number | undefined,
  slot: CallSlot
) => ErrorWire | undefined

/** In-page only: direct access to one instance of the executor (`InPageExecutor.instance`). */
export interface InPageInstance {
  /** The export's `InPageCall`, made once; `undefined` when `fn` is not a function. */
  readonly prepareDirect: (fn: string) => InPageCall | undefined
  /** The instance's memory usage now, bytes (what a reply reports: linear memory + table entries). */
  readonly memoryBytes: () => number
}

/**
 * An executor that can also be called directly (in-page mode): `instance`
 * gives synchronous callers of instance `id` — `undefined` when it is not
 * live here or its memory is tracked for recovery (workers only; those
 * calls must send their diff). `onOutput` receives what a WASI instance
 * wrote during each direct call (as a reply's `OutputWire`).
 */
export interface InPageExecutor<W> extends Executor<W> {
  readonly instance: (id: number, onOutput: ((output: OutputWire) => void) | undefined) => InPageInstance | undefined
}

/** A host function's failure, with the reason the host mapped it to. */
export class HostCallError extends Error {}

/** The fault-injection request: escapes the executor on purpose. */
export class InjectedFault extends Error {}

/** A WASI `proc_exit` out of export `fn`. */
class Exited extends Error {
  constructor(
    readonly fn: string,
    readonly code: number
  ) {
    super(`proc_exit(${code})`)
  }
}

type LiveError = Trap | FunctionNotFound | FuelExhausted | MemoryExceeded | InstantiationError | Exited

interface Live {
  readonly instance: Instance.LiveInstance<Exited | Trap>
  readonly wasi: WasiSession | undefined
  tracking: Tracking[0]
  readonly maxBytes: number
  shadow: Uint8Array | undefined
  /** The write barrier's bitmap, when the module has one (else every comparison is full). */
  readonly dirty: DirtyAccess | undefined
  /** Set when memory may have been written other than by the guest's stores: the next comparison is full. */
  readonly outside: { full: boolean }
  /**
   * The value of each exported mutable global (`instance.globals` order) as last reported: a diff carries
   * only the globals that changed since (the host merges them into what it keeps); `undefined` until the
   * first report, which carries them all.
   */
  reported: Array<number | bigint | undefined> | undefined
  /** The exported mutable globals (`instance.globals`), read once on the first diff: most modules have none. */
  globals: ReadonlyArray<readonly [string, WebAssembly.Global]> | undefined
  /** The diff of a call that changed nothing, for `memoryBytes`: one tuple reused until the size changes. */
  unchanged: StateWire
  /** Each export's allocation-free caller (`prepareDirect`), made on its first call: no lookup or closure per call. */
  readonly callers: Map<string, Instance.DirectCall<Exited | Trap>>
  /** The callers' outcome slot, read right after each call. */
  readonly slot: { result: unknown; memoryBytes: number; fuelRemaining: number | undefined }
}

/** Shared empty lists of a diff that found nothing (never written to: the host and the codec only read them). */
const NO_INDEXES: Array<number> = []
const NO_PAGES: Array<Uint8Array | null> = []
const NO_NAMES: Array<string> = []
const NO_VALUES: Array<number | bigint> = []
/** The results of a call that returned nothing: frozen (in-page, the caller gets this very array). */
const NO_RESULTS: ReadonlyArray<ValueWire> = Object.freeze([])

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** A typed error from the instance as the wire reports it. */
const toWire = (e: LiveError): ErrorWire => {
  if (e instanceof Exited) return ["Exit", e.fn, e.code]
  switch (e._tag) {
    case "Trap":
      return ["Trap", e.function, e.reason]
    case "FunctionNotFound":
      return ["FunctionNotFound", e.function]
    case "FuelExhausted":
      return ["FuelExhausted", e.function, e.fuel]
    case "MemoryExceeded":
      return ["MemoryExceeded", e.used, e.limit]
    case "InstantiationError":
      return ["InstantiationError", e.reason]
  }
}

const wordsEqual = (a: Uint8Array, b: Uint8Array): boolean => {
  const x = new Int32Array(a.buffer, a.byteOffset, a.byteLength >>> 2)
  const y = new Int32Array(b.buffer, b.byteOffset, b.byteLength >>> 2)
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

const ZERO_PAGE = new Uint8Array(PAGE_BYTES)

/**
 * The WASI namespace with every function marking `outside.full` before it
 * runs: WASI calls write guest memory from the host side (`fd_read`,
 * `fd_write`'s count, `args_get`, …), which the write barrier cannot see.
 */
const outsideWrites = (
  namespace: Readonly<Record<string, unknown>>,
  outside: { full: boolean }
): Record<string, unknown> => {
  const wrapped: Record<string, unknown> = {}
  for (const [key, f] of Object.entries(namespace)) {
    wrapped[key] =
      typeof f === "function"
        ? function (this: unknown, ...args: Array<unknown>) {
            outside.full = true
            return Reflect.apply(f, namespace, args) as unknown
          }
        : f
  }
  return wrapped
}

/** Builds an executor (its `instance` member serves in-page direct calls: `InPageExecutor`). */
export const make = <W>(options: ExecutorOptions<W>): InPageExecutor<W> => {
  const { platform } = options
  const equal = platform.pagesEqual ?? wordsEqual
  const instances = new Map<number, Live>()

  const memoryBytes = (live: Live | undefined): number => (live === undefined ? 0 : live.instance.memoryBytes())

  /** What changed since the last report (pages + globals), updating the shadow copy. */
  const diff = (live: Live): Diff => {
    if (live.tracking === 0) return null
    const bytes = live.instance.linearBytes()
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
    let indexes = NO_INDEXES
    let data = NO_PAGES
    const memory = live.instance.memory
    // the pages to compare: a 64-bit mask (page p ↔ bit p % 64), every page without a barrier
    let low = -1
    let high = -1
    if (live.dirty !== undefined) {
      const taken = live.dirty.take() // clears the bitmap in any case
      if (!live.outside.full) {
        low = taken
        high = live.dirty.high()
      }
    }
    live.outside.full = false
    if (memory !== undefined && (low !== 0 || high !== 0)) {
      const buffer = memory.buffer
      const all = low === -1 && high === -1
      for (let at = 0, p = 0; at < bytes; at += PAGE_BYTES, p++) {
        if (!all && (((p & 63) < 32 ? low >>> (p & 31) : high >>> (p & 31)) & 1) === 0) continue
        const page = new Uint8Array(buffer, at, PAGE_BYTES)
        const before = shadow.subarray(at, at + PAGE_BYTES)
        if (equal(page, before)) continue
        before.set(page)
        if (indexes === NO_INDEXES) {
          indexes = []
          data = []
        }
        indexes.push(at / PAGE_BYTES)
        data.push(equal(page, ZERO_PAGE) ? null : page.slice())
      }
    }
    let names = NO_NAMES
    let values = NO_VALUES
    // the module's exported mutable globals are fixed: read once; without any, nothing to read per call
    const globals = (live.globals ??= live.instance.globals)
    const reported = (live.reported ??= new Array<number | bigint | undefined>(globals.length))
    for (let i = 0; i < globals.length; i++) {
      const [name, g] = globals[i]!
      const v: unknown = g.value
      // Object.is: -0 and 0 differ; a NaN is reported once (JS cannot tell NaN payloads apart)
      if ((typeof v === "number" || typeof v === "bigint") && (!(i in reported) || !Object.is(reported[i], v))) {
        if (names === NO_NAMES) {
          names = []
          values = []
        }
        names.push(name)
        values.push(v)
        reported[i] = v
      }
    }
    if (indexes === NO_INDEXES && names === NO_NAMES) {
      // nothing changed (the usual call): the same tuple as last time while the size holds, no allocation
      const unchanged = live.unchanged
      if (unchanged[0] === bytes) return unchanged
      return (live.unchanged = [bytes, NO_INDEXES, NO_PAGES, NO_NAMES, NO_VALUES])
    }
    return [bytes, indexes, data, names, values]
  }

  const ok = <V>(
    live: Live | undefined,
    value: V,
    fuelRemaining: number | null = null,
    bytes: number = memoryBytes(live)
  ): Reply<V> => [1, value, bytes, fuelRemaining, live === undefined ? null : diff(live), live?.wasi?.drain() ?? null]

  const fail = (live: Live | undefined, error: ErrorWire, withDiff = true): Reply<never> => {
    // a trap may unwind frames whose dirty bits were not published to the bitmap yet
    if (live !== undefined) live.outside.full = true
    return failReply(live, error, withDiff)
  }

  const failReply = (live: Live | undefined, error: ErrorWire, withDiff: boolean): Reply<never> => [
    0,
    error,
    memoryBytes(live),
    live === undefined || !withDiff ? null : diff(live),
    live?.wasi?.drain() ?? null
  ]

  const terminated = (op: string): Reply<never> => fail(undefined, ["Trap", op, "instance terminated"])

  const instantiate = (request: InstantiateRequest<W>): Reply => {
    const [, id, module, specs, memory, tracking, wasiSpec] = request
    const imports: Record<string, Record<string, unknown>> = {}
    for (const spec of specs as ReadonlyArray<ImportSpec>) {
      const ns = (imports[spec[0]] ??= {})
      ns[spec[1]] = spec[2] === 0 ? options.hostFunction(id, spec[3]) : spec[3]
    }
    const wasi = wasiSpec === null ? undefined : platform.createWasi(wasiSpec)
    const outside = { full: true } // the first comparison is full: data segments and the start function
    if (wasi !== undefined) imports["wasi_snapshot_preview1"] = outsideWrites(wasi.imports, outside)
    const mapThrown = (fn: string, e: unknown): Exited | Trap | undefined => {
      const code = platform.exitCode(e)
      if (code !== undefined) {
        wasi?.exited(code)
        return new Exited(fn, code)
      }
      return e instanceof HostCallError ? new Trap({ function: fn, reason: e.message }) : undefined
    }
    const instance = Instance.instantiate(module, imports as WebAssembly.Imports, {
      memory: memory ?? undefined,
      notAModule: platform.notAModule,
      mapThrown
    })
    if (instance instanceof Error) return fail(undefined, toWire(instance))
    if (wasi !== undefined && instance.memory !== undefined) {
      try {
        wasi.bind(instance.memory)
      } catch (e) {
        return fail(undefined, ["InstantiationError", `WASI: ${message(e)}`])
      }
    }
    const bitmap = instance.exports[DIRTY_PAGES_EXPORT]
    const live: Live = {
      instance,
      wasi,
      tracking: tracking[0],
      maxBytes: tracking[1],
      shadow: undefined,
      dirty: bitmap instanceof WebAssembly.Global && tracking[0] !== 0 ? dirtyAccess(bitmap) : undefined,
      outside,
      reported: undefined,
      globals: undefined,
      unchanged: [-1, NO_INDEXES, NO_PAGES, NO_NAMES, NO_VALUES],
      callers: new Map(),
      slot: { result: undefined, memoryBytes: 0, fuelRemaining: undefined }
    }
    instances.set(id, live)
    return ok(live, null)
  }

  const invoke = (live: Live, fn: string, args: ReadonlyArray<ValueWire>, fuel: number | null): Reply => {
    let caller = live.callers.get(fn)
    if (caller === undefined) {
      if (live.instance.terminated()) return fail(live, ["Trap", fn, "instance terminated"])
      caller = live.instance.prepareDirect(fn)
      if (caller === undefined) return fail(live, ["FunctionNotFound", fn], false)
      live.callers.set(fn, caller)
    }
    const slot = live.slot
    const failed = caller(args as ReadonlyArray<WasmValue>, fuel ?? undefined, slot)
    if (failed !== undefined) return fail(live, toWire(failed), !(failed instanceof FunctionNotFound))
    const raw = slot.result
    slot.result = undefined // hold no guest value between calls
    // the export's return value as results (`undefined` → none, an array → multi-value), as `Instance.call` maps it
    const results = raw === undefined ? NO_RESULTS : Array.isArray(raw) ? (raw as Array<unknown>) : [raw]
    for (let i = 0; i < results.length; i++) {
      const v = results[i]
      if (v !== null && typeof v !== "number" && typeof v !== "bigint") {
        return fail(live, ["Trap", fn, `a ${typeof v} result cannot cross the worker boundary`])
      }
    }
    // the memory usage the call measured (`callMemoryBytes`): not read again
    return ok(live, results as ReadonlyArray<ValueWire>, slot.fuelRemaining ?? null, slot.memoryBytes)
  }

  const restore = (live: Live, state: StateWire): Reply => {
    live.outside.full = true
    const failed = live.instance.restore(stateFromWire(state))
    return failed === undefined ? ok(live, null) : fail(live, toWire(failed))
  }

  const handle = (request: Request<W>): Reply => {
    if (request[0] === Op.Crash) throw new InjectedFault("injected worker fault")
    if (request[0] === Op.Ping) return ok(undefined, null)
    if (request[0] === Op.Instantiate) return instantiate(request)
    const live = instances.get(request[1])
    switch (request[0]) {
      case Op.Invoke:
        return live === undefined ? terminated(request[2]) : invoke(live, request[2], request[3], request[4])
      case Op.Read: {
        if (live === undefined) return terminated("readMemory")
        const bytes = live.instance.read(request[2], request[3])
        return bytes instanceof Trap ? fail(live, toWire(bytes), false) : ok(live, bytes)
      }
      case Op.Write: {
        if (live === undefined) return terminated("writeMemory")
        live.outside.full = true
        const failed = live.instance.write(request[2], request[3])
        return failed === undefined ? ok(live, null) : fail(live, toWire(failed), false)
      }
      case Op.Snapshot: {
        if (live === undefined) return terminated("snapshot")
        const state = live.instance.snapshot()
        return state instanceof Trap ? fail(live, toWire(state)) : ok(live, stateToWire(state))
      }
      case Op.Restore:
        return live === undefined ? terminated("restore") : restore(live, request[2])
      case Op.Drop:
        live?.instance.terminate()
        instances.delete(request[1])
        return ok(undefined, null)
    }
  }

  /** `invoke`'s work without a request or a reply: see `InPageCall`. */
  const inPageCall =
    (
      live: Live,
      fn: string,
      caller: Instance.DirectCall<Exited | Trap>,
      onOutput: ((o: OutputWire) => void) | undefined
    ): InPageCall =>
    (args, fuel, slot) => {
      const own = live.slot
      const failed = caller(args, fuel, own)
      let error: ErrorWire | undefined
      if (failed !== undefined) {
        live.outside.full = true // as `fail`: a trap may unwind frames whose dirty bits were not published yet
        error = toWire(failed)
      } else {
        const raw = own.result
        own.result = undefined // hold no guest value between calls
        if (raw !== null && typeof raw !== "number" && typeof raw !== "bigint" && raw !== undefined) {
          const results = Array.isArray(raw) ? (raw as Array<unknown>) : [raw]
          for (let i = 0; i < results.length; i++) {
            const v = results[i]
            if (v !== null && typeof v !== "number" && typeof v !== "bigint") {
              live.outside.full = true
              error = ["Trap", fn, `a ${typeof v} result cannot cross the worker boundary`]
              break
            }
          }
        }
        if (error === undefined) {
          slot.result = raw
          slot.memoryBytes = own.memoryBytes
          slot.fuelRemaining = own.fuelRemaining
        }
      }
      if (live.wasi !== undefined) {
        const output = live.wasi.drain()
        onOutput?.(output)
      }
      return error
    }

  const instance = (id: number, onOutput: ((output: OutputWire) => void) | undefined): InPageInstance | undefined => {
    const live = instances.get(id)
    if (live === undefined || live.tracking !== 0) return undefined
    return {
      prepareDirect: (fn) => {
        const caller = live.instance.prepareDirect(fn)
        return caller === undefined ? undefined : inPageCall(live, fn, caller, onOutput)
      },
      memoryBytes: () => live.instance.memoryBytes()
    }
  }

  const executor = (request: Request<W>): Reply => {
    try {
      return handle(request)
    } catch (e) {
      if (e instanceof InjectedFault) throw e
      // a bug on our side, never the guest's: report it instead of dying
      return fail(undefined, ["Trap", "(executor)", `internal error: ${message(e)}`])
    }
  }
  return Object.assign(executor, { instance })
}

/**
 * Turns a host call's reply into what the guest's import returns: the host
 * function's value as it crossed, so the engine here converts it exactly as
 * it would in-process (WebAssembly JS API "run a host function").
 */
const hostResult = (reply: HostReply): unknown => {
  if (reply[0] !== 1) throw new HostCallError(reply[1])
  return reply[1]
}

/**
 * The body of a worker entry script: waits for the host's first message
 * (`WorkerInit`: the channel and the fuel global's name), then serves
 * requests with an executor until the worker is terminated. Host imports
 * proxy through the channel.
 */
export const serve = <W>(scope: WorkerScope, platform: ExecutorPlatform<W>): void => {
  let channel: WorkerChannel | undefined
  scope.listen((data) => {
    if (channel === undefined) {
      const [tag, init] = data as WorkerInit<ChannelInit>
      if (tag !== "init") return
      const executor = make<W>({
        platform,
        hostFunction:
          (id, index) =>
          (...args) =>
            hostResult(channel!.hostCall([id, index, args as Array<ValueWire>]))
      })
      channel = openWorker<W>(init, executor, scope.post, scope.receive)
      channel.serve()
      return
    }
    channel.onMessage(data as ChannelMessage)
  })
}
