import { manifestEntry, readAgent, readUnsignedAgent } from "@agent-runtime/agents"
import { InvalidSignature } from "@agent-runtime/domain"
import { testOnlyKeyPair } from "@agent-runtime/signing/test-keys"
import { FUEL_EXPORT, readModule, rewriteModule } from "@agent-runtime/wasm-binary"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { wat } from "@agent-runtime/test-support"
import { createHash } from "node:crypto"
import { BundleBuildError, BundleBuilder, BundleManifests, ManifestInvalid } from "../src/bundle/index.js"
import { input, MiB, standardBundle, verifier } from "./helpers.js"

const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex")

describe("buildBundle", () => {
  it.effect("records each module's hash, signature status, typed exports, and one variant per distinct rewrite", () =>
    Effect.gen(function* () {
      const { manifest, files } = yield* standardBundle()
      expect(manifest.format).toBe("agent-runtime/edge-bundle")
      expect(manifest.limits).toEqual({ memoryCap: true, exportState: true })
      const counter = manifest.modules.find((m) => m.name === "counter")!
      expect(counter.moduleHash).toBe(manifestEntry("counter").hash)
      expect(counter.signature).toEqual({ status: "verified", keyId: testOnlyKeyPair.keyId })
      expect(counter.exports.find((e) => e.name === "add")?.type).toEqual({
        kind: "function",
        params: ["i32"],
        results: ["i32"]
      })
      // the module as loaded, 1 MiB (16 pages) for the agent type, 2 MiB (32 pages) as an extra variant
      expect(counter.variants.map((v) => v.key)).toEqual([
        counter.moduleHash,
        `${counter.moduleHash}|cap=16|fuel=-|state`,
        `${counter.moduleHash}|cap=32|fuel=-|state`
      ])
      // the unrewritten variant's digest is the module hash (same convention)
      expect(counter.variants[0]!.digest).toBe(counter.moduleHash)
      // looper has no memory: no cap, fuel instrumented with the agent's fuel
      const looper = manifest.modules.find((m) => m.name === "looper")!
      expect(looper.memory).toBeNull()
      expect(looper.variants[1]!.rewrite).toEqual({ maxMemoryPages: null, fuel: 1_000_000, exportState: true })
      expect(looper.variants[1]!.exports.map((e) => e.name)).toContain(FUEL_EXPORT)
      expect(manifest.agents.find((a) => a.type === "looper")).toMatchObject({
        moduleHash: looper.moduleHash,
        fuel: 1_000_000,
        memoryLimit: MiB
      })
      // every listed file is produced, with the recorded sizes and digests
      for (const m of manifest.modules) {
        const original = files.find((f) => f.path === m.file)!
        expect(original.kind).toBe("data")
        expect(original.bytes).toEqual(readAgent(m.name as "counter"))
        for (const v of m.variants) {
          const f = files.find((x) => x.path === v.file)!
          expect(f.kind).toBe("wasm")
          expect(v.size).toBe(f.bytes.byteLength)
          expect(v.sha256).toBe(sha256(f.bytes))
          expect(v.file).toBe(`wasm/${v.digest}.wasm`)
        }
      }
    })
  )

  it.effect(
    "a variant's bytes are exactly what the domain's rewrite produces at spawn (so its digest is found at run time)",
    () =>
      Effect.gen(function* () {
        const { manifest, files } = yield* standardBundle()
        const text = manifest.modules.find((m) => m.name === "text")!
        const variant = text.variants.find((v) => v.rewrite !== null)!
        expect(variant.rewrite).toEqual({ maxMemoryPages: 256, fuel: null, exportState: true })
        const domainSide = rewriteModule(readAgent("text"), { maxMemoryPages: 256, exportState: true })
        if (!domainSide.ok) throw new Error(domainSide.error.reason)
        expect(files.find((f) => f.path === variant.file)!.bytes).toEqual(domainSide.value.bytes)
        const info = readModule(domainSide.value.bytes)
        if (!info.ok) throw new Error(info.error.reason)
        expect(info.value.memories[0]!.maxPages).toBe(256)
      })
  )

  it.effect("the digest ignores the signature section: the unsigned module's rewrite has the signed one's digest", () =>
    Effect.gen(function* () {
      const signed = yield* standardBundle()
      const unsigned = yield* BundleBuilder.buildBundle({
        modules: [{ name: "counter", version: "1.0.0", bytes: readUnsignedAgent("counter") }],
        agents: [{ type: "counter", module: "counter", memoryLimit: MiB }],
        verifier: verifier(true)
      })
      const a = signed.manifest.modules.find((m) => m.name === "counter")!
      const b = unsigned.manifest.modules[0]!
      expect(b.signature).toEqual({ status: "unsigned-allowed" })
      expect(b.moduleHash).toBe(a.moduleHash)
      expect(b.variants.map((v) => v.digest)).toEqual(a.variants.slice(0, 2).map((v) => v.digest))
      expect(b.variants[1]!.sha256).not.toBe(a.variants[1]!.sha256) // the files differ by the signature section
    })
  )

  it.effect("unsigned or tampered modules are refused with InvalidSignature", () =>
    Effect.gen(function* () {
      const unsigned = yield* Effect.flip(
        BundleBuilder.buildBundle({
          modules: [{ name: "counter", version: "1.0.0", bytes: readUnsignedAgent("counter") }],
          agents: [],
          verifier: verifier()
        })
      )
      expect(unsigned).toBeInstanceOf(InvalidSignature)
      expect(unsigned.message).toMatch(/unsigned/)
      const tampered = readAgent("counter")
      tampered[40] = tampered[40]! ^ 0x01
      const e = yield* Effect.flip(
        BundleBuilder.buildBundle({
          modules: [{ name: "counter", version: "1.0.0", bytes: tampered }],
          agents: [],
          verifier: verifier()
        })
      )
      expect(e).toBeInstanceOf(InvalidSignature)
      const wrongVersion = yield* Effect.flip(
        BundleBuilder.buildBundle({
          modules: [{ name: "counter", version: "2.0.0", bytes: readAgent("counter") }],
          agents: [],
          verifier: verifier()
        })
      )
      expect(wrongVersion.message).toMatch(/metadata mismatch/)
    })
  )

  it.effect("invalid agent configs and dangling references are BundleBuildError", () =>
    Effect.gen(function* () {
      const build = (agents: BundleBuilder.BuildBundleOptions["agents"]) =>
        Effect.flip(BundleBuilder.buildBundle({ modules: [input("counter")], agents, verifier: verifier() }))
      const low = yield* build([{ type: "c", module: "counter", memoryLimit: 1000 }])
      expect(low).toBeInstanceOf(BundleBuildError)
      expect(low.message).toMatch(/memory limit too low/)
      const fuel = yield* build([{ type: "c", module: "counter", memoryLimit: MiB, fuel: -1 }])
      expect(fuel.message).toMatch(/fuel must be a positive integer/)
      const missing = yield* build([{ type: "c", module: "nope", memoryLimit: MiB }])
      expect(missing.message).toMatch(/not in the bundle/)
      const twice = yield* build([
        { type: "c", module: "counter", memoryLimit: MiB },
        { type: "c", module: "counter", memoryLimit: 2 * MiB }
      ])
      expect(twice.message).toMatch(/declared twice/)
    })
  )

  it.effect("a rewrite the module refuses (initial memory above the cap) is BundleBuildError naming the variant", () =>
    Effect.gen(function* () {
      // 40 initial pages (2.5 MiB) cannot be capped to a 1 MiB budget (16 pages)
      const bytes = yield* Effect.promise(() => wat(`(module (memory (export "memory") 40))`))
      const e = yield* Effect.flip(
        BundleBuilder.buildBundle({
          modules: [{ name: "big", version: "1.0.0", bytes }],
          agents: [{ type: "big", module: "big", memoryLimit: MiB }],
          verifier: verifier(true)
        })
      )
      expect(e).toBeInstanceOf(BundleBuildError)
      expect(e.message).toMatch(/cap=16/)
    })
  )
})

describe("decodeManifest", () => {
  it.effect("reads back a built manifest from JSON text", () =>
    Effect.gen(function* () {
      const { manifest } = yield* standardBundle()
      const decoded = yield* BundleManifests.decodeManifest(JSON.stringify(manifest))
      expect(decoded).toEqual(JSON.parse(JSON.stringify(manifest)))
    })
  )

  it.effect("refuses malformed JSON, another format, bad digests, duplicates and dangling agents", () =>
    Effect.gen(function* () {
      const { manifest } = yield* standardBundle()
      const json = JSON.parse(JSON.stringify(manifest))
      const fail = (v: unknown) => Effect.flip(BundleManifests.decodeManifest(v))
      expect(yield* fail("{")).toBeInstanceOf(ManifestInvalid)
      expect((yield* fail({ ...json, version: 2 })).message).toMatch(/does not match format/)
      const badDigest = structuredClone(json)
      badDigest.modules[0].variants[0].digest = "xyz"
      expect((yield* fail(badDigest)).message).toMatch(/does not match format/)
      const dup = structuredClone(json)
      dup.modules.push(dup.modules[0])
      expect((yield* fail(dup)).message).toMatch(/listed twice/)
      const dangling = structuredClone(json)
      dangling.agents[0].moduleHash = "0".repeat(64)
      expect((yield* fail(dangling)).message).toMatch(/not bundled/)
    })
  )
})
