import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { BundleFileMissing, BundleMismatch, BundleRegistry, ManifestInvalid } from "../src/bundle/index.js"
import { install, standardBundle } from "./helpers.js"

describe("BundleRegistry.make", () => {
  it.effect("indexes modules by hash, variants by digest, agents by type", () =>
    Effect.gen(function* () {
      const bundle = yield* standardBundle()
      const registry = yield* BundleRegistry.make(install(bundle))
      const counter = bundle.manifest.modules.find((m) => m.name === "counter")!
      expect(registry.module(counter.moduleHash)?.name).toBe("counter")
      for (const v of counter.variants) {
        const found = registry.variant(v.digest)!
        expect(found.variant.key).toBe(v.key)
        expect(found.compiled).toBeInstanceOf(WebAssembly.Module)
      }
      expect(registry.agent("looper")?.fuel).toBe(1_000_000)
      expect(registry.agent("nope")).toBeUndefined()
      const original = registry.originalBytes(counter.moduleHash)!
      expect(original.byteLength).toBe(counter.size)
      // grower (1 page, max 4) capped to 16 pages is unchanged: its rewrite is the original's code
      const grower = bundle.manifest.modules.find((m) => m.name === "grower")!
      expect(grower.variants.flatMap((v) => [v.key, ...v.aliases])).toHaveLength(2)
    })
  )

  it.effect("a variant listed in the manifest but missing from the bundle → BundleFileMissing", () =>
    Effect.gen(function* () {
      const contents = install(yield* standardBundle())
      const [file] = Object.keys(contents.modules)
      const { [file!]: _dropped, ...rest } = contents.modules
      const e = yield* Effect.flip(BundleRegistry.make({ ...contents, modules: rest }))
      expect(e).toBeInstanceOf(BundleFileMissing)
      expect(e).toMatchObject({ file })
    })
  )

  it.effect(
    "a bundled module whose exports/imports differ from its manifest entry (a swapped .wasm) → BundleMismatch",
    () =>
      Effect.gen(function* () {
        const bundle = yield* standardBundle()
        const contents = install(bundle)
        const counter = bundle.manifest.modules.find((m) => m.name === "counter")!.variants[1]!.file
        const looper = bundle.manifest.modules.find((m) => m.name === "looper")!.variants[1]!.file
        const e = yield* Effect.flip(
          BundleRegistry.make({ ...contents, modules: { ...contents.modules, [counter]: contents.modules[looper] } })
        )
        expect(e).toBeInstanceOf(BundleMismatch)
        expect(e.message).toMatch(/exports \[.*\] are not the manifest's/)
        const notModule = yield* Effect.flip(
          BundleRegistry.make({ ...contents, modules: { ...contents.modules, [counter]: new Uint8Array(8) } })
        )
        expect(notModule.message).toMatch(/not a WebAssembly.Module/)
      })
  )

  it.effect("original bytes that do not hash to the manifest's module hash → BundleMismatch", () =>
    Effect.gen(function* () {
      const bundle = yield* standardBundle()
      const contents = install(bundle)
      const counter = bundle.manifest.modules.find((m) => m.name === "counter")!
      const bytes = (contents.data![counter.file] as Uint8Array).slice()
      bytes[30] = bytes[30]! ^ 1
      const e = yield* Effect.flip(
        BundleRegistry.make({ ...contents, data: { ...contents.data, [counter.file]: bytes } })
      )
      expect(e).toBeInstanceOf(BundleMismatch)
      expect(e.message).toMatch(/module hash is [0-9a-f]{64}, the manifest says/)
    })
  )

  it.effect("a bundled file with no manifest entry → BundleMismatch; a broken manifest → ManifestInvalid", () =>
    Effect.gen(function* () {
      const contents = install(yield* standardBundle())
      const extra = Object.values(contents.modules)[0]!
      const e = yield* Effect.flip(
        BundleRegistry.make({ ...contents, modules: { ...contents.modules, "wasm/extra.wasm": extra } })
      )
      expect(e).toBeInstanceOf(BundleMismatch)
      expect(e).toMatchObject({ file: "wasm/extra.wasm", reason: "no manifest entry for this bundled file" })
      expect(yield* Effect.flip(BundleRegistry.make({ ...contents, manifest: "{}" }))).toBeInstanceOf(ManifestInvalid)
    })
  )
})
