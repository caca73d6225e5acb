import { PlatformServices } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { NodeEngine } from "../src/index.js"
import { bytesOf } from "@agent-runtime/test-support/mutate"

const webCrypto = async (bytes: Uint8Array): Promise<string> =>
  Buffer.from(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>)).toString("hex")

describe("Node's PlatformServices (node:crypto SHA-256 for loadModule's content addressing)", () => {
  it("sha256Hex is WebCrypto's SHA-256 in lowercase hex, on random inputs of every size class", async () => {
    let seed = 0x9e3779b9
    const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0)
    const lengths = [0, 1, 55, 56, 64, ...Array.from({ length: 24 }, () => next() % 40_000), 1_048_583]
    for (const length of lengths) {
      const bytes = bytesOf(length, next())
      const digest = NodeEngine.sha256Hex(bytes)
      expect(digest, `length ${length}`).toMatch(/^[0-9a-f]{64}$/)
      expect(digest, `length ${length}`).toBe(await webCrypto(bytes))
    }
    // a view into a larger buffer hashes the view only; a view of a SharedArrayBuffer hashes too
    const big = bytesOf(10_000, 5)
    expect(NodeEngine.sha256Hex(big.subarray(100, 4_100))).toBe(await webCrypto(big.slice(100, 4_100)))
    const shared = new Uint8Array(new SharedArrayBuffer(big.length))
    shared.set(big)
    expect(NodeEngine.sha256Hex(shared)).toBe(await webCrypto(big))
  })

  it.effect("layerPlatform provides it", () =>
    Effect.gen(function* () {
      expect((yield* PlatformServices).sha256Hex).toBe(NodeEngine.sha256Hex)
    }).pipe(Effect.provide(NodeEngine.layerPlatform))
  )

  it.effect("the Node engine's layer provides it beside the engine; without a layer there is none", () =>
    Effect.gen(function* () {
      expect((yield* PlatformServices).sha256Hex).toBeUndefined()
      const provided = yield* Effect.provide(Effect.service(PlatformServices), NodeEngine.layerWith({ maxThreads: 1 }))
      expect(provided.sha256Hex).toBe(NodeEngine.sha256Hex)
    })
  )
})
