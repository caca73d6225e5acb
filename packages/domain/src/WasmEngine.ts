/**
 * The `WasmEngine` port: the anti-corruption layer toward a WebAssembly
 * implementation (spec "Integration Style"; DESIGN.md "Ports").
 *
 * An engine compiles module bytes into a `CompiledModule` and instantiates it
 * into a `WasmInstance` for one agent with that agent's memory budget and host
 * imports. The domain has already checked arguments against the export's
 * signature before `invoke` is called; the engine converts, calls, and maps
 * traps and host exceptions to typed errors — it never lets one escape.
 *
 * Units: memory in bytes (1 WebAssembly page = 64 KiB), time in ms, fuel in
 * metering units. Engines: `@agent-runtime/engine-native` (in-process),
 * engine-node (worker_threads), engine-browser (Web Workers), engine-edge.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import type * as Effect from "effect/Effect"
import type { AgentId, ModuleHash } from "./Ids.js"
import type {
  CompileError,
  EngineInvokeError,
  FuelExhausted,
  InstantiationError,
  MemoryExceeded,
  Timeout,
  Trap
} from "./RuntimeError.js"
import type { RuntimePlatform } from "./RuntimePlatform.js"
import type { WasmValue } from "./WasmValue.js"

/**
 * What an engine can do on its platform (the typed capability record; STYLE.md
 * "From Extism's js-sdk"). Tests branch on it; asking an engine for something
 * it cannot do fails with a clear error instead of silently degrading.
 */
export interface EngineCapabilities {
  /** Agents run off the host thread (workers). */
  readonly workers: boolean
  /** A running call can be stopped at its deadline (worker termination). */
  readonly preemptiveTimeout: boolean
  /** Fuel metering is available (instrumented modules). */
  readonly fuel: boolean
  /** WASI preview1 imports are provided. */
  readonly wasi: boolean
  /** Shared linear memories (threads proposal) can be instantiated. */
  readonly sharedMemory: boolean
  /** Bytes can be compiled at run time (false on edge runtimes). */
  readonly runtimeCompile: boolean
  /** Instances can be snapshotted and restored. */
  readonly snapshots: boolean
  /**
   * When the engine wants the dirty-page write barrier (wasm-binary
   * `DirtyPages.ts`: a bitmap of the pages the guest stored to) compiled
   * into agents' variants (`usesDirtyPages`; the compile cache key says so):
   * - `true` — in every variant: the engine compares agents' memory page by
   *   page after every call (worker engines tracking state for recovery) and
   *   compares only the pages the barrier marked;
   * - `"snapshotAfterCalls"` — only when the runtime snapshots agents after
   *   every call (`RuntimeSettings.persistence.snapshotAfterCalls`): the
   *   engine then reports what each call changed (`WasmInstance.snapshotChanges`)
   *   and the runtime saves deltas (`InstanceRepository.savePages`) instead
   *   of whole snapshots (in-process engines). Runs that do not snapshot
   *   after calls do not pay the barrier (a loop of stores runs ≈ 1.2× with it);
   * - absent / `false` — never.
   */
  readonly dirtyPages?: boolean | "snapshotAfterCalls" | undefined
}

/**
 * Whether agents' variants get the dirty-page write barrier on an engine of
 * these capabilities (`EngineCapabilities.dirtyPages`), for a runtime that
 * snapshots after every call (`snapshotAfterCalls`) or not.
 */
export const usesDirtyPages = (capabilities: EngineCapabilities, snapshotAfterCalls: boolean): boolean =>
  capabilities.dirtyPages === true || (capabilities.dirtyPages === "snapshotAfterCalls" && snapshotAfterCalls)

/** A compiled module, shared by every instance of it. Cached by `ModuleHash`. */
export interface CompiledModule {
  readonly hash: ModuleHash
  /** Size of the module's bytes; the compile cache weighs entries by it. */
  readonly byteLength: number
  /** Engine-specific handle (e.g. a `WebAssembly.Module`). Opaque to the domain. */
  readonly handle: unknown
}

/**
 * A host function an agent may import. Receives WebAssembly values (i64 as
 * bigint) and returns zero, one or several values. A thrown exception becomes
 * a `Trap` of the calling export.
 */
export type HostFunction = (...args: Array<any>) => unknown

/** Host imports by module name and field name (WebAssembly JS API "import object"). */
export interface HostImports {
  readonly [module: string]: { readonly [name: string]: HostFunction | WasmValue }
}

/** How to instantiate one agent. */
export interface InstantiateOptions {
  readonly agentId: AgentId
  /** The agent's memory budget in bytes (a hard cap where the engine can enforce one). */
  readonly memoryLimit: number
  /** Host imports granted to this agent. */
  readonly imports: HostImports
  /** Deadline for the start function, in ms (engines that can preempt). */
  readonly timeoutMs?: number | undefined
  /**
   * A linear memory the module imports and `imports` does not provide: the
   * engine creates it (`new WebAssembly.Memory({ initial, maximum, shared })`)
   * with the agent's budget as its maximum (pages of 64 KiB), so a guest with
   * an imported memory is capped like one with its own (WebAssembly JS API
   * §"Memory objects").
   */
  readonly memory?: HostMemory | undefined
}

/** An imported memory the engine creates for an agent; sizes in pages of 64 KiB. */
export interface HostMemory {
  readonly module: string
  readonly name: string
  readonly minPages: number
  readonly maxPages: number
  readonly shared: boolean
}

/** Per-call limits. */
export interface InvokeOptions {
  /** Deadline in ms (engines with `preemptiveTimeout`). */
  readonly timeoutMs?: number | undefined
  /** Fuel for this call (engines with `fuel`). */
  readonly fuel?: number | undefined
}

/** What a call returned, plus the instance's resource usage after it. */
export interface InvokeOutcome {
  /** The export's results (empty for `[]`, one or several for multi-value). */
  readonly results: ReadonlyArray<WasmValue>
  /** Linear memory size after the call, in bytes (`memory.buffer.byteLength`); 0 without memory. */
  readonly memoryBytes: number
  /** Fuel left after the call, when metered. */
  readonly fuelRemaining?: number | undefined
}

/** A synchronous caller of one export (see `WasmInstance.prepare`); `fuel` as in `InvokeOptions`. */
export type PreparedInvoke = (args: ReadonlyArray<WasmValue>, fuel?: number) => InvokeOutcome | EngineInvokeError

/**
 * Where a `DirectInvoke` leaves what a successful call returned — the fields
 * of `InvokeOutcome`, with the export's return value as the WebAssembly JS
 * API hands it back (`result`: `undefined` for no result, the value for one,
 * an array for multi-value; `callResults` turns it into results). The caller
 * owns one slot per prepared caller (`makeCallSlot`) and reads it right after
 * a call that returned `undefined`; the engine overwrites all three fields on
 * every successful call and none on a failed one. A mutable record, so a call
 * allocates nothing for its outcome.
 */
export interface CallSlot {
  /** The export's raw return value (see above). */
  result: unknown
  /** Linear memory size after the call, in bytes (0 without memory), as `InvokeOutcome.memoryBytes`. */
  memoryBytes: number
  /** Fuel left after the call when metered (fuel units), as `InvokeOutcome.fuelRemaining`. */
  fuelRemaining: number | undefined
}

/** A new, empty `CallSlot`. */
export const makeCallSlot = (): CallSlot => ({ result: undefined, memoryBytes: 0, fuelRemaining: undefined })

/** The results of a call that returned nothing: one frozen array shared by every such call. */
const NO_RESULTS: ReadonlyArray<WasmValue> = Object.freeze([])

/**
 * A raw return value (`CallSlot.result`) as an export's results, exactly as
 * `InvokeOutcome.results` holds them: `undefined` → none (one shared frozen
 * empty array), an array (multi-value) → its values, anything else → `[value]`.
 */
export const callResults = (result: unknown): ReadonlyArray<WasmValue> =>
  result === undefined ? NO_RESULTS : Array.isArray(result) ? (result as Array<WasmValue>) : [result as WasmValue]

/**
 * The allocation-free synchronous caller of one export (see
 * `WasmInstance.prepareDirect`): calls it with `args` (already checked) and
 * `fuel` (as in `InvokeOptions`); returns `undefined` after writing the
 * outcome to `slot`, or the typed error as a value (it never throws; `slot`
 * is then left as it was).
 */
export type DirectInvoke = (
  args: ReadonlyArray<WasmValue>,
  fuel: number | undefined,
  slot: CallSlot
) => EngineInvokeError | undefined

/**
 * A `DirectInvoke` over an engine's `PreparedInvoke` (an engine that has
 * `prepare` but not `prepareDirect`): the same calls and errors, with the
 * `InvokeOutcome` each call allocates copied into the slot (`result` is the
 * outcome's results array, which `callResults` returns as it is).
 */
export const directFromPrepared =
  (prepared: PreparedInvoke): DirectInvoke =>
  (args, fuel, slot) => {
    const outcome = prepared(args, fuel)
    if (outcome instanceof Error) return outcome
    slot.result = outcome.results
    slot.memoryBytes = outcome.memoryBytes
    slot.fuelRemaining = outcome.fuelRemaining
    return undefined
  }

/** The mutable state of an instance: linear memory (zero pages skipped) and mutable globals. */
export interface EngineState {
  /** Linear memory size in bytes (a multiple of 64 KiB). */
  readonly memoryBytes: number
  /**
   * Non-zero 64 KiB pages: page index → page bytes, in increasing index.
   * Read-only for everyone (codecs, repositories, restore, callers): an
   * engine may hand an unchanged page back in its next snapshot as the same
   * `Uint8Array`, and a repository may recognise it as unchanged by identity.
   */
  readonly pages: ReadonlyArray<{ readonly index: number; readonly data: Uint8Array }>
  /** Exported mutable globals by export name. */
  readonly globals: { readonly [name: string]: number | bigint }
}

/**
 * What changed in an instance's state since the previous
 * `WasmInstance.snapshotChanges` (a delta save, `InstanceRepository.savePages`):
 * linear memory size, every exported mutable global, and the pages (64 KiB)
 * that may have been written since — `pages` those that are not zero now,
 * `zeroed` (page indexes, increasing) those that are. A page in neither was
 * not written since. A page may be listed although its bytes did not change
 * (the engine's record is conservative).
 */
export interface EngineChanges {
  /** Linear memory size in bytes (a multiple of 64 KiB; never smaller than at the previous call). */
  readonly memoryBytes: number
  /**
   * Written pages that are not zero, in increasing index. `data` may be a
   * VIEW of the instance's live memory, not a copy: valid only while nothing
   * runs on the instance — the runtime reads it under the agent's mailbox,
   * before the next call — and never written by anyone.
   */
  readonly pages: ReadonlyArray<{ readonly index: number; readonly data: Uint8Array }>
  /** Written pages that are zero now (they may have been zero before too), in increasing index. */
  readonly zeroed: ReadonlyArray<number>
  /** Exported mutable globals by export name (all of them, as in `EngineState.globals`). */
  readonly globals: { readonly [name: string]: number | bigint }
}

/** One live instance of a module, owned by one agent. */
export interface WasmInstance {
  /** Calls an exported function. Arguments have been checked against its signature. */
  readonly invoke: (
    fn: string,
    args: ReadonlyArray<WasmValue>,
    options?: InvokeOptions
  ) => Effect.Effect<InvokeOutcome, EngineInvokeError>
  /**
   * In-process engines only (optional): resolves an export once and returns a
   * synchronous caller — the prepared-call fast path. The caller returns the
   * outcome, or the typed error as a value (it never throws). `undefined`
   * when the export is not a function. Arguments are already checked.
   */
  readonly prepare?: ((fn: string) => PreparedInvoke | undefined) | undefined
  /**
   * In-process engines only (optional, beside `prepare`): the same caller
   * without an `InvokeOutcome` per call — it writes the outcome to the
   * caller's `CallSlot` (`DirectInvoke`). The prepared call handle uses it
   * when present, else `prepare` through `directFromPrepared`, so an engine
   * with `prepare` alone keeps working. Same calls, results and errors as
   * `prepare(fn)`; `undefined` when the export is not a function. `type`
   * (optional): the export's signature as read from the binary, which an
   * engine may use to specialise the caller (engine-kit: one JS→wasm
   * transition per metered call); a wrong one must not change the outcome.
   */
  readonly prepareDirect?:
    | ((
        fn: string,
        type?: { readonly params: ReadonlyArray<string>; readonly results: ReadonlyArray<string> }
      ) => DirectInvoke | undefined)
    | undefined
  /**
   * Worker engines only (optional): a hint that an `invoke` of this instance
   * is coming soon — the runtime calls it at the start of its call path,
   * before its own checks. An engine whose worker sleeps between calls wakes
   * it now, so the worker's wake-up (a futex wake-up: tens of µs) overlaps
   * the host's work before the request instead of following it; the woken
   * worker waits for the request a bounded time, then sleeps again. Never
   * fails, never blocks; a hint with no call after it costs only that
   * bounded wait. Does nothing when the worker is busy or already awake.
   */
  readonly prefetch?: (() => void) | undefined
  /**
   * Worker engines only (optional): `invoke` started now, in the caller's
   * step, answered synchronously when it can be. The request is sent at
   * once; when the reply is already there (a spinning worker answered
   * within the channel's spin budget) the outcome is written to `slot` and
   * `undefined` returned — as `DirectInvoke` — or the call's typed error is
   * returned as a value; otherwise an effect that awaits the running call
   * (its outcome, or its error; interrupting it interrupts the call as
   * interrupting `invoke` does: the worker is terminated and `isLive` turns
   * false once it is settled). Same checks, results, errors, `timeoutMs`
   * and fuel as `invoke(fn, args, options)`. The runtime calls it only on an
   * idle agent (nothing else of the instance in flight), so a synchronous
   * answer needs no mailbox; it holds the agent's mailbox while the
   * returned effect runs.
   */
  readonly invokeStart?:
    | ((
        fn: string,
        args: ReadonlyArray<WasmValue>,
        options: InvokeOptions | undefined,
        slot: CallSlot
      ) => EngineInvokeError | undefined | Effect.Effect<InvokeOutcome, EngineInvokeError>)
    | undefined
  /** Current linear memory size in bytes. */
  readonly memoryBytes: Effect.Effect<number>
  /** Copies `length` bytes out of linear memory at `offset`; out of bounds → `Trap`. */
  readonly readMemory: (offset: number, length: number) => Effect.Effect<Uint8Array, Trap>
  /** Copies bytes into linear memory at `offset`; out of bounds → `Trap`. */
  readonly writeMemory: (offset: number, bytes: Uint8Array) => Effect.Effect<void, Trap>
  /** Captures linear memory and exported mutable globals (its pages are read-only: see `EngineState.pages`). */
  readonly snapshot: Effect.Effect<EngineState, Trap>
  /**
   * Optional (in-process engines whose module carries the dirty-page write
   * barrier, `EngineCapabilities.dirtyPages`): what changed since the
   * previous call of this member (`EngineChanges`), read from the barrier —
   * no page is copied and none is kept between calls. Reads and clears the
   * engine's record of written pages. `undefined` when the engine cannot
   * vouch for the changes — the first call, after a failed call (a trap may
   * unwind frames before they publish their marks), a `writeMemory`, a
   * `restore`, with `restart` true (the caller lost track: its last save
   * failed), or an instance whose memory others may write (imported,
   * shared); the record then starts afresh from now, and the caller takes
   * a whole `snapshot` right away (before anything else runs on the
   * instance) as the base later changes apply to. `snapshot` itself neither
   * reads nor clears the record. Only one reader per instance (the runtime's
   * saves after calls, `Persistence.saveLocked`).
   */
  readonly snapshotChanges?: ((restart: boolean) => Effect.Effect<EngineChanges | undefined, Trap>) | undefined
  /** Overwrites linear memory (growing it if needed) and globals from a snapshot. */
  readonly restore: (state: EngineState) => Effect.Effect<void, Trap | MemoryExceeded>
  /** Releases the instance (and its worker slot, if any). Idempotent. */
  readonly terminate: Effect.Effect<void>
  /**
   * Optional: whether the instance can still run calls — `false` once the
   * engine ended it on its own: a worker engine terminates the worker of a
   * call whose caller was interrupted or whose `timeoutMs` passed, and
   * leaves its instance terminated (every call then fails with `Trap`
   * "instance terminated (…)"); a worker that died and whose agents could
   * not be recovered, likewise. The runtime replaces a non-live instance
   * before the agent's next call, restored from its last snapshot as after
   * a trap (`AgentRecovered`), whatever the agent's `onTrap` policy: a
   * terminated instance cannot be kept. Engines whose instances end only by
   * `terminate` (in-process ones) leave it out. Cheap and synchronous: the
   * runtime reads it before every call that is not the idle fast path's.
   */
  readonly isLive?: (() => boolean) | undefined
}

/**
 * What `WasmEngineShape.instantiateSync` returns: the instance and its memory
 * usage right after instantiation, bytes (what `instance.memoryBytes` reports
 * at that moment).
 */
export interface InstantiatedNow {
  readonly instance: WasmInstance
  readonly memoryBytes: number
}

/** The errors `WasmEngineShape.instantiateSync` returns as values (those of `instantiate` but `Timeout`). */
export type InstantiateSyncError = InstantiationError | Trap | FuelExhausted | MemoryExceeded

/** The engine port (DESIGN.md "Ports": `WasmEngine`). */
export interface WasmEngineShape {
  readonly platform: RuntimePlatform
  readonly capabilities: EngineCapabilities
  /**
   * Worker threads the engine runs at most (its worker pool's size; workers
   * start lazily, so fewer may be running). Absent or 0 for in-process
   * engines. A runtime takes this many threads from its `ResourcePool` when
   * it starts (`ResourcePoolConfig.maxThreads`, one setting) and fails with
   * `ResourceExhausted { resource: "threads" }` when it cannot.
   */
  readonly threads?: number | undefined
  /**
   * Validates module bytes without generating code (optional). `loadModule`
   * uses it when present — agents run rewritten variants compiled at spawn —
   * and otherwise compiles the bytes as loaded. Fails with `CompileError`.
   */
  readonly validate?: ((bytes: Uint8Array) => Effect.Effect<void, CompileError>) | undefined
  /**
   * Compiles module bytes. Fails with `CompileError` for invalid bytes.
   * `bytes` are lent for the effect only: the runtime may hand a view of a
   * reused buffer (a rewritten variant, `RewriteScratch`) and overwrite it
   * once the effect ends — copy what must outlive it (the JS API's
   * `WebAssembly.compile` / `new WebAssembly.Module` copy the bytes when
   * called).
   */
  readonly compile: (bytes: Uint8Array, hash: ModuleHash) => Effect.Effect<CompiledModule, CompileError>
  /**
   * Instantiates a compiled module for one agent. Runs the module's start
   * function. Missing/ill-typed imports → `InstantiationError`; a trap in the
   * start function → `Trap`.
   */
  readonly instantiate: (
    module: CompiledModule,
    options: InstantiateOptions
  ) => Effect.Effect<WasmInstance, InstantiationError | Trap | Timeout | FuelExhausted | MemoryExceeded>
  /**
   * In-process engines only (optional): `instantiate` done synchronously on
   * the caller's thread — the same instance, the same checks (imports,
   * imported memory, memory budget, start function with its fuel) and the
   * same errors, returned as values (it never throws); no deadline applies
   * (`timeoutMs` is ignored, as by `instantiate` of an engine without
   * preemption). With it the runtime claims, instantiates, attaches and
   * starts an agent whose compiled variant is cached in one synchronous step
   * (fewer Effect steps per spawn); without it (worker engines, third-party
   * engines) it uses `instantiate`. An engine wrapper that replaces
   * `instantiate` (to observe or change instances) must replace or drop
   * this member too, else spawns bypass its `instantiate`.
   */
  readonly instantiateSync?:
    | ((module: CompiledModule, options: InstantiateOptions) => InstantiatedNow | InstantiateSyncError)
    | undefined
}

/** The `WasmEngine` service key. */
export class WasmEngine extends Context.Service<WasmEngine, WasmEngineShape>()("@agent-runtime/domain/WasmEngine") {}
