import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  CompileError,
  FuelExhausted,
  InstantiationError,
  InvalidSignature,
  makeMetadata,
  moduleHash,
  WasmEngine
} from "@agent-runtime/domain"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Bundle, type BundleContents, BundleRegistry, BundleVerifier, edgeReasonOf } from "../src/bundle/index.js"
import { EdgeEngine } from "../src/index.js"
import { EMBEDDER_MESSAGE, forbidRuntimeCompile, install, MiB, standardBundle } from "./helpers.js"

let bundle: Bundle
let contents: BundleContents
let allow: () => void

beforeAll(async () => {
  bundle = await Effect.runPromise(standardBundle())
  contents = install(bundle) // the bundler compiles; from here on the process behaves like workerd
  allow = forbidRuntimeCompile()
})
afterAll(() => allow())

const runtime = (verifier: "bundle" | "signing" = "bundle") =>
  Layer.unwrap(
    Effect.map(Effect.orDie(BundleRegistry.make(contents)), (registry) =>
      AgentRuntimes.layerMemory({ id: "rt-edge-test" }).pipe(
        Layer.provide(
          Layer.mergeAll(
            EdgeEngine.layer(registry),
            verifier === "bundle" ? BundleVerifier.layer(registry) : Signing.layer({ trustStore: testOnlyTrustStore() })
          )
        )
      )
    )
  )

const load = (name: "counter" | "looper" | "text" | "grower" | "trapper") =>
  Effect.flatMap(AgentRuntime, (rt) => rt.loadModule(readAgent(name), makeMetadata({ name, version: "1.0.0" })))

describe("EdgeEngine", () => {
  it("the test process really refuses runtime compilation, like workerd", async () => {
    expect(() => new WebAssembly.Module(readAgent("counter") as Uint8Array<ArrayBuffer>)).toThrow(EMBEDDER_MESSAGE)
    await expect(WebAssembly.compile(readAgent("counter") as Uint8Array<ArrayBuffer>)).rejects.toThrow(EMBEDDER_MESSAGE)
    expect(EdgeEngine.capabilities).toEqual({
      workers: false,
      preemptiveTimeout: false,
      fuel: true,
      wasi: false,
      sharedMemory: false,
      runtimeCompile: false,
      snapshots: true
    })
  })

  it.effect("a bundled agent loads, spawns with the bundled config and runs (no code generation)", () =>
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const id = yield* load("counter")
      expect((yield* rt.getModule(id)).signedBy).toBe("8031f4ca87ca532b")
      yield* rt.spawnAgent(agentId("c"), id, { memoryLimit: MiB })
      expect(yield* rt.invoke(agentId("c"), "add", [41])).toEqual([41])
      expect(yield* rt.invoke(agentId("c"), "increment")).toEqual([42])
      expect(yield* rt.invoke(agentId("c"), "add_i64", [2n ** 62n, 5n])).toEqual([2n ** 62n + 5n])
      // a second agent of another bundled size shares nothing with the first
      yield* rt.spawnAgent(agentId("c2"), id, { memoryLimit: 2 * MiB })
      expect(yield* rt.invoke(agentId("c2"), "get")).toEqual([0])
    }).pipe(Effect.provide(runtime()))
  )

  it.effect("the memory cap comes from the bundled rewrite: text's memory cannot grow past 16 MiB", () =>
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const id = yield* load("grower")
      yield* rt.spawnAgent(agentId("g"), id, { memoryLimit: MiB })
      expect(yield* rt.invoke(agentId("g"), "grow", [3])).toEqual([1])
      expect(yield* rt.invoke(agentId("g"), "grow", [1])).toEqual([-1]) // grower's own maximum (4 pages) < the cap
      const text = yield* load("text")
      yield* rt.spawnAgent(agentId("t"), text, { memoryLimit: 16 * MiB })
      const module = yield* rt.getModule(text)
      expect(module.exports.some((e) => e.name === "memory")).toBe(true)
    }).pipe(Effect.provide(runtime()))
  )

  it.effect("an infinite loop stops with FuelExhausted; bounded work within the fuel succeeds afterwards", () =>
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const id = yield* load("looper")
      yield* rt.spawnAgent(agentId("l"), id, { memoryLimit: MiB, fuel: 1_000_000 })
      const e = yield* Effect.flip(rt.invoke(agentId("l"), "spin"))
      expect(e).toBeInstanceOf(FuelExhausted)
      expect(e).toMatchObject({ function: "spin", fuel: 1_000_000 })
      expect(yield* rt.invoke(agentId("l"), "spin_n", [1000])).toEqual([1000])
    }).pipe(Effect.provide(runtime()))
  )

  it.effect("a config the bundle does not declare → the engine refuses with [edge:no-variant] (no compile)", () =>
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const id = yield* load("counter")
      const e = yield* Effect.flip(rt.spawnAgent(agentId("c3"), id, { memoryLimit: 3 * MiB }))
      expect(e).toBeInstanceOf(InstantiationError)
      expect(edgeReasonOf(e.message)).toBe("edge:no-variant")
      expect(e.message).toMatch(/cap=16\|fuel=-\|state/) // lists what is bundled
      const unmetered = yield* Effect.flip(
        rt.spawnAgent(agentId("l"), yield* load("looper"), { memoryLimit: MiB, fuel: 5 })
      )
      expect(edgeReasonOf(unmetered.message)).toBe("edge:no-variant")
    }).pipe(Effect.provide(runtime()))
  )

  it.effect(
    "a module that is not in the bundle: InvalidSignature with the bundle verifier, CompileError [edge:not-bundled] with ed25519",
    () =>
      Effect.gen(function* () {
        const viaBundle = yield* Effect.flip(load("trapper").pipe(Effect.provide(runtime("bundle"))))
        expect(viaBundle).toBeInstanceOf(InvalidSignature)
        expect(viaBundle.message).toMatch(/not in the bundle/)
        const viaSigning = yield* Effect.flip(load("trapper").pipe(Effect.provide(runtime("signing"))))
        expect(viaSigning).toBeInstanceOf(CompileError)
        expect(edgeReasonOf(viaSigning.message)).toBe("edge:not-bundled")
        expect(viaSigning.message).toContain(EdgeEngine.PLATFORM_RULE)
      })
  )

  it.effect("engine.compile: raw bytes, changed bytes and another module's variant are typed CompileErrors", () =>
    Effect.gen(function* () {
      const registry = yield* BundleRegistry.make(contents)
      const engine = EdgeEngine.make(registry)
      const trapper = readAgent("trapper")
      const trapperHash = yield* Effect.orDie(Signing.moduleHash(trapper))
      const raw = yield* Effect.flip(engine.compile(trapper, trapperHash))
      expect(edgeReasonOf(raw.message)).toBe("edge:not-bundled")
      expect(yield* Effect.flip(engine.validate!(trapper))).toMatchObject({ _tag: "CompileError" })
      const counter = readAgent("counter")
      const hash = yield* Effect.orDie(Signing.moduleHash(counter))
      yield* engine.validate!(counter)
      const ok = yield* engine.compile(counter, hash)
      expect(ok.handle).toBeInstanceOf(WebAssembly.Module)
      const changed = counter.slice()
      changed[40] = changed[40]! ^ 1
      expect(edgeReasonOf((yield* Effect.flip(engine.compile(changed, hash))).message)).toBe("edge:no-variant")
      const looper = bundle.files.find(
        (f) => f.path === bundle.manifest.modules.find((m) => m.name === "looper")!.variants[1]!.file
      )!
      expect(edgeReasonOf((yield* Effect.flip(engine.compile(looper.bytes, hash))).message)).toBe(
        "edge:foreign-variant"
      )
      expect(moduleHash).toBeTypeOf("function")
    })
  )

  it.effect("snapshot → evict → restore brings the agent back with its state", () =>
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const id = yield* load("counter")
      yield* rt.spawnAgent(agentId("s"), id, { memoryLimit: MiB })
      yield* rt.invoke(agentId("s"), "add", [7])
      yield* rt.snapshot(agentId("s"))
      yield* rt.evictAgent(agentId("s"), "Manual")
      yield* rt.restore(agentId("s"))
      expect(yield* rt.invoke(agentId("s"), "increment")).toEqual([8])
    }).pipe(Effect.provide(runtime()))
  )

  it.effect("the engine layer is the WasmEngine service with platform Edge", () =>
    Effect.gen(function* () {
      const engine = yield* WasmEngine
      expect(engine.platform).toBe("Edge")
    }).pipe(Effect.provide(EdgeEngine.layerFromBundle(contents)))
  )
})
