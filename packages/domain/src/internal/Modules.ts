/**
 * Modules (spec `load_module`): verification, reading, compilation through
 * the compile cache (one compile per cache key even when misses race), and
 * the compiled variant an agent's config asks for (`CompileVariant`).
 *
 * @since 0.1.0
 */
import { readModule, rewriteModule } from "@agent-runtime/wasm-binary"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import type { AgentConfig } from "../AgentConfig.js"
import * as CompileVariant from "../CompileVariant.js"
import type { ModuleId } from "../Ids.js"
import type { ModuleMetadata } from "../ModuleMetadata.js"
import {
  CompileError,
  compileErrorOf,
  type InvalidSignature,
  ModuleNotFound,
  ModuleTooLarge,
  type RepositoryError,
  type RuntimeUnavailable
} from "../RuntimeError.js"
import { ModuleLoaded } from "../RuntimeEvent.js"
import type { CompiledModule } from "../WasmEngine.js"
import * as WasmModules from "../WasmModule.js"
import type { WasmModule } from "../WasmModule.js"
import { emit, ensureAccepting, type RuntimeState } from "./RuntimeState.js"

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
    return compileOnce(state, variant.key, module.hash, () => {
      const rewritten = rewriteModule(module.bytes, variant.options)
      return rewritten.ok
        ? rewritten.value.bytes
        : compileErrorOf(rewritten.error, "rewrite failed: ")
    })
  })

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
    const compile = source instanceof CompileError
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

/** The rewrite an agent's config asks for (`CompileVariant`), or `undefined` when the module is used as loaded. */
const rewriteFor = (state: RuntimeState, module: WasmModule, config: AgentConfig) => {
  const { settings, engine } = state
  const params = CompileVariant.variantParams({
    // a table is capped from the same budget as memory (issue 12 item 1)
    hasMemory: WasmModules.memoryType(module.info) !== undefined || module.info.tables.length > 0 ||
      module.info.imports.some((i) => i.type.kind === "table"),
    memoryLimit: config.memoryLimit,
    fuel: config.fuel,
    memoryCap: settings.limits.memoryCap,
    exportState: settings.limits.exportState && engine.capabilities.snapshots
  })
  return params === null
    ? undefined
    : { key: CompileVariant.variantKey(module.hash, params), options: CompileVariant.rewriteOptions(params) }
}

/** Publishes `ModuleLoaded` for a module (`cacheHit`: no compile was needed). */
const emitLoaded = (state: RuntimeState, module: WasmModule, size: number, cacheHit: boolean) =>
  emit(state, (e) =>
    new ModuleLoaded({
      ...e,
      moduleId: module.id,
      moduleHash: module.hash,
      size,
      exports: module.exports.map((x) => x.name),
      cacheHit
    })
  )

/**
 * Verifies, reads, compiles (or finds in the compile cache) and registers a
 * module (spec `load_module`); loading the same verified bytes again returns
 * the same id.
 */
export const loadModule = (
  state: RuntimeState,
  bytes: Uint8Array,
  metadata: ModuleMetadata
): Effect.Effect<ModuleId, InvalidSignature | CompileError | ModuleTooLarge | RepositoryError | RuntimeUnavailable> =>
  Effect.gen(function*() {
    const { env, engine, settings } = state
    yield* ensureAccepting(state)
    if (bytes.byteLength > settings.maxModuleBytes) {
      return yield* new ModuleTooLarge({ size: bytes.byteLength, limit: settings.maxModuleBytes })
    }
    // The signature is checked first: changed bytes are `InvalidSignature` even when the
    // change also breaks the binary. Bytes that are not a module at all (the verifier cannot
    // even find its sections) and malformed contents of a verified module are `CompileError`
    // with the byte offset.
    const read = readModule(bytes)
    const verification = yield* Effect.mapError(state.verifier.verify(bytes, metadata), (e): InvalidSignature | CompileError =>
      !read.ok && e.reason.startsWith("malformed module")
        ? compileErrorOf(read.error)
        : e)
    if (!read.ok) return yield* compileErrorOf(read.error)
    const id = WasmModules.makeId(verification.hash, metadata)
    const existing = env.modules.get(id)
    if (existing !== undefined) {
      env.cache.touchModule(existing.hash, yield* Clock.currentTimeMillis)
      yield* emitLoaded(state, existing, bytes.byteLength, true)
      return id
    }
    // Validate without code generation where the engine can (agents use rewritten
    // variants compiled at spawn); otherwise compile as loaded and cache it.
    let cacheHit = false
    if (engine.validate !== undefined) yield* engine.validate(bytes)
    else {
      cacheHit = env.cache.peek(verification.hash) !== undefined
      yield* compileOnce(state, verification.hash, verification.hash, bytes)
    }
    const now = yield* Clock.currentTimeMillis
    const module = WasmModules.make({
      id,
      hash: verification.hash,
      bytes,
      info: read.value,
      metadata,
      signedBy: verification.keyId,
      loadedAt: now
    })
    yield* state.moduleRepo.save({ id, hash: module.hash, bytes, metadata })
    yield* state.locked(Effect.sync(() => void env.modules.set(id, module)))
    yield* emitLoaded(state, module, bytes.byteLength, cacheHit)
    return id
  })

/** A loaded module, or `ModuleNotFound`. */
export const getModule = (state: RuntimeState, moduleId: ModuleId): Effect.Effect<WasmModule, ModuleNotFound> =>
  Effect.suspend(() => {
    const m = state.env.modules.get(moduleId)
    return m === undefined ? Effect.fail(new ModuleNotFound({ moduleId })) : Effect.succeed(m)
  })
