/**
 * The worker engine: the `WasmEngine` port over a pool of workers
 * (`WorkerPool.ts`), shared by engine-node (`worker_threads`) and
 * engine-browser (module Web Workers); each of them gives only its
 * `WorkerHost`, its WASI and its capability record.
 *
 * Behaves like the in-process engine from the outside — same values (i64 as
 * `bigint`, multi-value as arrays, `results` always an array, `memoryBytes`
 * after every call) and same error mapping (WebAssembly JS API §"Error
 * Objects", `Instance.ts`): `CompileError`; `InstantiationError` for a
 * missing or ill-typed import; `Trap` with the engine's message (incl. "call
 * stack exhausted", "host function threw: …"); `MemoryExceeded` when the
 * initial memory is above the budget; `FunctionNotFound`; `Trap` "instance
 * terminated" after `terminate`. Added by workers:
 *
 * - `Timeout { function, timeoutMs }` when `InvokeOptions.timeoutMs` (or
 *   `InstantiateOptions.timeoutMs`, for the start function; function
 *   "(start)") passes: the worker is terminated and the agent left
 *   terminated (its calls fail with `Trap` "instance terminated";
 *   `WasmInstance.isLive` is false), so the domain evicts it or replaces it
 *   before its next call. Interrupting the fiber of a running call preempts
 *   it the same way, and completes once the pool has settled it (`settled`). Without workers (`"inPage"`) deadlines are not enforced,
 *   and instances offer `prepare` / `prepareDirect` (the domain's synchronous
 *   call path: `inPageCallers` below).
 * - Recovery of the other agents of a lost worker (`RecoveryPolicy`).
 * - `FuelExhausted { function, fuel }` / `fuelRemaining` for modules
 *   instrumented with the `agent-runtime:fuel` global (`InvokeOptions.fuel`).
 * - WASI preview1 where the platform provides it; `proc_exit(0)` → a normal
 *   return with no results, `proc_exit(n)` → `Trap` "proc_exit(n)".
 *
 * Host imports stay on the host thread: a guest's call to one is proxied
 * synchronously from the worker (`CallChannel.ts`). Host functions may
 * return numbers, bigints, booleans, `undefined` or arrays of them; only host
 * functions, numbers, bigints, strings, booleans and shared
 * `WebAssembly.Memory` objects can be imported into a worker (a non-shared
 * memory, a table or a `WebAssembly.Global` → `InstantiationError` naming the
 * import); in-page, any import value is accepted.
 *
 * Units: bytes (1 page = 64 KiB), ms, fuel units.
 *
 * @since 0.2.0
 */
import {
  callResults,
  DEFAULT_MAX_THREADS,
  type DirectInvoke,
  type CallSlot,
  type EngineCapabilities,
  FuelExhausted,
  FunctionNotFound,
  InstantiationError,
  type InvokeOutcome,
  makeCallSlot,
  MemoryExceeded,
  type PreparedInvoke,
  ResourcePoolConfig,
  type RuntimePlatform,
  Timeout,
  Trap,
  type WasmEngineShape,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { CallAbort, type ChannelKind, DEFAULT_CHANNEL_BYTES } from "./CallChannel.js"
import * as Instance from "./Instance.js"
import { checkSuppliedTables } from "./internal/core.js"
import {
  type ErrorWire,
  type ImportSpec,
  type InvokeRequest,
  Op,
  type Request,
  stateFromWire,
  stateToWire,
  type Tracking,
  type ValueOf,
  type ValueWire,
  WASI_MODULE as PROTOCOL_WASI_MODULE
} from "./Protocol.js"
import type { ExecutorPlatform } from "./WorkerExecutor.js"
import type { WorkerHost } from "./WorkerHost.js"
import {
  type AgentRecord,
  type HostFn,
  type OpResult,
  type PendingCall,
  type PoolStats,
  type WasiHandle,
  WorkerPool
} from "./WorkerPool.js"

/**
 * What happens to the other agents of a worker that is terminated (timeout)
 * or dies:
 * - `"snapshot"`: after every completed call (returned or trapped) the engine
 *   keeps the agent's state (linear memory pages that changed + exported
 *   mutable globals); the agent is re-instantiated on a fresh worker and
 *   restored from it — it continues exactly where its last call left it.
 * - `"restart"`: re-instantiated fresh (start function again, initial state).
 * - `"auto"` (default): `"snapshot"` while the agent's linear memory is at
 *   most `snapshotMaxBytes` (default 1 MiB); once it grows past that, its
 *   state is dropped and it is restarted instead, so big agents do not pay
 *   for a page comparison of their whole memory on every call.
 *
 * Only *exported* mutable globals are captured (as in every engine's
 * `snapshot`); the domain's hard-limits rewrite exports a module's internal
 * mutable globals, so its snapshots are complete.
 *
 * Cost of tracking: the worker compares the agent's memory with a shadow copy
 * after each call (one comparison per 64 KiB page) and sends the pages that
 * changed; the host keeps the agent's non-zero pages. With tracking on the
 * engine asks for the dirty-page write barrier (`capabilities.dirtyPages`:
 * the domain compiles the variant with wasm-binary's `DirtyPages.ts`), so
 * the worker compares only the pages the guest's stores marked — none after
 * a call that stored nothing; a module compiled without it (no variant) is
 * compared whole. Both copies are bounded
 * by `snapshotMaxBytes` per agent under `"auto"`, unbounded under `"snapshot"`.
 */
export type RecoveryPolicy = "auto" | "snapshot" | "restart"

/** The settings every worker engine shares. */
export interface WorkerEngineOptions {
  /**
   * Worker threads: the engine never runs more workers (a fraction is rounded
   * down, at least 1). One setting with the runtime's pool: the platforms'
   * layers default it to the program's `ResourcePoolConfig.maxThreads`
   * (`withPoolThreads`), `make` to its default (`DEFAULT_MAX_THREADS`, 4),
   * and a runtime refuses an engine with more threads than its pool allows
   * (`WasmEngineShape.threads`). Set it here only to differ from the pool.
   */
  readonly maxThreads?: number | undefined
  /** Payload region of a shared channel in bytes (default 256 KiB); larger messages are posted. */
  readonly channelBytes?: number | undefined
  /** Recovery of a lost worker's other agents (default `"auto"`). */
  readonly recovery?: RecoveryPolicy | undefined
  /** `"auto"` recovery: largest linear memory (bytes) still snapshotted after each call (default 1 MiB). */
  readonly snapshotMaxBytes?: number | undefined
}

/** The host side of a platform's WASI. `W` is the setup sent with an instantiate request. */
export interface WasiHost<W> {
  /** Opens WASI for a new instance of `agentId`: its setup for the executor and its host-side handle. */
  readonly open: (agentId: string) => { readonly spec: W; readonly handle: WasiHandle }
}

/** What a platform gives to build a worker engine. */
export interface WorkerEngineConfig<W> extends WorkerEngineOptions {
  readonly platform: RuntimePlatform
  readonly capabilities: EngineCapabilities
  /** Names the engine in messages ("the node engine"). */
  readonly name: string
  readonly host: WorkerHost
  /** `"inPage"`: no workers; `inPage` runs the agents on the host thread, deadlines are not enforced. */
  readonly transport: ChannelKind | "inPage"
  readonly inPage?: ExecutorPlatform<W> | undefined
  readonly wasi: WasiHost<W>
  /** Offer `WasmEngineShape.validate` (the domain then compiles at spawn rather than at load). */
  readonly validate?: boolean | undefined
}

/** A worker engine: the `WasmEngine` port plus what only workers offer. */
export interface WorkerEngineShape extends WasmEngineShape {
  /** Worker threads at most: the pool's size (`maxThreads`); 0 in-page (no workers). */
  readonly threads: number
  /** Workers, their agents and how often each was replaced. */
  readonly stats: () => PoolStats
  /** The thread id of the worker running an instance (Node), `undefined` when it has none (yet) or is not live. */
  readonly threadOf: (instance: WasmInstance) => number | undefined
  /** Fault injection: makes the worker running `instance` throw an uncaught error; its agents are recovered. */
  readonly crashWorker: (instance: WasmInstance) => Effect.Effect<void>
  /** Terminates every worker and awaits their exit. Idempotent. */
  readonly shutdown: Effect.Effect<void>
}

const MiB = 1024 * 1024

/** The executor's tracking mode for a recovery policy. */
export const trackingFor = (recovery: RecoveryPolicy, snapshotMaxBytes = MiB): Tracking =>
  recovery === "restart" ? [0, 0] : recovery === "snapshot" ? [1, 0] : [2, snapshotMaxBytes]

/**
 * `options` with `maxThreads` settled for a platform's layer: its own
 * `maxThreads`, else its former name `workers`, else the program's
 * `ResourcePoolConfig.maxThreads` — the one thread setting the runtime's pool
 * enforces (`ResourcePool.ts`).
 */
export const withPoolThreads = <O extends WorkerEngineOptions & { readonly workers?: number | undefined }>(
  options: O
): Effect.Effect<O> =>
  Effect.map(Effect.service(ResourcePoolConfig), (pool) => ({
    ...options,
    maxThreads: options.maxThreads ?? options.workers ?? pool.maxThreads
  }))

/** The WASI import namespace (WASI preview1); defined in `Protocol` (worker-side code imports it from there). */
export const WASI_MODULE = PROTOCOL_WASI_MODULE

// -- error mapping ----------------------------------------------------------------

const errorFrom = (agentId: string, error: ErrorWire): Trap | FunctionNotFound | FuelExhausted | MemoryExceeded => {
  switch (error[0]) {
    case "Trap":
      return new Trap({ function: error[1], reason: error[2] })
    case "FunctionNotFound":
      return new FunctionNotFound({ function: error[1] })
    case "FuelExhausted":
      return new FuelExhausted({ function: error[1], fuel: error[2] })
    case "Exit":
      return new Trap({
        function: error[1],
        reason: `proc_exit(${error[2]}): the program exited with code ${error[2]}`
      })
    case "MemoryExceeded":
      return new MemoryExceeded({ agentId, used: error[1], limit: error[2] })
    case "InstantiationError":
      return new Trap({ function: "(instantiate)", reason: error[1] })
  }
}

/** An `OpResult` that is not `ok`, as a `Trap` of `fn` (operations without timeouts or fuel). */
const trapFrom = (
  fn: string,
  agentId: string,
  result: Exclude<OpResult, { kind: "ok" }>
): Effect.Effect<never, Trap> => {
  switch (result.kind) {
    case "error": {
      const e = errorFrom(agentId, result.error)
      return Effect.fail(e instanceof Trap ? e : new Trap({ function: fn, reason: e.message }))
    }
    case "gone":
      return Effect.fail(new Trap({ function: fn, reason: `instance terminated (${result.reason})` }))
    case "lost":
      return Effect.fail(
        new Trap({ function: fn, reason: `the worker running the instance was lost: ${result.reason}` })
      )
    case "timeout":
      return Effect.fail(new Trap({ function: fn, reason: "timed out" }))
    case "interrupted":
      return Effect.interrupt
  }
}

/**
 * A request that did not finish synchronously, awaited. Interrupting the
 * awaiting fiber aborts the request and completes once the pool has settled
 * it — at once for a request still queued (it never runs), after the pool
 * retired the record for one that was running (its worker is terminated) —
 * so `WasmInstance.isLive` already says what became of the instance when the
 * interrupted caller goes on (the domain lets the agent's next call in only
 * then, and replaces a terminated instance before it).
 */
const settled = <V>(pending: PendingCall<V>): Effect.Effect<OpResult<V>> =>
  Effect.callback<OpResult<V>>((resume) => {
    const controller = new CallAbort() // not an AbortController: no event-target bindings per call
    const result = pending.wait(controller)
    result.then(
      (r) => resume(Effect.succeed(r)),
      (e) => resume(Effect.die(e))
    )
    return Effect.promise(() => {
      controller.abort()
      return result.then(
        () => undefined,
        () => undefined
      )
    })
  })

const wasmValueOk = (v: unknown): boolean => v === null || typeof v === "number" || typeof v === "bigint"

/** An import value a worker can receive (structured clone keeps it meaningful). */
const shareable = (value: unknown): boolean =>
  value === undefined ||
  value === null ||
  typeof value === "number" ||
  typeof value === "bigint" ||
  typeof value === "string" ||
  typeof value === "boolean" ||
  (value instanceof WebAssembly.Memory &&
    typeof SharedArrayBuffer === "function" &&
    value.buffer instanceof SharedArrayBuffer)

const unshareable = (value: unknown): string =>
  value instanceof WebAssembly.Memory
    ? "a non-shared WebAssembly.Memory"
    : value instanceof WebAssembly.Table
      ? "a WebAssembly.Table"
      : value instanceof WebAssembly.Global
        ? "a WebAssembly.Global (pass its value instead)"
        : `a ${typeof value}`

/** An invoke request's result as the port's outcome or typed error. */
const invokeSettled = (
  record: AgentRecord<any>,
  fn: string,
  timeoutMs: number | undefined,
  result: OpResult<ValueOf<InvokeRequest>>
): Effect.Effect<InvokeOutcome, Trap | Timeout | FuelExhausted | FunctionNotFound | MemoryExceeded> => {
  switch (result.kind) {
    case "ok": {
      const results = result.value as ReadonlyArray<WasmValue>
      const outcome: InvokeOutcome =
        result.fuelRemaining === null
          ? { results, memoryBytes: result.memoryBytes }
          : { results, memoryBytes: result.memoryBytes, fuelRemaining: result.fuelRemaining }
      return Effect.succeed(outcome)
    }
    case "error":
      // proc_exit(0) is a normal end of a WASI program
      if (result.error[0] === "Exit" && result.error[2] === 0) {
        return Effect.succeed({ results: [], memoryBytes: result.memoryBytes })
      }
      return Effect.fail(errorFrom(record.agentId, result.error))
    case "timeout":
      return Effect.fail(new Timeout({ function: fn, timeoutMs: timeoutMs ?? 0 }))
    default:
      return trapFrom(fn, record.agentId, result)
  }
}

/** The `Trap` for the first argument that cannot cross to a worker (not a WebAssembly value), else `undefined`. */
const uncrossable = (fn: string, args: ReadonlyArray<unknown>): Trap | undefined => {
  for (let i = 0; i < args.length; i++) {
    if (!wasmValueOk(args[i])) {
      return new Trap({
        function: fn,
        reason: `type error at the JS boundary: argument ${i} (${typeof args[i]}) cannot cross to a worker`
      })
    }
  }
  return undefined
}

/**
 * A synchronously settled invoke request's result written to the caller's
 * `slot` (`WasmInstance.invokeStart`): `undefined` after a success (as
 * `invokeSettled`'s outcome: results, `memoryBytes`, `fuelRemaining`;
 * `proc_exit(0)` a normal return with no results), else the typed error as
 * a value — or, for the results a synchronous request never has (the
 * worker was lost or the record gone), `invokeSettled`'s effect.
 */
const invokeInto = (
  record: AgentRecord<any>,
  fn: string,
  timeoutMs: number | undefined,
  result: OpResult<ValueOf<InvokeRequest>>,
  slot: CallSlot
):
  | Trap
  | Timeout
  | FuelExhausted
  | FunctionNotFound
  | MemoryExceeded
  | undefined
  | Effect.Effect<InvokeOutcome, Trap> => {
  switch (result.kind) {
    case "ok":
      slot.result = result.value
      slot.memoryBytes = result.memoryBytes
      slot.fuelRemaining = result.fuelRemaining === null ? undefined : result.fuelRemaining
      return undefined
    case "error":
      if (result.error[0] === "Exit" && result.error[2] === 0) {
        slot.result = undefined
        slot.memoryBytes = result.memoryBytes
        slot.fuelRemaining = undefined
        return undefined
      }
      return errorFrom(record.agentId, result.error)
    case "timeout":
      return new Timeout({ function: fn, timeoutMs: timeoutMs ?? 0 })
    default:
      return trapFrom(fn, record.agentId, result)
  }
}

// -- in-page synchronous callers ---------------------------------------------------

/**
 * An in-page instance's synchronous callers (`WasmInstance.prepare` and
 * `prepareDirect`), straight onto the pool's in-page executor
 * (`InPageExecutor.instance`), so the domain takes its synchronous call path
 * as on an in-process engine. Each call does what `invoke` does in-page —
 * same argument check ("cannot cross to a worker"), same results
 * (`memoryBytes`, `fuelRemaining`, WASI output to the agent's handle,
 * `proc_exit(0)` a normal return) and the same typed errors (`errorFrom`;
 * `Trap` "instance terminated (…)" once the record is no longer live) —
 * without a request, a queue or an Effect. Fuel and memory caps are the
 * executor's instance's, as on the request path; no deadline applies
 * in-page on either path. Empty when the executor does not hold the
 * instance.
 */
const inPageCallers = <W>(
  pool: WorkerPool<W>,
  record: AgentRecord<W>
): Pick<WasmInstance, "prepare" | "prepareDirect"> => {
  const wasi = record.wasi
  const access = pool
    .inPageExecutor()
    .instance(record.id, wasi === undefined ? undefined : (output) => wasi.onOutput(output))
  if (access === undefined) return {}
  const prepareDirect = (fn: string): DirectInvoke | undefined => {
    const call = access.prepareDirect(fn)
    if (call === undefined) return undefined
    return (args, fuel, slot) => {
      for (let i = 0; i < args.length; i++) {
        if (!wasmValueOk(args[i])) {
          return new Trap({
            function: fn,
            reason: `type error at the JS boundary: argument ${i} (${typeof args[i]}) cannot cross to a worker`
          })
        }
      }
      if (record.status !== "live") return new Trap({ function: fn, reason: `instance terminated (${record.reason})` })
      const error = call(args as ReadonlyArray<ValueWire>, fuel, slot)
      if (error === undefined) {
        record.memoryBytes = slot.memoryBytes
        return undefined
      }
      const bytes = (record.memoryBytes = access.memoryBytes())
      // proc_exit(0) is a normal end of a WASI program (as `invokeSettled`)
      if (error[0] === "Exit" && error[2] === 0) {
        slot.result = undefined
        slot.memoryBytes = bytes
        slot.fuelRemaining = undefined
        return undefined
      }
      return errorFrom(record.agentId, error)
    }
  }
  const prepare = (fn: string): PreparedInvoke | undefined => {
    const direct = prepareDirect(fn)
    if (direct === undefined) return undefined
    const slot = makeCallSlot()
    return (args, fuel) => {
      const failed = direct(args, fuel, slot)
      if (failed !== undefined) return failed
      const results = callResults(slot.result)
      slot.result = undefined
      return slot.fuelRemaining === undefined
        ? { results, memoryBytes: slot.memoryBytes }
        : { results, memoryBytes: slot.memoryBytes, fuelRemaining: slot.fuelRemaining }
    }
  }
  return { prepare, prepareDirect }
}

// -- the engine -----------------------------------------------------------------

/** Builds a worker engine. Call `shutdown` when done (the platforms' layers do). */
export const make = <W>(config: WorkerEngineConfig<W>): WorkerEngineShape => {
  const { host, name, transport } = config
  const inPage = transport === "inPage"
  const tracking = inPage ? trackingFor("restart") : trackingFor(config.recovery ?? "auto", config.snapshotMaxBytes)
  const pool = new WorkerPool<W>({
    size: config.maxThreads ?? DEFAULT_MAX_THREADS,
    transport,
    channelBytes: config.channelBytes ?? DEFAULT_CHANNEL_BYTES,
    host,
    inPage: config.inPage
  })
  const recordOf = new WeakMap<WasmInstance, AgentRecord<W>>()
  let shutdown: Promise<void> | undefined

  /**
   * Runs one request: its result at once when the worker answered within
   * the channel's spin budgets (no promise, no abort signal, no fiber
   * suspension: `WorkerSlot.begin`), else awaited.
   */
  const call = <R extends Request<W>>(
    record: AgentRecord<W>,
    request: R,
    timeoutMs?: number
  ): Effect.Effect<OpResult<ValueOf<R>>> =>
    Effect.suspend(() => {
      const started = record.slot.begin(record, request, inPage ? undefined : timeoutMs)
      return "wait" in started ? settled(started) : Effect.succeed(started)
    })

  const makeInstance = (record: AgentRecord<W>): WasmInstance => {
    const invoke: WasmInstance["invoke"] = (fn, args, invokeOptions) =>
      Effect.suspend(
        (): Effect.Effect<InvokeOutcome, Trap | Timeout | FuelExhausted | FunctionNotFound | MemoryExceeded> => {
          const refused = uncrossable(fn, args)
          if (refused !== undefined) return Effect.fail(refused)
          const fuel = invokeOptions?.fuel
          const timeoutMs = invokeOptions?.timeoutMs
          // the hot path: the reply taken synchronously is mapped in this same step (no closure per call)
          const started = record.slot.begin(
            record,
            [Op.Invoke, record.id, fn, args as ReadonlyArray<ValueWire>, fuel ?? null] as InvokeRequest,
            inPage ? undefined : timeoutMs
          )
          return "wait" in started
            ? Effect.flatMap(settled(started), (result) => invokeSettled(record, fn, timeoutMs, result))
            : invokeSettled(record, fn, timeoutMs, started)
        }
      )

    // `invoke` started in the caller's step: a reply already there is written to `slot` (`invokeInto`)
    const invokeStart: NonNullable<WasmInstance["invokeStart"]> = (fn, args, invokeOptions, slot) => {
      const refused = uncrossable(fn, args)
      if (refused !== undefined) return refused
      const fuel = invokeOptions?.fuel
      const timeoutMs = invokeOptions?.timeoutMs
      const started = record.slot.begin(
        record,
        [Op.Invoke, record.id, fn, args as ReadonlyArray<ValueWire>, fuel ?? null] as InvokeRequest,
        timeoutMs
      )
      return "wait" in started
        ? Effect.flatMap(settled(started), (result) => invokeSettled(record, fn, timeoutMs, result))
        : invokeInto(record, fn, timeoutMs, started, slot)
    }

    const instance: WasmInstance = {
      invoke,
      memoryBytes: Effect.sync(() => record.memoryBytes),
      readMemory: (offset, length) =>
        Effect.flatMap(call(record, [Op.Read, record.id, offset, length]), (r) =>
          r.kind === "ok" ? Effect.succeed(r.value) : trapFrom("readMemory", record.agentId, r)
        ),
      writeMemory: (offset, bytes) =>
        Effect.flatMap(call(record, [Op.Write, record.id, offset, bytes]), (r) =>
          r.kind === "ok" ? Effect.void : trapFrom("writeMemory", record.agentId, r)
        ),
      snapshot: Effect.flatMap(call(record, [Op.Snapshot, record.id]), (r) =>
        r.kind === "ok" ? Effect.succeed(stateFromWire(r.value)) : trapFrom("snapshot", record.agentId, r)
      ),
      restore: (state) =>
        Effect.flatMap(
          call(record, [Op.Restore, record.id, stateToWire(state)]),
          (r): Effect.Effect<void, Trap | MemoryExceeded> => {
            if (r.kind === "ok") return Effect.void
            if (r.kind === "error" && r.error[0] === "MemoryExceeded") {
              return Effect.fail(new MemoryExceeded({ agentId: record.agentId, used: r.error[1], limit: r.error[2] }))
            }
            return trapFrom("restore", record.agentId, r)
          }
        ),
      terminate: Effect.sync(() => pool.drop(record, "terminated by the host")),
      // false once the pool retired the record: an interrupted or timed-out call terminated its worker, or it was lost
      isLive: () => record.status === "live",
      // in-page: synchronous callers, so the domain calls without a request (`inPageCallers`);
      // workers: the hint that wakes a sleeping worker at the start of an invoke (`WorkerSlot.prefetch`) and
      // the call started in the caller's step (`invokeStart`)
      ...(inPage ? inPageCallers(pool, record) : { prefetch: () => record.slot.prefetch(), invokeStart })
    }
    recordOf.set(instance, record)
    return instance
  }

  /** The import specs for the executor (only what the module imports), and the host functions they index. */
  const importsFor = (
    module: WebAssembly.Module,
    imports: Readonly<Record<string, Readonly<Record<string, unknown>>>>
  ): { specs: Array<ImportSpec>; hostFunctions: Array<HostFn>; wasi: boolean } | InstantiationError => {
    const specs: Array<ImportSpec> = []
    const hostFunctions: Array<HostFn> = []
    let wasi = false
    for (const imp of WebAssembly.Module.imports(module)) {
      const ns = imports[imp.module]
      if (imp.module === WASI_MODULE && ns === undefined) {
        wasi = true
        continue
      }
      if (ns === undefined || !(imp.name in ns)) continue // the executor's instantiation reports the LinkError
      const value = ns[imp.name]
      if (typeof value === "function") {
        specs.push([imp.module, imp.name, 0, hostFunctions.push(value as HostFn) - 1])
      } else if (inPage || shareable(value)) {
        specs.push([imp.module, imp.name, 1, value])
      } else {
        return new InstantiationError({
          reason: `import ${imp.module}.${imp.name}: ${unshareable(value)} cannot be shared with a worker (${name}'s workers accept host functions, numbers, bigints and shared memories)`
        })
      }
    }
    return { specs, hostFunctions, wasi }
  }

  const instantiate: WasmEngineShape["instantiate"] = (compiled, instantiateOptions) =>
    Effect.suspend(() => {
      const module = compiled.handle
      if (!(module instanceof WebAssembly.Module)) {
        return Effect.fail(new InstantiationError({ reason: `not a module compiled by ${name}` }))
      }
      if (pool.closed) return Effect.fail(new InstantiationError({ reason: "the engine was shut down" }))
      const resolved = importsFor(module, instantiateOptions.imports as Record<string, Record<string, unknown>>)
      if (resolved instanceof InstantiationError) return Effect.fail(resolved)
      const agentId = instantiateOptions.agentId as string
      if (inPage) {
        // in-page executors get the caller's own objects: a supplied table must fit the budget (issue 12 item 1)
        const tables = checkSuppliedTables(
          instantiateOptions.imports as WebAssembly.Imports,
          instantiateOptions.memoryLimit,
          agentId
        )
        if (tables !== undefined) {
          return Effect.fail(
            tables._tag === "MemoryExceeded"
              ? new MemoryExceeded({ agentId, used: tables.used, limit: tables.limit })
              : new InstantiationError({ reason: tables.reason })
          )
        }
      }
      const wasi = resolved.wasi ? config.wasi.open(agentId) : undefined
      const id = pool.nextRecordId()
      const record: AgentRecord<W> = {
        id,
        agentId,
        instantiate: [
          Op.Instantiate,
          id,
          module,
          resolved.specs,
          instantiateOptions.memory ?? null,
          tracking,
          wasi === undefined ? null : wasi.spec
        ],
        hostFunctions: resolved.hostFunctions,
        wasi: wasi?.handle,
        instantiateTimeoutMs: instantiateOptions.timeoutMs,
        slot: pool.assign(),
        status: "live",
        reason: "",
        memoryBytes: 0,
        kept: undefined
      }
      pool.register(record)
      const timeoutMs = instantiateOptions.timeoutMs
      return Effect.flatMap(
        call(record, record.instantiate, timeoutMs),
        (result): Effect.Effect<WasmInstance, InstantiationError | Trap | Timeout | FuelExhausted | MemoryExceeded> => {
          const discard = () => {
            pool.retire(record, "terminated", "instantiation failed")
            record.wasi?.release()
          }
          switch (result.kind) {
            case "ok": {
              const instance = makeInstance(record)
              if (result.memoryBytes > instantiateOptions.memoryLimit) {
                pool.drop(record, "initial memory above the budget")
                return Effect.fail(
                  new MemoryExceeded({ agentId, used: result.memoryBytes, limit: instantiateOptions.memoryLimit })
                )
              }
              return Effect.succeed(instance)
            }
            case "error": {
              discard()
              const error = result.error
              if (error[0] === "InstantiationError") return Effect.fail(new InstantiationError({ reason: error[1] }))
              const mapped = errorFrom(agentId, error)
              // fuel running out in the start function is FuelExhausted (start) (issue 12 item 8)
              return Effect.fail(
                mapped instanceof Trap || mapped instanceof FuelExhausted
                  ? mapped
                  : new Trap({ function: "(start)", reason: mapped.message })
              )
            }
            case "timeout":
              return Effect.fail(new Timeout({ function: "(start)", timeoutMs: timeoutMs ?? 0 }))
            case "lost":
            case "gone":
              discard()
              return Effect.fail(new InstantiationError({ reason: `the worker was lost: ${result.reason}` }))
            case "interrupted":
              discard()
              return Effect.interrupt
          }
        }
      )
    })

  return {
    platform: config.platform,
    // the barrier pays off only where memory is compared after calls (recovery tracking on)
    capabilities: tracking[0] === 0 ? config.capabilities : { ...config.capabilities, dirtyPages: true },
    threads: inPage ? 0 : pool.slots.length,
    ...(config.validate === true ? { validate: Instance.validate } : {}),
    compile: Instance.compile,
    instantiate,
    stats: () => pool.stats(),
    threadOf: (instance) => {
      const record = recordOf.get(instance)
      return record === undefined || record.status !== "live" ? undefined : record.slot.worker?.threadId
    },
    crashWorker: (instance) =>
      Effect.promise(() => {
        const record = recordOf.get(instance)
        return record === undefined ? Promise.resolve() : record.slot.crash()
      }),
    shutdown: Effect.promise(() => (shutdown ??= pool.close()))
  }
}
