/**
 * Test helpers: build a real bundle from the signed fixture agents (what
 * `agent-runtime bundle` does), "install" it the way a Worker's bundler does
 * (each `.wasm` file becomes a `WebAssembly.Module` before the engine runs),
 * and make Node behave like an edge runtime: code generation from bytes
 * throws as in workerd ("Wasm code generation disallowed by embedder").
 */
import { type AgentName, readAgent } from "@agent-runtime/agents"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import { type Bundle, BundleBuilder, type BundleContents } from "../src/bundle/index.js"

export const MiB = 1_048_576

export const verifier = (allowUnsigned = false) => ({
  verify: (bytes: Uint8Array, meta: { name: string; version: string; signature?: Uint8Array | undefined }) =>
    Signing.verifyModule(bytes, meta, { trustStore: testOnlyTrustStore(), allowUnsigned })
})

export const input = (name: AgentName) => ({ name, version: "1.0.0", bytes: readAgent(name) })

/** A bundle of counter, looper, text, grower with one agent type each (and a few extra variants). */
export const standardBundle = (): Effect.Effect<Bundle, unknown> =>
  BundleBuilder.buildBundle({
    modules: [input("counter"), input("looper"), input("text"), input("grower")],
    agents: [
      { type: "counter", module: "counter", memoryLimit: MiB },
      { type: "looper", module: "looper", memoryLimit: MiB, fuel: 1_000_000 },
      { type: "text", module: "text", memoryLimit: 16 * MiB },
      { type: "grower", module: "grower", memoryLimit: MiB }
    ],
    variants: [{ module: "counter", memoryLimit: 2 * MiB }],
    verifier: verifier()
  })

/** What a Worker's bundler does: every `wasm` file becomes a `WebAssembly.Module`, `data` files stay bytes. */
export const install = (bundle: Bundle): BundleContents => {
  const modules: Record<string, WebAssembly.Module> = {}
  const data: Record<string, Uint8Array> = {}
  for (const f of bundle.files) {
    if (f.kind === "wasm") modules[f.path] = new WebAssembly.Module(f.bytes as Uint8Array<ArrayBuffer>)
    else data[f.path] = f.bytes
  }
  return { manifest: JSON.parse(JSON.stringify(bundle.manifest)), modules, data }
}

export const EMBEDDER_MESSAGE = "WebAssembly.Module(): Wasm code generation disallowed by embedder"

/**
 * Makes this process refuse code generation from bytes like workerd does:
 * `new WebAssembly.Module(bytes)`, `WebAssembly.compile(bytes)` and
 * `WebAssembly.instantiate(bytes)` throw / reject; instantiating a
 * `WebAssembly.Module` still works. Returns a function that undoes it.
 */
export const forbidRuntimeCompile = (): (() => void) => {
  const original = {
    Module: WebAssembly.Module,
    compile: WebAssembly.compile,
    instantiate: WebAssembly.instantiate
  }
  const refuse = () => new WebAssembly.CompileError(EMBEDDER_MESSAGE)
  const wasm = WebAssembly as unknown as Record<string, unknown>
  wasm["Module"] = new Proxy(original.Module, {
    construct() {
      throw refuse()
    }
  })
  wasm["compile"] = () => Promise.reject(refuse())
  wasm["instantiate"] = (source: unknown, imports?: WebAssembly.Imports) =>
    source instanceof original.Module ? original.instantiate(source, imports) : Promise.reject(refuse())
  return () => {
    wasm["Module"] = original.Module
    wasm["compile"] = original.compile
    wasm["instantiate"] = original.instantiate
  }
}
