/**
 * Fuel on the edge for a module that defines no globals: its bundled fuel
 * variant imports the counter (wasm-binary `FUEL_IMPORT_MODULE`), and the
 * engine — which cannot compile anything here, so not even the fast fuel
 * helper — gives every such instance the isolate's shared counter through the
 * `WebAssembly.Global` accessor. Metering must be per agent all the same.
 */
import { readAgent } from "@agent-runtime/agents"
import { AgentRuntime, AgentRuntimes, agentId, FuelExhausted, makeMetadata } from "@agent-runtime/domain"
import { FUEL_IMPORT_MODULE, FUEL_IMPORT_NAME } from "@agent-runtime/wasm-binary"
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { type Bundle, BundleBuilder, type BundleContents, BundleRegistry, BundleVerifier } from "../src/bundle/index.js"
import { EdgeEngine } from "../src/index.js"
import { EMBEDDER_MESSAGE, forbidRuntimeCompile, input, install, MiB, verifier } from "./helpers.js"

let bundle: Bundle
let contents: BundleContents
let allow: () => void

beforeAll(async () => {
  bundle = await Effect.runPromise(
    BundleBuilder.buildBundle({
      modules: [input("grower")],
      agents: [{ type: "grower", module: "grower", memoryLimit: MiB, fuel: 2 }],
      variants: [{ module: "grower", memoryLimit: MiB, fuel: 1_000 }],
      verifier: verifier()
    })
  )
  contents = install(bundle)
  allow = forbidRuntimeCompile()
})
afterAll(() => allow())

const runtime = () =>
  Layer.unwrap(
    Effect.map(Effect.orDie(BundleRegistry.make(contents)), (registry) =>
      AgentRuntimes.layerMemory({ id: "rt-edge-shared-fuel" }).pipe(
        Layer.provide(Layer.mergeAll(EdgeEngine.layer(registry), BundleVerifier.layer(registry)))
      )
    )
  )

describe("EdgeEngine: the shared fuel counter (a module without globals)", () => {
  it("the bundled fuel variants import their counter", () => {
    const grower = bundle.manifest.modules.find((m) => m.name === "grower")!
    const metered = grower.variants.filter((v) => v.key.includes("fuel=") && !v.key.includes("fuel=-"))
    expect(metered.length).toBe(2)
    for (const v of metered) {
      expect(v.imports).toEqual([{ module: FUEL_IMPORT_MODULE, name: FUEL_IMPORT_NAME, kind: "global" }])
    }
    expect(() => new WebAssembly.Module(readAgent("grower") as Uint8Array<ArrayBuffer>)).toThrow(EMBEDDER_MESSAGE)
  })

  it.effect("each agent is metered with its own fuel, calls interleaved on the one counter", () =>
    Effect.gen(function* () {
      const rt = yield* AgentRuntime
      const id = yield* rt.loadModule(readAgent("grower"), makeMetadata({ name: "grower", version: "1.0.0" }))
      yield* rt.spawnAgent(agentId("short"), id, { memoryLimit: MiB, fuel: 2 })
      yield* rt.spawnAgent(agentId("ample"), id, { memoryLimit: MiB, fuel: 1_000 })
      for (let k = 0; k < 3; k++) {
        // poke costs 4 units (3 instructions + end): 2 is too little, 1 000 plenty
        const e = yield* Effect.flip(rt.invoke(agentId("short"), "poke", [8, 7]))
        expect(e).toBeInstanceOf(FuelExhausted)
        expect(e).toMatchObject({ function: "poke", fuel: 2 })
        expect(yield* rt.invoke(agentId("ample"), "poke", [k, 7])).toEqual([])
        expect(yield* rt.invoke(agentId("ample"), "peek", [k])).toEqual([7])
      }
    }).pipe(Effect.provide(runtime()))
  )
})
