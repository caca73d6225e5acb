/**
 * `EdgeInstance`: one live instance of a bundled module on the edge engine —
 * invocation with fuel, memory access, snapshots (the `WasmInstance` port).
 *
 * Behaviour mirrors the native engine (`@agent-runtime/engine-native`
 * `NativeEngine`), whose small instance code is copied here because an
 * adapter never imports another adapter (DESIGN.md "Shape"):
 *
 * - `WebAssembly.RuntimeError` (a trap) → `Trap` with the engine's message;
 *   `RangeError` "Maximum call stack size exceeded" → `Trap` "call stack
 *   exhausted"; a host function's exception → `Trap` naming it;
 * - fuel: for a module instrumented by `@agent-runtime/wasm-binary` (a mutable
 *   i64 global exported as `agent-runtime:fuel`), a call with
 *   `InvokeOptions.fuel` sets the counter first, reports what is left in
 *   `fuelRemaining`, and a trap with the counter below zero is
 *   `FuelExhausted { function, fuel }`. On the edge fuel is the only CPU
 *   limit: a Worker's isolate cannot be preempted from inside.
 * - snapshots: linear memory with zero pages (64 KiB) skipped plus every
 *   exported mutable global; restore grows memory when needed.
 *
 * @since 0.1.0
 */
import {
  type EngineState,
  FuelExhausted,
  FunctionNotFound,
  type InvokeOutcome,
  MemoryExceeded,
  Trap,
  type WasmInstance,
  type WasmValue
} from "@agent-runtime/domain"
import { FUEL_EXPORT } from "@agent-runtime/wasm-binary"
import * as Effect from "effect/Effect"

const PAGE = 65_536

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** Maps an exception thrown out of a call into the guest to a typed error (WebAssembly JS API §"Error Objects"). */
export const mapCallError = (fn: string, e: unknown): Trap => {
  if (e instanceof WebAssembly.RuntimeError) return new Trap({ function: fn, reason: e.message })
  if (e instanceof RangeError && /call stack/i.test(e.message)) {
    return new Trap({ function: fn, reason: `call stack exhausted (${e.message})` })
  }
  if (e instanceof TypeError) return new Trap({ function: fn, reason: `type error at the JS boundary: ${e.message}` })
  return new Trap({ function: fn, reason: `host function threw: ${message(e)}` })
}

const findMemory = (exports: WebAssembly.Exports, imports: WebAssembly.Imports): WebAssembly.Memory | undefined => {
  for (const v of Object.values(exports)) if (v instanceof WebAssembly.Memory) return v
  for (const ns of Object.values(imports)) {
    for (const v of Object.values(ns as Record<string, unknown>)) if (v instanceof WebAssembly.Memory) return v
  }
  return undefined
}

/** True when every byte of `words` in [start, start + length) is zero (offsets in bytes, multiples of 4). */
const isZero = (words: Uint32Array, start: number, length: number): boolean => {
  const end = (start + length) >>> 2
  for (let i = start >>> 2; i < end; i++) if (words[i] !== 0) return false
  return true
}

/** Wraps a live `WebAssembly.Instance` as the port's `WasmInstance`. */
export const make = (instance: WebAssembly.Instance, imports: WebAssembly.Imports): WasmInstance => {
  let exports: WebAssembly.Exports | undefined = instance.exports
  const memory = findMemory(instance.exports, imports)
  const memoryBytes = () => (memory === undefined ? 0 : memory.buffer.byteLength)
  const terminated = (fn: string) => new Trap({ function: fn, reason: "instance terminated" })
  const fuelGlobal = instance.exports[FUEL_EXPORT] instanceof WebAssembly.Global
    ? (instance.exports[FUEL_EXPORT] as WebAssembly.Global)
    : undefined

  const invoke: WasmInstance["invoke"] = (fn, args, options) =>
    Effect.suspend((): Effect.Effect<InvokeOutcome, Trap | FunctionNotFound | FuelExhausted> => {
      if (exports === undefined) return Effect.fail(terminated(fn))
      const f = exports[fn]
      if (typeof f !== "function") return Effect.fail(new FunctionNotFound({ function: fn }))
      const fuel = options?.fuel
      const metered = fuel !== undefined && fuelGlobal !== undefined
      if (metered) fuelGlobal.value = BigInt(fuel)
      let result: unknown
      try {
        result = (f as (...a: ReadonlyArray<WasmValue>) => unknown)(...args)
      } catch (e) {
        if (metered && (fuelGlobal.value as bigint) < 0n) return Effect.fail(new FuelExhausted({ function: fn, fuel }))
        return Effect.fail(mapCallError(fn, e))
      }
      return Effect.succeed({
        results: result === undefined ? [] : Array.isArray(result) ? (result as Array<WasmValue>) : [result as WasmValue],
        memoryBytes: memoryBytes(),
        fuelRemaining: metered ? Number(fuelGlobal.value as bigint) : undefined
      })
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
      if (!(v instanceof WebAssembly.Global) || name === FUEL_EXPORT) continue
      let value: unknown
      try {
        value = v.value
        v.value = value // throws TypeError for an immutable global: only mutable state is captured
      } catch {
        continue
      }
      if (typeof value === "number" || typeof value === "bigint") globals[name] = value
    }
    return Effect.succeed({ memoryBytes: memoryBytes(), pages, globals })
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
