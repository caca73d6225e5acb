/**
 * Compile variants with the dirty-page write barrier: the variant param, its
 * cache key and rewrite options, and that the runtime asks for it exactly
 * when the engine's capabilities say so (`EngineCapabilities.dirtyPages`).
 */
import { DIRTY_PAGES_EXPORT, readModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { agentId, AgentRuntime, AgentRuntimes, makeMetadata, WasmEngine } from "../src/index.js"
import { rewriteOptions, variantKey, variantParams } from "../src/CompileVariant.js"
import { wat } from "@agent-runtime/test-support"
import { capabilities, config, makeTestEngine, testVerifierFor, watModule } from "./support/TestEngine.js"

const base = { hasMemory: true, memoryLimit: 4 * 65_536, memoryCap: true, exportState: true } as const

describe("CompileVariant: the dirty-page barrier", () => {
  it("is a variant param of its own, in the cache key only when on (other keys unchanged)", () => {
    const off = variantParams(base)
    const on = variantParams({ ...base, dirtyPages: true })
    expect(off).toEqual({ maxMemoryPages: 4, fuel: null, exportState: true })
    expect(on).toEqual({ maxMemoryPages: 4, fuel: null, exportState: true, dirtyPages: true })
    expect(variantKey("h", off)).toBe("h|cap=4|fuel=-|state")
    expect(variantKey("h", on)).toBe("h|cap=4|fuel=-|state|dirty")
    expect(rewriteOptions(on!)).toMatchObject({ dirtyPages: true })
    expect(rewriteOptions(off!)).not.toHaveProperty("dirtyPages")
    // the barrier alone is a variant (nothing else asked for)
    const alone = variantParams({ ...base, memoryCap: false, exportState: false, dirtyPages: true })
    expect(variantKey("h", alone)).toBe("h|cap=-|fuel=-|-|dirty")
    expect(variantParams({ ...base, memoryCap: false, exportState: false })).toBeNull()
  })

  for (const dirtyPages of [true, false]) {
    it.effect(`the runtime compiles the barrier in when the engine asks for it (dirtyPages: ${dirtyPages})`, () => {
      const t = makeTestEngine()
      const compiled: Array<Uint8Array> = []
      const engine = {
        ...t.engine,
        capabilities: dirtyPages ? { ...capabilities, dirtyPages } : capabilities,
        compile: (bytes: Uint8Array, hash: Parameters<typeof t.engine.compile>[1]) => {
          compiled.push(bytes)
          return t.engine.compile(bytes, hash)
        }
      }
      const layer = AgentRuntimes.layerMemory({ id: "rt-dirty" }).pipe(
        Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, engine), testVerifierFor(t)))
      )
      return Effect.gen(function* () {
        const runtime = yield* AgentRuntime
        const bytes = yield* Effect.promise(() =>
          wat(watModule({ f: {} }, `(func (export "poke") (i32.store (i32.const 8) (i32.const 1)))`))
        )
        const id = yield* runtime.loadModule(bytes, makeMetadata({ name: "poker", version: "1.0.0" }))
        yield* runtime.spawnAgent(agentId("p"), id, config())
        const last = compiled.at(-1)!
        const info = readModule(last)
        if (!info.ok) throw info.error
        expect(info.value.exports.some((e) => e.name === DIRTY_PAGES_EXPORT)).toBe(dirtyPages)
      }).pipe(Effect.provide(layer))
    })
  }
})
