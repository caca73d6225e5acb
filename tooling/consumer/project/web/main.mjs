// (b) A page built by Vite from the installed tarballs: the counter agent on engine-browser
// (module Web Workers when the page is cross-origin isolated). Publishes its outcome as
// `window.__result` (JSON) for the Chromium check in run.mjs.
import { AgentRuntime, AgentRuntimes, agentId, makeMetadata, MemoryBudget } from "@agent-runtime/domain"
import { BrowserEngine } from "@agent-runtime/engine-browser"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { Effect, Layer } from "effect"

const program = Effect.gen(function* () {
  const bytes = new Uint8Array(yield* Effect.promise(() => fetch("/counter.wasm").then((r) => r.arrayBuffer())))
  const runtime = yield* AgentRuntime
  const engine = yield* BrowserEngine.BrowserEngine
  const moduleId = yield* runtime.loadModule(bytes, makeMetadata({ name: "counter", version: "1.0.0" }))
  yield* runtime.spawnAgent(agentId("web-1"), moduleId, { memoryLimit: 16 * MemoryBudget.MiB })
  const [total] = yield* runtime.invoke(agentId("web-1"), "add", [41])
  return { total, mode: engine.mode, crossOriginIsolated: globalThis.crossOriginIsolated === true }
}).pipe(
  Effect.provide(
    AgentRuntimes.layerMemory().pipe(
      Layer.provideMerge(Layer.mergeAll(BrowserEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
    )
  )
)

Effect.runPromise(program).then(
  (result) => {
    window.__result = JSON.stringify(result)
    document.getElementById("out").textContent = window.__result
  },
  (error) => {
    window.__result = JSON.stringify({ error: String(error?.message ?? error) })
    document.getElementById("out").textContent = window.__result
  }
)
