/**
 * `NativeEngine`: the `WasmEngine` port on the host's own `WebAssembly` API,
 * in-process (DESIGN.md "Platforms": Native). Works on any JavaScript host
 * with WebAssembly (Node, browsers, Deno, Bun); it is the fastest engine and
 * the reference the others are compared with.
 *
 * What it maps (WebAssembly JS API §"Error Objects"):
 * - `WebAssembly.CompileError` → `CompileError`;
 * - `WebAssembly.LinkError` (missing / ill-typed import) → `InstantiationError`;
 * - `WebAssembly.RuntimeError` (a trap: unreachable, divide by zero, out of
 *   bounds, …) → `Trap` with the engine's message;
 * - `RangeError: Maximum call stack size exceeded` (unbounded recursion) → `Trap` "call stack exhausted";
 * - an exception thrown by a host function → `Trap` naming it;
 * - linear memory above the budget after instantiation → `MemoryExceeded`.
 * Nothing a guest does escapes as an exception.
 *
 * Limits: calls run on the caller's thread and cannot be preempted
 * (`capabilities.preemptiveTimeout = false`); runaway guests are stopped by
 * fuel instead: for a module instrumented by `@agent-runtime/wasm-binary`'s
 * fuel rewrite (a mutable i64 global exported as `agent-runtime:fuel`), a
 * call with `InvokeOptions.fuel` sets the global first, reports what is left
 * in `fuelRemaining`, and a trap with the global below zero is
 * `FuelExhausted`. Memory usage is `memory.buffer.byteLength` of the
 * instance's exported (or imported) memory, reported after every call.
 *
 * @since 0.1.0
 */
import {
  CompileError,
  type CompiledModule,
  type EngineCapabilities,
  InstantiationError,
  type EngineState,
  type InvokeOutcome,
  MemoryExceeded,
  type ModuleHash,
  type PreparedInvoke,
  Trap,
  type WasmEngineShape,
  WasmEngine,
  type WasmInstance,
  FuelExhausted,
  FunctionNotFound,
  type WasmValue
} from "@agent-runtime/domain"
import { FUEL_EXPORT } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

const PAGE = 65_536

/** What the native engine can do. */
export const capabilities: EngineCapabilities = {
  workers: false,
  preemptiveTimeout: false,
  fuel: true,
  wasi: false,
  sharedMemory: typeof SharedArrayBuffer !== "undefined",
  runtimeCompile: true,
  snapshots: true
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Maps an exception thrown out of a call into the guest to a typed error. */
export const mapCallError = (fn: string, e: unknown): Trap => {
  if (e instanceof WebAssembly.RuntimeError) return new Trap({ function: fn, reason: e.message })
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    return new Trap({ function: fn, reason: `call stack exhausted (${e.message})` })
  }
  if (e instanceof TypeError) return new Trap({ function: fn, reason: `type error at the JS boundary: ${e.message}` })
  return new Trap({ function: fn, reason: `host function threw: ${message(e)}` })
}

const findMemory = (
  exports: WebAssembly.Exports,
  imports: WebAssembly.Imports
): WebAssembly.Memory | undefined => {
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Memory) return v
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Memory) return v
  }
  return undefined
}

/** True when every byte of `bytes[start, start + length)` is zero. */
const isZero = (words: Uint32Array, start: number, length: number): boolean => {
  const end = (start + length) >>> 2
  for (let i = start >>> 2; i < end; i++) if (words[i] !== 0) return false
  return true
}

const makeInstance = (instance: WebAssembly.Instance, imports: WebAssembly.Imports): WasmInstance => {
  let exports: WebAssembly.Exports | undefined = instance.exports
  const memory = findMemory(instance.exports, imports)
  const memoryBytes = () => (memory === undefined ? 0 : memory.buffer.byteLength)
  const terminated = (fn: string) => new Trap({ function: fn, reason: "instance terminated" })

  const fuelGlobal = instance.exports[FUEL_EXPORT] instanceof WebAssembly.Global
    ? (instance.exports[FUEL_EXPORT] as WebAssembly.Global)
    : undefined

  /** Resolves an export once; the returned caller never throws (typed errors as values). */
  const prepare = (fn: string): PreparedInvoke | undefined => {
    const f = exports?.[fn]
    if (typeof f !== "function") return undefined
    const g = f as (...a: ReadonlyArray<WasmValue>) => unknown
    return (args, fuel) => {
      if (exports === undefined) return terminated(fn)
      const metered = fuel !== undefined && fuelGlobal !== undefined
      if (metered) fuelGlobal.value = BigInt(fuel)
      let result: unknown
      try {
        result = g(...args)
      } catch (e) {
        if (metered && (fuelGlobal.value as bigint) < 0n) return new FuelExhausted({ function: fn, fuel })
        return mapCallError(fn, e)
      }
      return {
        results: result === undefined ? [] : Array.isArray(result) ? (result as Array<WasmValue>) : [result as WasmValue],
        memoryBytes: memoryBytes(),
        fuelRemaining: metered ? Number(fuelGlobal.value as bigint) : undefined
      }
    }
  }

  const invoke: WasmInstance["invoke"] = (fn, args, options) =>
    Effect.suspend((): Effect.Effect<InvokeOutcome, Trap | FunctionNotFound | FuelExhausted> => {
      if (exports === undefined) return Effect.fail(terminated(fn))
      const call = prepare(fn)
      if (call === undefined) return Effect.fail(new FunctionNotFound({ function: fn }))
      const outcome = call(args, options?.fuel)
      return outcome instanceof Error ? Effect.fail(outcome as Trap | FunctionNotFound | FuelExhausted) : Effect.succeed(outcome)
    })

  const bounds = (op: string, offset: number, length: number): Trap | undefined => {
    if (memory === undefined) return new Trap({ function: op, reason: "the instance has no linear memory" })
    if (!Number.isInteger(offset) || !Number.isInteger(length) || offset < 0 || length < 0 || offset + length > memory.buffer.byteLength) {
      return new Trap({
        function: op,
        reason: `memory access out of bounds: [${offset}, ${offset + length}) of ${memory.buffer.byteLength} bytes`
      })
    }
    return undefined
  }

  const snapshot: WasmInstance["snapshot"] = Effect.suspend((): Effect.Effect<EngineState, Trap> => {
    if (exports === undefined) return Effect.fail(terminated("snapshot"))
    const pages: Array<{ index: number; data: Uint8Array }> = []
    if (memory !== undefined) {
      const buffer = memory.buffer
      const words = new Uint32Array(buffer)
      const count = buffer.byteLength / PAGE
      for (let p = 0; p < count; p++) {
        if (!isZero(words, p * PAGE, PAGE)) pages.push({ index: p, data: new Uint8Array(buffer, p * PAGE, PAGE).slice() })
      }
    }
    const globals: Record<string, number | bigint> = {}
    for (const [name, v] of Object.entries(exports)) {
      if (!(v instanceof WebAssembly.Global)) continue
      let value: unknown
      try {
        value = v.value
        v.value = value // throws TypeError for an immutable global: only mutable state is captured
      } catch {
        continue
      }
      if (typeof value === "number" || typeof value === "bigint") globals[name] = value
    }
    const state: EngineState = { memoryBytes: memoryBytes(), pages, globals }
    return Effect.succeed(state)
  })

  const restore: WasmInstance["restore"] = (state) =>
    Effect.suspend((): Effect.Effect<void, Trap | MemoryExceeded> => {
      if (exports === undefined) return Effect.fail(terminated("restore"))
      if (memory !== undefined) {
        const current = memory.buffer.byteLength
        if (state.memoryBytes > current) {
          try {
            memory.grow((state.memoryBytes - current) / PAGE)
          } catch {
            return Effect.fail(new MemoryExceeded({ agentId: "restore", used: state.memoryBytes, limit: current }))
          }
        }
        const view = new Uint8Array(memory.buffer)
        view.fill(0)
        for (const page of state.pages) view.set(page.data, page.index * PAGE)
      } else if (state.pages.length > 0) {
        return Effect.fail(new Trap({ function: "restore", reason: "snapshot has memory but the instance has none" }))
      }
      for (const [name, value] of Object.entries(state.globals)) {
        const g = exports[name]
        if (!(g instanceof WebAssembly.Global)) {
          return Effect.fail(new Trap({ function: "restore", reason: `snapshot global ${name} is not exported by this module` }))
        }
        try {
          g.value = value
        } catch (e) {
          return Effect.fail(new Trap({ function: "restore", reason: `cannot set global ${name}: ${message(e)}` }))
        }
      }
      return Effect.void
    })

  return {
    invoke,
    prepare,
    memoryBytes: Effect.sync(memoryBytes),
    readMemory: (offset, length) =>
      Effect.suspend(() => {
        const err = bounds("readMemory", offset, length)
        return err !== undefined ? Effect.fail(err) : Effect.succeed(new Uint8Array(memory!.buffer, offset, length).slice())
      }),
    writeMemory: (offset, bytes) =>
      Effect.suspend(() => {
        const err = bounds("writeMemory", offset, bytes.byteLength)
        if (err !== undefined) return Effect.fail(err)
        new Uint8Array(memory!.buffer).set(bytes, offset)
        return Effect.void
      }),
    snapshot,
    restore,
    terminate: Effect.sync(() => {
      exports = undefined
    })
  }
}

/** Builds the native engine. */
export const make = (): WasmEngineShape => ({
  platform: "Native",
  capabilities,
  validate: (bytes: Uint8Array) =>
    Effect.suspend(() => {
      if (WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) return Effect.void
      // not valid: compile once to get the engine's reason
      return Effect.tryPromise({
        try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
        catch: (e) => new CompileError({ reason: message(e) })
      }).pipe(Effect.andThen(Effect.fail(new CompileError({ reason: "WebAssembly.validate refused the module" }))))
    }),
  compile: (bytes: Uint8Array, hash: ModuleHash) =>
    Effect.tryPromise({
      try: () => WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>),
      catch: (e) => new CompileError({ reason: message(e) })
    }).pipe(Effect.map((module): CompiledModule => ({ hash, byteLength: bytes.byteLength, handle: module }))),
  instantiate: (compiled, options) =>
    Effect.suspend((): Effect.Effect<WasmInstance, InstantiationError | Trap | MemoryExceeded> => {
      if (!(compiled.handle instanceof WebAssembly.Module)) {
        return Effect.fail(new InstantiationError({ reason: "not a module compiled by the native engine" }))
      }
      let imports = options.imports as WebAssembly.Imports
      let instance: WebAssembly.Instance
      try {
        const m = options.memory
        if (m !== undefined && (imports[m.module] as Record<string, unknown> | undefined)?.[m.name] === undefined) {
          const memory = new WebAssembly.Memory({ initial: m.minPages, maximum: m.maxPages, shared: m.shared })
          imports = { ...imports, [m.module]: { ...(imports[m.module] as object), [m.name]: memory } }
        }
        instance = new WebAssembly.Instance(compiled.handle, imports)
      } catch (e) {
        // LinkError: an import of the wrong kind or type; TypeError: an import module or value is missing
        if (e instanceof WebAssembly.LinkError || e instanceof TypeError) {
          return Effect.fail(new InstantiationError({ reason: e.message }))
        }
        if (e instanceof RangeError && /memory/i.test(e.message)) {
          return Effect.fail(new InstantiationError({ reason: `cannot allocate linear memory: ${e.message}` }))
        }
        return Effect.fail(mapCallError("(start)", e))
      }
      const wasm = makeInstance(instance, imports)
      return Effect.flatMap(wasm.memoryBytes, (bytes) =>
        bytes > options.memoryLimit
          ? Effect.andThen(
            wasm.terminate,
            Effect.fail(new MemoryExceeded({ agentId: options.agentId, used: bytes, limit: options.memoryLimit }))
          )
          : Effect.succeed(wasm)
      )
    })
})

/** The native `WasmEngine` layer. */
export const layer: Layer.Layer<WasmEngine> = Layer.sync(WasmEngine, make)
