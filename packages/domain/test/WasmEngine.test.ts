/**
 * `EngineCapabilities.dirtyPages` (issue 13 item 7): `true` asks for the
 * dirty-page write barrier in every compiled variant, `"snapshotAfterCalls"`
 * only when the runtime snapshots agents after every call — an in-memory
 * run does not pay the barrier; absent, never (`usesDirtyPages`).
 */
import { wat } from "@agent-runtime/test-support"
import { DIRTY_PAGES_EXPORT, readModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import {
  agentId,
  AgentRuntime,
  AgentRuntimes,
  type EngineCapabilities,
  makeMetadata,
  usesDirtyPages,
  WasmEngine
} from "../src/index.js"
import { capabilities, config, makeTestEngine, testVerifierFor, watModule } from "./support/TestEngine.js"

describe("EngineCapabilities.dirtyPages", () => {
  it("usesDirtyPages: true always, 'snapshotAfterCalls' only then, absent or false never", () => {
    const cases: ReadonlyArray<readonly [EngineCapabilities["dirtyPages"], boolean, boolean]> = [
      [true, false, true],
      [true, true, true],
      ["snapshotAfterCalls", false, false],
      ["snapshotAfterCalls", true, true],
      [false, true, false],
      [undefined, true, false]
    ]
    for (const [dirtyPages, after, expected] of cases) {
      expect(usesDirtyPages({ ...capabilities, dirtyPages }, after)).toBe(expected)
    }
  })

  for (const snapshotAfterCalls of [true, false]) {
    it.effect(
      `"snapshotAfterCalls": the barrier is compiled in iff the runtime saves after calls (${snapshotAfterCalls})`,
      () => {
        const t = makeTestEngine()
        const compiled: Array<Uint8Array> = []
        const engine = {
          ...t.engine,
          capabilities: { ...capabilities, dirtyPages: "snapshotAfterCalls" as const },
          compile: (bytes: Uint8Array, hash: Parameters<typeof t.engine.compile>[1]) => {
            compiled.push(bytes)
            return t.engine.compile(bytes, hash)
          }
        }
        const layer = AgentRuntimes.layerMemory({ id: "rt-dirty-after", persistence: { snapshotAfterCalls } }).pipe(
          Layer.provide(Layer.mergeAll(Layer.succeed(WasmEngine, engine), testVerifierFor(t)))
        )
        return Effect.gen(function* () {
          const runtime = yield* AgentRuntime
          const bytes = yield* Effect.promise(() =>
            wat(watModule({ f: {} }, `(func (export "poke") (i32.store (i32.const 8) (i32.const 1)))`))
          )
          const id = yield* runtime.loadModule(bytes, makeMetadata({ name: "poker", version: "1.0.0" }))
          yield* runtime.spawnAgent(agentId("p"), id, config())
          const info = readModule(compiled.at(-1)!)
          if (!info.ok) throw info.error
          expect(info.value.exports.some((e) => e.name === DIRTY_PAGES_EXPORT)).toBe(snapshotAfterCalls)
        }).pipe(Effect.provide(layer))
      }
    )
  }
})
