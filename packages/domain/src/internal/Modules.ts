/**
 * Modules (spec `load_module`): verification, reading, compilation through
 * the compile cache (one compile per cache key even when misses race), the
 * load cache (bytes identified by their SHA-256: a second load of the same
 * bytes is a hash and a lookup), and the compiled variant an agent's config
 * asks for (`CompileVariant`).
 *
 * @since 0.1.0
 */
import {
  type ModuleInfo,
  readModule,
  rewriteModule,
  RewriteScratch,
  type WasmBinaryError
} from "@agent-runtime/wasm-binary"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type { AgentConfig } from "../AgentConfig.js"
import { publishNow, wants } from "../EventBus.js"
import * as CompileVariant from "../CompileVariant.js"
import type { ModuleHash, ModuleId } from "../Ids.js"
import { findVerified, type LoadEntry, type VerifiedLoad } from "../ModuleCache.js"
import type { ModuleMetadata } from "../ModuleMetadata.js"
import type { VerifyHints } from "../ModuleVerifier.js"
import {
  CompileError,
  compileErrorOf,
  InvalidArgument,
  type InvalidSignature,
  ModuleNotFound,
  ModuleTooLarge,
  type RepositoryError,
  type RuntimeUnavailable
} from "../RuntimeError.js"
import { ModuleLoaded } from "../RuntimeEvent.js"
import { acceptsWork } from "../RuntimeStatus.js"
import { type CompiledModule, usesDirtyPages } from "../WasmEngine.js"
import * as WasmModules from "../WasmModule.js"
import type { WasmModule } from "../WasmModule.js"
import { ensureAccepting, type RuntimeState, stampedEvent } from "./RuntimeState.js"
import * as Sha256 from "./Sha256.js"

/**
 * The compiled variant of a module an agent needs: the module as loaded,
 * or rewritten (`@agent-runtime/wasm-binary` `rewriteModule`) with its
 * memory maximum capped to the agent's budget, fuel metering, and hidden
 * exports of its mutable state. The compile cache key names the variant
 * (`<hash>|cap=<pages>|fuel=<initial>|state`), so agents with different
 * budgets never share a wrongly capped module.
 */
export const compiledFor = (
  state: RuntimeState,
  module: WasmModule,
  config?: AgentConfig
): Effect.Effect<CompiledModule, CompileError> =>
  Effect.suspend(() => {
    const variant = config === undefined ? undefined : rewriteFor(state, module, config)
    if (variant === undefined) return compileOnce(state, module.hash, module.hash, module.bytes)
    let lent: RewriteScratch | undefined
    return compileOnce(state, variant.key, module.hash, () => {
      // the thread's scratch, when no other compile holds it: the bytes only live until the engine's compile ends
      lent = idleScratch
      idleScratch = undefined
      // `loadModule` validated these bytes (engine validate or compile) and owns them; the compile checks the output
      const rewritten = rewriteModule(module.bytes, {
        ...CompileVariant.rewriteOptions(variant.params),
        validated: module.info,
        ...(lent === undefined ? {} : { scratch: lent })
      })
      return rewritten.ok ? rewritten.value.bytes : compileErrorOf(rewritten.error, "rewrite failed: ")
    }).pipe(
      Effect.ensuring(
        Effect.sync(() => {
          if (lent !== undefined) idleScratch = lent
          lent = undefined
        })
      )
    )
  })

/**
 * The rewrite output buffer of this thread (`RewriteScratch`), lent to one variant compile at a time
 * (`undefined` while lent: a concurrent compile rewrites into fresh bytes). A fuel variant is rewritten
 * into it and handed to `WasmEngine.compile`, whose effect must not keep the bytes past its end
 * (`WebAssembly.compile` copies them when called); it is given back when that compile ends. Saves a
 * fresh 1–2 MB buffer (and its page faults) per rewrite of a large module.
 */
let idleScratch: RewriteScratch | undefined = new RewriteScratch()

/**
 * The agent's compiled variant of `module` when the compile cache holds it
 * (touched at the `Clock`'s time and counted as a hit, like `compiledFor`),
 * without an effect; `undefined` (no miss counted) when it must be compiled
 * (then use `compiledFor`, which counts the miss).
 */
export const cachedVariant = (
  state: RuntimeState,
  module: WasmModule,
  config: AgentConfig
): CompiledModule | undefined => {
  const variant = rewriteFor(state, module, config)
  const key = variant === undefined ? module.hash : variant.key
  // peek first: a miss is counted once, by `compiledFor`, which the caller runs next
  if (state.env.cache.peek(key) === undefined) return undefined
  return state.env.cache.get(key, state.clock.currentTimeMillisUnsafe())?.compiled
}

/**
 * The cached compilation under `key`, or compiles `bytes` (made lazily)
 * once — callers that miss the same key meanwhile wait for that compile.
 */
export const compileOnce = (
  state: RuntimeState,
  key: string,
  hash: WasmModule["hash"],
  bytes: Uint8Array | (() => Uint8Array | CompileError)
): Effect.Effect<CompiledModule, CompileError> =>
  Effect.flatMap(Clock.currentTimeMillis, (now) => {
    const { env, inflight } = state
    const hit = env.cache.get(key, now)
    if (hit !== undefined) return Effect.succeed(hit.compiled)
    const pending = inflight.get(key)
    if (pending !== undefined) return Deferred.await(pending)
    const deferred = Deferred.makeUnsafe<CompiledModule, CompileError>()
    inflight.set(key, deferred)
    const source = typeof bytes === "function" ? bytes() : bytes
    const compile =
      source instanceof CompileError
        ? Effect.fail(source)
        : Effect.map(state.engine.compile(source, hash), (compiled) => {
            env.cache.set(key, compiled, now)
            return compiled
          })
    return compile.pipe(
      Effect.onExit((exit) =>
        Effect.sync(() => {
          inflight.delete(key)
          Deferred.doneUnsafe(deferred, exit)
        })
      )
    )
  })

/** Whether a module has something the memory cap bounds (a memory, or a table), per module (read once). */
const cappable = new WeakMap<WasmModule, boolean>()

const hasCappable = (module: WasmModule): boolean => {
  let has = cappable.get(module)
  if (has === undefined) {
    // a table is capped from the same budget as memory (issue 12 item 1)
    has =
      WasmModules.memoryType(module.info) !== undefined ||
      module.info.tables.length > 0 ||
      module.info.imports.some((i) => i.type.kind === "table")
    cappable.set(module, has)
  }
  return has
}

/**
 * The rewrite an agent's config asks for (`CompileVariant`): its cache key
 * and parameters (the rewrite options are made from them on a miss only),
 * or `undefined` when the module is used as loaded.
 */
const rewriteFor = (state: RuntimeState, module: WasmModule, config: AgentConfig) => {
  const { settings, engine } = state
  const params = CompileVariant.variantParams({
    hasMemory: hasCappable(module),
    memoryLimit: config.memoryLimit,
    fuel: config.fuel,
    memoryCap: settings.limits.memoryCap,
    exportState: settings.limits.exportState && engine.capabilities.snapshots,
    dirtyPages: usesDirtyPages(engine.capabilities, settings.persistence.snapshotAfterCalls === true)
  })
  return params === null ? undefined : { key: CompileVariant.variantKey(module.hash, params), params }
}

/** Export names per module, for `ModuleLoaded` (made once: a module may export tens of thousands of names). */
const exportNames = new WeakMap<WasmModule, ReadonlyArray<string>>()

/**
 * Publishes `ModuleLoaded` for a module (`cacheHit`: no compile was needed),
 * stamped with the runtime's `Clock`. The event is built from the module's
 * typed fields (`stampedEvent`): its export names are not parsed again.
 */
const emitLoaded = (state: RuntimeState, module: WasmModule, size: number, cacheHit: boolean): Effect.Effect<void> =>
  Effect.suspend(() =>
    state.bus.publish(loadedEvent(state, module, size, cacheHit, state.clock.currentTimeMillisUnsafe()))
  )

/** No fields: `loadedEvent` writes its own after the envelope. */
const NO_FIELDS = {} as Omit<
  ConstructorParameters<typeof ModuleLoaded>[0],
  "_tag" | "eventId" | "timestamp" | "runtimeId"
>

/**
 * The `ModuleLoaded` of a module stamped `now` (ms since the epoch): the
 * envelope by `stampedEvent` (an object spread before more fields costs µs
 * per event on V8 11), then the fields written here in the class's order —
 * the same keys, order and JSON as `new ModuleLoaded(...)` (tested), without
 * a fields object copied key by key (a cache hit builds one per call).
 */
const loadedEvent = (
  state: RuntimeState,
  module: WasmModule,
  size: number,
  cacheHit: boolean,
  now: number
): ModuleLoaded => {
  let exports = exportNames.get(module)
  if (exports === undefined) {
    // shared by every ModuleLoaded of the module: frozen so no subscriber can change another's
    exports = Object.freeze(module.exports.map((x) => x.name))
    exportNames.set(module, exports)
  }
  const event = stampedEvent(state, ModuleLoaded, now, NO_FIELDS) as {
    -readonly [K in keyof ModuleLoaded]: ModuleLoaded[K]
  }
  event.moduleId = module.id
  event.moduleHash = module.hash
  event.size = size
  event.exports = exports
  event.cacheHit = cacheHit
  return event
}

/**
 * The typed error of bytes the engine (or the fast reader) refused: the
 * strict reader's (`readModule` with body decoding: byte offset, `kind`,
 * `feature`) when it finds the problem, else `fallback` — the engine's own
 * `CompileError` or the fast reader's error.
 */
const strictError = (bytes: Uint8Array, fallback: CompileError | WasmBinaryError): CompileError => {
  const strict = readModule(bytes)
  if (!strict.ok) return compileErrorOf(strict.error)
  return fallback instanceof CompileError ? fallback : compileErrorOf(fallback)
}

/** Whether a cached verification may still be served: its key is still trusted (`ModuleVerifier.trusts`). */
const stillTrusted = (state: RuntimeState, verified: VerifiedLoad): boolean =>
  verified.keyId === undefined || state.verifier.trusts === undefined || state.verifier.trusts(verified.keyId)

/** Registers a verified, parsed (and validated or compiled) module under `id` — `bytes` are the runtime's own copy: saves it (handed over: `ModuleRepositoryShape.saveOwned`), adds it, publishes `ModuleLoaded`. */
const register = (
  state: RuntimeState,
  input: {
    readonly id: ModuleId
    readonly hash: ModuleHash
    readonly bytes: Uint8Array
    readonly info: ModuleInfo
    readonly metadata: ModuleMetadata
    readonly keyId: string | undefined
  },
  cacheHit: boolean
): Effect.Effect<ModuleId, RepositoryError> =>
  Effect.gen(function* () {
    const { id, bytes, metadata } = input
    const now = yield* Clock.currentTimeMillis
    const module = WasmModules.make({
      id,
      hash: input.hash,
      bytes,
      info: input.info,
      metadata,
      signedBy: input.keyId,
      loadedAt: now
    })
    // the runtime's own copy, handed over: a repository keeping bytes in memory need not copy it again
    const repo = state.moduleRepo
    yield* (repo.saveOwned ?? repo.save)({ id, hash: module.hash, bytes, metadata })
    yield* state.locked(Effect.sync(() => void state.env.modules.set(id, module)))
    yield* emitLoaded(state, module, bytes.byteLength, cacheHit)
    return id
  })

/** The id of an already registered module, touched in the compile cache and announced as a cache hit; `undefined` when none. */
const reuse = (state: RuntimeState, id: ModuleId, size: number, now: number): Effect.Effect<ModuleId> | undefined => {
  const existing = state.env.modules.get(id)
  if (existing === undefined) return undefined
  state.env.cache.touchModule(existing.hash, now)
  return Effect.as(emitLoaded(state, existing, size, true), id)
}

/**
 * `reuse` of a registered module done now, on a bus that publishes
 * synchronously (`deliver`: the bus's `publishNow`): the module touched,
 * its `ModuleLoaded` (`cacheHit`, stamped `now`) delivered before this
 * returns — built only when a current subscriber would receive it
 * (`EventBus.wants`; as the synchronous spawn does): with none, publishing
 * it would deliver nothing, and it takes no event id.
 */
const reuseNow = (
  state: RuntimeState,
  module: WasmModule,
  size: number,
  now: number,
  deliver: (event: ModuleLoaded) => void
): ModuleId => {
  state.env.cache.touchModule(module.hash, now)
  if (wants(state.bus, "ModuleLoaded")) deliver(loadedEvent(state, module, size, true, now))
  return module.id
}

/**
 * The registered module of each verification (`VerifiedLoad`, one per load
 * entry and metadata), once found: a verification's module id is
 * `makeId(entry.moduleHash, metadata)` with the verification's own name and
 * version, and a registered module is never unregistered (`env.modules`
 * only grows), so the answer never changes — a hit need not build the id
 * string and look it up (≈ 0.3 µs for a fresh string key on V8 11).
 */
const registeredOf = new WeakMap<VerifiedLoad, WasmModule>()

/** The module registered for `verified` of `entry` (`metadata` matched it), or `undefined`. */
const registeredFor = (
  state: RuntimeState,
  entry: LoadEntry,
  verified: VerifiedLoad,
  metadata: ModuleMetadata
): WasmModule | undefined => {
  let module = registeredOf.get(verified)
  if (module === undefined) {
    module = state.env.modules.get(WasmModules.makeId(entry.moduleHash, metadata))
    if (module !== undefined) registeredOf.set(verified, module)
  }
  return module
}

/** The errors of `loadModule` (`InvalidArgument`: bytes whose `ArrayBuffer` is detached, `detachedBytes`). */
export type LoadError =
  | InvalidSignature
  | CompileError
  | ModuleTooLarge
  | RepositoryError
  | RuntimeUnavailable
  | InvalidArgument

/**
 * The runtime's own copy of `bytes`; `InvalidArgument` when their
 * `ArrayBuffer` is detached (`slice` throws a `TypeError` then). Taken in
 * `loadNow`'s synchronous step, before any hash of the bytes is awaited
 * (before any hash at all for a view of a `SharedArrayBuffer`, which
 * another thread may write at any moment): everything after (hash, verify,
 * read, validate, register) works on this copy, so a caller changing its
 * bytes while the load runs cannot get other bytes registered under the
 * hash and signature of the first.
 */
const copyOf = (bytes: Uint8Array): Uint8Array | InvalidArgument => {
  try {
    return bytes.slice()
  } catch (e) {
    const detached = detachedBytes(bytes)
    if (detached === undefined) throw e
    return detached
  }
}

/**
 * `InvalidArgument` when `bytes` is a view of a detached `ArrayBuffer` (one
 * transferred to a worker or `postMessage`, or by `ArrayBuffer.transfer`):
 * such a view reads as empty and cannot be copied — `slice` throws a
 * `TypeError`. Else `undefined`. A detached view always has `byteLength`
 * 0, so a non-empty input costs one comparison; an empty one is detached
 * exactly when no view can be made over its buffer (Node 20 has no
 * `ArrayBuffer.prototype.detached`).
 */
const detachedBytes = (bytes: Uint8Array): InvalidArgument | undefined => {
  if (bytes.byteLength !== 0) return undefined
  const buffer = bytes.buffer as ArrayBuffer & { readonly detached?: boolean }
  let detached = buffer.detached
  if (detached === undefined) {
    try {
      new Uint8Array(buffer, 0, 0)
      detached = false
    } catch {
      detached = true
    }
  }
  return detached ? detachedError() : undefined
}

const detachedError = () =>
  new InvalidArgument({
    operation: "loadModule",
    argument: "bytes",
    reason: "its ArrayBuffer is detached (transferred): there are no bytes to read"
  })

/**
 * Verifies, reads, compiles (or finds in the compile cache) and registers a
 * module (spec `load_module`); loading the same verified bytes again returns
 * the same id.
 *
 * A loaded module is identified by the SHA-256 of its bytes as given: the
 * platform's synchronous SHA-256 when it injects one (`PlatformServices.sha256Hex`,
 * e.g. `node:crypto` on Node), else JavaScript below 8 KiB and WebCrypto
 * above (`internal/Sha256.ts`). A load first hashes the bytes and looks
 * for their load entry (`ModuleCache` `LoadEntry`): with a verification for
 * the same name, version and detached signature whose key is still trusted
 * (`ModuleVerifier.trusts`) it returns the module's id — no signature check,
 * parse, validation or compile; the cost is the hash (computed and looked up
 * synchronously when it can be: `lookUpNow`; on a bus that publishes
 * synchronously the whole hit is one synchronous step: `loadNow`). The same bytes with
 * other metadata are verified (the signature covers name + version) but not
 * parsed or validated again. Otherwise (a cold load):
 *
 * 1. the bytes are read without decoding function bodies (`readModule`
 *    `bodies: false`: sections, types, imports, exports — what the runtime
 *    needs), and verified (`ModuleVerifier.verify`, told the hash);
 * 2. the engine validates them (`WasmEngine.validate`, or compiles them
 *    through the compile cache): the engine checks the bodies, once;
 * 3. bytes the engine or the reader refuses are read again with body
 *    decoding, so the `CompileError` carries the reader's byte offset and
 *    `kind`/`feature` whenever the reader can tell what is wrong.
 *
 * Bytes hashed by WebCrypto (no injected SHA-256; from `Sha256.SYNC_LIMIT`, 8 KiB) whose cheap
 * fingerprint no load entry has (`ModuleCache.mayHoldLoad`: certainly not
 * loaded before) are copied, read and validated while the hash runs off the
 * thread (`readEarly`); the validation's verdict is reported at step 2, so
 * errors and their order are the same as without it.
 *
 * Concurrent cold loads of the same bytes (the same SHA-256) are one load
 * (`sharedLoad`): the first verifies, reads, validates (or compiles) and
 * registers them in a fiber of its own; the others wait for it
 * and then answer as a later load would — a cache hit (`ModuleLoaded` with
 * `cacheHit: true`), or, asked with other metadata, a verification only — or
 * fail with its typed error when they asked for the same load (a failure is
 * not cached). Interrupting one caller cancels neither that load nor the
 * others' waits.
 *
 * Errors: `InvalidArgument` (bytes whose `ArrayBuffer` is detached),
 * `ModuleTooLarge` (`settings.maxModuleBytes`), `InvalidSignature`
 * (checked first: changed bytes are `InvalidSignature` even when the change
 * also breaks the binary), `CompileError` (with the byte offset; bytes the
 * verifier cannot even walk are `CompileError` too), `RepositoryError`,
 * `RuntimeUnavailable`.
 */
export const loadModule = (
  state: RuntimeState,
  bytes: Uint8Array,
  metadata: ModuleMetadata
): Effect.Effect<ModuleId, LoadError> =>
  Effect.suspend(() => {
    const now = loadNow(state, bytes, metadata)
    return typeof now === "string" ? Effect.succeed(now) : now
  })

/**
 * `loadModule` decided in the caller's synchronous step: the id itself when
 * the load is a cache hit the runtime can answer without waiting — the
 * bytes hashed synchronously (`Hasher.sha256HexNow`: the injected SHA-256,
 * or JavaScript below 8 KiB), their load entry verified for `metadata` by a
 * still-trusted key, the module registered, and a bus that publishes
 * synchronously (`EventBus.publishNow`: the in-memory bus) — with the
 * module touched in the compile cache and its `ModuleLoaded` (`cacheHit:
 * true`) delivered before it returns; otherwise the effect that does the
 * rest of `loadModule` with what was found (the hash is not computed
 * twice), working on the runtime's own copy of `bytes` taken here (`copyOf`).
 * Running the effect (or taking the id) is `loadModule`: the same id, the
 * same events in the same order, the same errors. Input is not checked here
 * (`AgentRuntime` checks it first).
 */
export const loadNow = (
  state: RuntimeState,
  bytes: Uint8Array,
  metadata: ModuleMetadata
): ModuleId | Effect.Effect<ModuleId, LoadError> => {
  const detached = detachedBytes(bytes)
  if (detached !== undefined) return Effect.fail(detached)
  const tooLarge = bytes.byteLength > state.settings.maxModuleBytes
  // A view of a `SharedArrayBuffer` can change under us at any moment (another thread): copied before it is
  // hashed, so the hash is the copy's. Other bytes cannot change within this synchronous step: hashed as given.
  const input = !tooLarge && isShared(bytes) ? copyOf(bytes) : bytes
  if (!(input instanceof Uint8Array)) return Effect.fail(input)
  const known = lookUpNow(state, input, metadata)
  if (typeof known === "string") return known
  if (known?.hit !== undefined) return known.hit
  // the runtime's own copy, now (the bytes `known` hashed); too large: refused before anything is copied
  const own = input !== bytes || tooLarge ? input : copyOf(bytes)
  return own instanceof Uint8Array ? loadFrom(state, own, metadata, known) : Effect.fail(own)
}

/** Whether `bytes` is a view of a `SharedArrayBuffer` (where the host has them). */
const isShared = (bytes: Uint8Array): boolean =>
  typeof SharedArrayBuffer !== "undefined" && bytes.buffer instanceof SharedArrayBuffer

/**
 * Each runtime's `loadNow` with its input checked first (`InvalidArgument`
 * as the effect's failure), by the `AgentRuntimeShape` it belongs to: for
 * the Promise facade, whose `loadModule` answers a synchronous cache hit
 * without running an effect.
 */
export const synchronousLoads = new WeakMap<
  object,
  (bytes: Uint8Array, metadata: ModuleMetadata) => ModuleId | Effect.Effect<ModuleId, LoadError | InvalidArgument>
>()

/** What `lookUpNow` found: the bytes' hash, their load entry (touched at `now`), and the whole hit when it is one. */
interface LookedUp {
  readonly bytesHash: string
  readonly now: number
  readonly entry: LoadEntry | undefined
  /** The hit, as the effect that announces it (`reuse`: a bus without `publishNow`). */
  readonly hit?: Effect.Effect<ModuleId> | undefined
}

/**
 * The hash and load entry of `bytes` computed now, when the runtime can
 * hash them synchronously (`Hasher.sha256HexNow`: the injected SHA-256, or
 * JavaScript below 8 KiB), and — when the entry holds a verification for
 * `metadata` whose key is still trusted and its module is registered — the
 * cache hit itself: done now on a bus that publishes synchronously
 * (`reuseNow`: no effect, no record — the id is the answer), else as one
 * small effect (`reuse`); so a hit runs no generator. `undefined` when the runtime refuses work, the
 * bytes are too large (`loadFrom` reports either) or only WebCrypto can
 * hash them.
 */
const lookUpNow = (
  state: RuntimeState,
  bytes: Uint8Array,
  metadata: ModuleMetadata
): ModuleId | LookedUp | undefined => {
  const { env } = state
  if (!acceptsWork(env.status) || bytes.byteLength > state.settings.maxModuleBytes) return undefined
  const bytesHash = state.hasher.sha256HexNow(bytes)
  if (bytesHash === undefined) return undefined
  const now = state.clock.currentTimeMillisUnsafe()
  const entry = env.cache.getLoad(bytesHash, now)
  if (entry !== undefined) {
    const verified = findVerified(entry, metadata)
    if (verified !== undefined && stillTrusted(state, verified)) {
      const deliver = publishNow(state.bus)
      if (deliver === undefined) {
        const hit = reuse(state, WasmModules.makeId(entry.moduleHash, metadata), bytes.byteLength, now)
        if (hit !== undefined) return { bytesHash, now, entry, hit }
      } else {
        const module = registeredFor(state, entry, verified, metadata)
        if (module !== undefined) return reuseNow(state, module, bytes.byteLength, now, deliver)
      }
    }
  }
  return { bytesHash, now, entry }
}

/**
 * `loadModule` after `lookUpNow`: `known` when the bytes were hashed and looked up already (not a registered hit).
 * `bytes` is the runtime's own copy (`copyOf`), kept by whatever this load registers.
 */
const loadFrom = (
  state: RuntimeState,
  bytes: Uint8Array,
  metadata: ModuleMetadata,
  known: LookedUp | undefined
): Effect.Effect<ModuleId, LoadError> =>
  Effect.gen(function* () {
    const { env, settings } = state
    yield* ensureAccepting(state)
    if (bytes.byteLength > settings.maxModuleBytes) {
      return yield* new ModuleTooLarge({ size: bytes.byteLength, limit: settings.maxModuleBytes })
    }
    // Bytes no load entry can hold (their fingerprint is new) and hashed off this thread: copy, read and
    // validate them while WebCrypto hashes the copy, instead of after (`early`). Otherwise hash first: a
    // load of known bytes costs the hash.
    const { hasher } = state
    const fingerprint = known === undefined && hasher.hashesOffThread(bytes) ? Sha256.fingerprint(bytes) : undefined
    // Not while another load reads bytes of that fingerprint early: this one waits until that one has its
    // hash (and, for the same bytes, is their load in progress: `sharedLoad`), then hashes its own.
    const reading = readingEarly(state)
    const other = fingerprint === undefined ? undefined : reading.get(fingerprint)
    if (other !== undefined) yield* Deferred.await(other)
    const hashed = other === undefined && fingerprint !== undefined && !env.cache.mayHoldLoad(fingerprint)
    const early = hashed ? yield* readingFirst(reading, fingerprint, readEarly(state, bytes)) : undefined
    const bytesHash =
      known !== undefined
        ? known.bytesHash
        : early === undefined
          ? yield* hasher.sha256Hex(bytes)
          : yield* Effect.ensuring(
              early.hash,
              Effect.sync(() => {
                Deferred.doneUnsafe(reading.get(fingerprint!)!, Effect.void)
                reading.delete(fingerprint!)
              })
            )
    const now = known !== undefined ? known.now : yield* Clock.currentTimeMillis
    const hints = { sha256: bytesHash, sha256HexNow: state.hasher.sha256HexNow }
    const entry =
      known !== undefined ? known.entry : bytesHash === undefined ? undefined : env.cache.getLoad(bytesHash, now)
    if (entry !== undefined) {
      const verified = findVerified(entry, metadata)
      if (verified !== undefined && stillTrusted(state, verified)) {
        const id = WasmModules.makeId(entry.moduleHash, metadata)
        const hit = reuse(state, id, bytes.byteLength, now)
        if (hit !== undefined) return yield* hit
        return yield* register(
          state,
          {
            id,
            hash: entry.moduleHash,
            bytes,
            info: entry.info,
            metadata,
            keyId: verified.keyId
          },
          true
        )
      }
      if (verified !== undefined) entry.verified.splice(entry.verified.indexOf(verified), 1) // key no longer trusted
      // the same bytes under other metadata: verify only (parsed and validated already)
      const verification = yield* state.verifier.verify(bytes, metadata, hints)
      if (verification.hash === entry.moduleHash) {
        env.cache.addLoad(
          {
            ...entry,
            verified: verifiedLoad(metadata, verification.keyId),
            fingerprint: fingerprint ?? Sha256.fingerprint(bytes)
          },
          now
        )
        const id = WasmModules.makeId(entry.moduleHash, metadata)
        const hit = reuse(state, id, bytes.byteLength, now)
        if (hit !== undefined) return yield* hit
        return yield* register(
          state,
          {
            id,
            hash: entry.moduleHash,
            bytes,
            info: entry.info,
            metadata,
            keyId: verification.keyId
          },
          true
        )
      }
    }
    // Cold. `bytes` is the runtime's own copy: what was hashed, verified and validated is what agents run
    // (the compile cache rewrites it without validating it again).
    const ctx = { bytesHash, now, fingerprint, early, hints }
    if (bytesHash === undefined) return yield* coldLoad(state, bytes, metadata, ctx)
    // One cold load per hash at a time: a load of bytes already being loaded waits for that load (`sharedLoad`)
    const loads = pendingLoads(state)
    const pending = loads.get(bytesHash)
    if (pending === undefined) {
      const cold = coldLoad(state, bytes, metadata, ctx)
      return yield* sharedLoad(loads, bytesHash, metadata, cold)
    }
    const exit = yield* Effect.exit(Deferred.await(pending.done))
    // the same load failed: the same typed error (nothing was cached); else look again (now a hit, or our own load)
    if (exit._tag === "Failure" && !Cause.hasInterruptsOnly(exit.cause) && sameLoad(pending.metadata, metadata)) {
      return yield* exit
    }
    const later = yield* Clock.currentTimeMillis
    return yield* loadFrom(state, bytes, metadata, {
      bytesHash,
      now: later,
      entry: env.cache.getLoad(bytesHash, later)
    })
  })

/** A map per runtime, made on first use. */
const perRuntime = <V>(): ((state: RuntimeState) => Map<string, V>) => {
  const of = new WeakMap<RuntimeState, Map<string, V>>()
  return (state) => {
    let map = of.get(state)
    if (map === undefined) of.set(state, (map = new Map()))
    return map
  }
}

/**
 * Each runtime's fingerprints of bytes a load is reading early (`readEarly`)
 * while it hashes them, each with what is done once that load has its hash.
 */
const readingEarly = perRuntime<Deferred.Deferred<void>>()

/** `read` as the early reader of `fingerprint` (`readingEarly`); an early reader that fails or is interrupted lets the others go. */
const readingFirst = <A, E>(
  reading: Map<string, Deferred.Deferred<void>>,
  fingerprint: string,
  read: Effect.Effect<A, E>
): Effect.Effect<A, E> =>
  Effect.suspend(() => {
    const done = Deferred.makeUnsafe<void>()
    reading.set(fingerprint, done)
    return Effect.onError(read, () =>
      Effect.sync(() => {
        reading.delete(fingerprint)
        Deferred.doneUnsafe(done, Effect.void)
      })
    )
  })

/** A cold load in progress: its outcome, and the metadata it was asked for. */
interface PendingLoad {
  readonly done: Deferred.Deferred<ModuleId, LoadError>
  readonly metadata: ModuleMetadata
}

/** Each runtime's cold loads in progress, by the SHA-256 of their bytes. */
const pendingLoads = perRuntime<PendingLoad>()

/**
 * Whether two loads of the same bytes are the same load: the same name,
 * version, author and detached signature (what the verifier and the module
 * id depend on), so one's failure is the other's.
 */
const sameLoad = (a: ModuleMetadata, b: ModuleMetadata): boolean => {
  if (a === b) return true
  if (a.name !== b.name || a.version !== b.version || a.author !== b.author) return false
  const x = a.signature
  const y = b.signature
  if (x === undefined || y === undefined) return x === y
  if (x.length !== y.length) return false
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false
  return true
}

/**
 * Runs the cold load `cold` of the bytes hashed `bytesHash` as the one load
 * of those bytes in progress: loads of the same bytes that start meanwhile
 * wait for it (`loadFrom`) instead of verifying, reading and validating (or
 * compiling) them again — then find its load entry (a cache hit, `ModuleLoaded`
 * with `cacheHit: true`), or fail with its typed error when they asked for
 * the same load (`sameLoad`; a failure is not cached: a later load tries
 * again). The load runs in a fiber of its own, not in the caller's:
 * interrupting the caller that started it (or any waiter) does not cancel
 * it for the others.
 */
const sharedLoad = (
  loads: Map<string, PendingLoad>,
  bytesHash: string,
  metadata: ModuleMetadata,
  cold: Effect.Effect<ModuleId, LoadError>
): Effect.Effect<ModuleId, LoadError> =>
  Effect.withFiber((fiber) => {
    const pending: PendingLoad = { done: Deferred.makeUnsafe<ModuleId, LoadError>(), metadata }
    loads.set(bytesHash, pending)
    // a fiber of its own (started now, with the caller's services), so no caller's interruption cancels it;
    // not the runtime's `FiberSet` (≈ 5 µs more per cold load of a small module), and never interrupted
    // (it ends as any load does: its steps fail when the runtime shut down meanwhile)
    const load = Effect.runForkWith(fiber.context)(cold)
    load.addObserver((exit) => {
      if (loads.get(bytesHash) === pending) loads.delete(bytesHash)
      Deferred.doneUnsafe(pending.done, exit)
    })
    return Deferred.await(pending.done)
  })

/**
 * The cold part of `loadModule`: `bytes` (the runtime's own copy) read,
 * verified, validated (or compiled) and registered; `ModuleLoaded` published.
 */
const coldLoad = (
  state: RuntimeState,
  bytes: Uint8Array,
  metadata: ModuleMetadata,
  ctx: {
    readonly bytesHash: string | undefined
    readonly now: number
    readonly fingerprint: string | undefined
    readonly early: EarlyRead | undefined
    readonly hints: VerifyHints
  }
): Effect.Effect<ModuleId, LoadError> =>
  Effect.gen(function* () {
    const { env, engine } = state
    const { bytesHash, now, fingerprint, early, hints } = ctx
    // Bytes that are not a module at all (the verifier cannot even find its sections)
    // are `CompileError` with the byte offset, like malformed contents of a verified module.
    const read = early?.read ?? readModule(bytes, { bodies: false })
    const verification = yield* Effect.mapError(
      state.verifier.verify(bytes, metadata, hints),
      (e): InvalidSignature | CompileError =>
        !read.ok && e.reason.startsWith("malformed module") ? strictError(bytes, read.error) : e
    )
    if (!read.ok) return yield* strictError(bytes, read.error)
    const info = read.value
    const remember = () => {
      if (bytesHash === undefined) return
      env.cache.addLoad(
        {
          bytesHash,
          moduleHash: verification.hash,
          info,
          size: bytes.byteLength,
          verified: verifiedLoad(metadata, verification.keyId),
          fingerprint: fingerprint ?? Sha256.fingerprint(bytes)
        },
        now
      )
    }
    const id = WasmModules.makeId(verification.hash, metadata)
    const hit = reuse(state, id, bytes.byteLength, now)
    if (hit !== undefined) {
      remember()
      return yield* hit
    }
    // Validate without code generation where the engine can (agents use rewritten
    // variants compiled at spawn); otherwise compile as loaded and cache it.
    let cacheHit = false
    const refused = (e: CompileError) => strictError(bytes, e)
    if (engine.validate !== undefined) {
      // validated early (the verdict is reported only now: a bad signature is reported first)
      yield* Effect.mapError(early?.validated ?? engine.validate(bytes), refused)
    } else {
      cacheHit = env.cache.peek(verification.hash) !== undefined
      yield* Effect.mapError(compileOnce(state, verification.hash, verification.hash, bytes), refused)
    }
    const loaded = yield* register(
      state,
      { id, hash: verification.hash, bytes, info, metadata, keyId: verification.keyId },
      cacheHit
    )
    remember()
    return loaded
  })

/** What `readEarly` did. */
interface EarlyRead {
  readonly hash: Effect.Effect<string | undefined>
  readonly read: ReturnType<typeof readModule>
  readonly validated: Effect.Effect<void, CompileError> | undefined
}

/**
 * The first steps of a cold load, done while the bytes are hashed: the hash
 * of `bytes` (the runtime's own copy) started now (`Hasher.startSha256Hex`:
 * WebCrypto, off this thread), the bytes read without bodies, and — when
 * the read succeeded and the engine validates — the engine's verdict on
 * them, kept as an effect that replays it (succeeds, or fails with the same
 * `CompileError`) so `loadModule` reports it after the signature check, as
 * a validation run then would.
 */
const readEarly = (state: RuntimeState, bytes: Uint8Array): Effect.Effect<EarlyRead> =>
  Effect.gen(function* () {
    const hash = state.hasher.startSha256Hex(bytes)
    const read = readModule(bytes, { bodies: false })
    const validate = state.engine.validate
    const validated = read.ok && validate !== undefined ? yield* Effect.exit(validate(bytes)) : undefined
    return { hash, read, validated }
  })

/** The verification to keep for `metadata` (name, version, detached signature) signed by `keyId`. */
const verifiedLoad = (metadata: ModuleMetadata, keyId: string | undefined): VerifiedLoad => ({
  name: metadata.name,
  version: metadata.version,
  signature: metadata.signature,
  keyId
})

/** A loaded module, or `ModuleNotFound`. */
export const getModule = (state: RuntimeState, moduleId: ModuleId): Effect.Effect<WasmModule, ModuleNotFound> =>
  Effect.suspend(() => {
    const m = state.env.modules.get(moduleId)
    return m === undefined ? Effect.fail(new ModuleNotFound({ moduleId })) : Effect.succeed(m)
  })
