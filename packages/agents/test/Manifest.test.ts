import { createHash } from "node:crypto"
import { existsSync } from "node:fs"
import { isAbsolute } from "node:path"
import { describe, expect, it } from "@effect/vitest"
import { moduleHash, SIGNATURE_SECTION, verifyModule } from "@agent-runtime/signing"
import { testOnlyKeyPair, testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import {
  agentFixture,
  agentFixtures,
  agentNames,
  agentPath,
  agentSources,
  fixturesIn,
  manifest,
  manifestEntry,
  readAgent,
  readUnsignedAgent,
  unsignedAgentPath
} from "../src/index.js"

const sha256 = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex")

describe("catalog and manifest", () => {
  it("lists every agent the issue asks for, built in catalog order", () => {
    expect(agentNames).toEqual([
      "counter",
      "text",
      "leaky",
      "flaky",
      "trapper",
      "lifecycle",
      "looper",
      "multi",
      "no-memory",
      "host-caller",
      "grower",
      "start-trap"
    ])
    expect(manifest().map((e) => e.name)).toEqual(agentNames)
    for (const source of agentSources) {
      expect(source.version).toBe("1.0.0")
      expect(manifestEntry(source.name).source).toBe(source.source)
    }
  })

  it("records sizes, export names and absolute paths that match the files", () => {
    for (const name of agentNames) {
      const entry = manifestEntry(name)
      const signed = readAgent(name)
      const unsigned = readUnsignedAgent(name)
      expect(entry.bytes).toBe(signed.byteLength)
      expect(entry.unsignedBytes).toBe(unsigned.byteLength)
      expect(entry.exports).toEqual(WebAssembly.Module.exports(new WebAssembly.Module(signed)).map((e) => e.name))
      const fixture = agentFixture(name)
      expect(isAbsolute(fixture.file)).toBe(true)
      expect(fixture.file).toBe(agentPath(name))
      expect(existsSync(agentPath(name))).toBe(true)
      expect(existsSync(unsignedAgentPath(name))).toBe(true)
      expect(fixture).toEqual({ name, version: "1.0.0", file: agentPath(name), exports: entry.exports })
    }
    expect(agentFixtures().map((f) => f.name)).toEqual(agentNames)
  })

  it("names the build command when build/ is missing", () => {
    const missing = fixturesIn("/nonexistent/agent-runtime/build/")
    expect(() => missing.manifest()).toThrow(
      /build\/manifest\.json is missing.*pnpm --filter @agent-runtime\/agents fixtures/
    )
    expect(() => missing.readAgent("counter")).toThrow(
      /build\/counter\.wasm is missing.*pnpm --filter @agent-runtime\/agents fixtures/
    )
    expect(() => missing.readUnsignedAgent("text")).toThrow(/pnpm --filter @agent-runtime\/agents fixtures/)
    expect(missing.agentPath("counter")).toBe("/nonexistent/agent-runtime/build/counter.wasm")
  })

  it("rejects an unknown agent name", () => {
    expect(() => readAgent("nope")).toThrow(/unknown agent "nope"/)
    expect(() => agentPath("nope")).toThrow(/unknown agent/)
  })

  it("exposes the lifecycle exports the runtime looks for", () => {
    const exportsOf = (name: string) => manifestEntry(name).exports
    expect(exportsOf("lifecycle")).toEqual(
      expect.arrayContaining(["_initialize", "_cleanup", "_health_check", "_recover"])
    )
    expect(exportsOf("flaky")).toEqual(expect.arrayContaining(["_health_check", "_recover"]))
    expect(exportsOf("text")).toEqual(expect.arrayContaining(["alloc", "dealloc", "memory"]))
    expect(exportsOf("trapper")).not.toContain("_health_check")
    // AssemblyScript agents import nothing from the host (abort is compiled to `unreachable`)
    for (const source of agentSources.filter((s) => s.kind === "assemblyscript")) {
      expect(WebAssembly.Module.imports(new WebAssembly.Module(readAgent(source.name)))).toEqual([])
    }
  })
})

describe("signatures", () => {
  it("every module carries exactly one signature section; the unsigned copy none", () => {
    for (const name of agentNames) {
      const signed = new WebAssembly.Module(readAgent(name))
      const unsigned = new WebAssembly.Module(readUnsignedAgent(name))
      expect(WebAssembly.Module.customSections(signed, SIGNATURE_SECTION)).toHaveLength(1)
      expect(WebAssembly.Module.customSections(unsigned, SIGNATURE_SECTION)).toHaveLength(0)
      expect(manifestEntry(name).signed).toBe(true)
    }
  })

  it.effect("the manifest hash is the ModuleHash of the signed and of the unsigned bytes", () =>
    Effect.gen(function* () {
      for (const name of agentNames) {
        const entry = manifestEntry(name)
        expect(entry.hash).toMatch(/^[0-9a-f]{64}$/)
        expect(yield* moduleHash(readAgent(name))).toBe(entry.hash)
        expect(yield* moduleHash(readUnsignedAgent(name))).toBe(entry.hash)
        expect(sha256(readUnsignedAgent(name))).toBe(entry.hash)
      }
    })
  )

  it.effect("verifies against the test-only trust store for its own name and version only", () =>
    Effect.gen(function* () {
      const options = { trustStore: testOnlyTrustStore() }
      for (const name of agentNames) {
        const verified = yield* verifyModule(readAgent(name), { name, version: "1.0.0" }, options)
        expect(verified.keyId).toBe(testOnlyKeyPair.keyId)
        expect(verified.hash).toBe(manifestEntry(name).hash)
      }
      const wrongName = yield* Effect.flip(
        verifyModule(readAgent("counter"), { name: "text", version: "1.0.0" }, options)
      )
      expect(wrongName.reason).toMatch(/metadata mismatch/)
      const unsigned = yield* Effect.flip(
        verifyModule(readUnsignedAgent("counter"), { name: "counter", version: "1.0.0" }, options)
      )
      expect(unsigned.reason).toBe("unsigned")
    })
  )

  it.effect("a tampered byte outside the signature section fails verification", () =>
    Effect.gen(function* () {
      const bytes = readAgent("counter").slice()
      const unsignedLength = readUnsignedAgent("counter").byteLength
      bytes[unsignedLength - 1] = bytes[unsignedLength - 1]! ^ 0x01
      const error = yield* Effect.flip(
        verifyModule(bytes, { name: "counter", version: "1.0.0" }, { trustStore: testOnlyTrustStore() })
      )
      expect(error._tag).toBe("InvalidSignature")
      expect(error.reason).toMatch(/tampered/)
    })
  )
})
