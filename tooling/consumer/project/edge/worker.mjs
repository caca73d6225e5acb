// (c) The Worker: a runtime on the edge engine over the build-time bundle; GET / loads the
// counter agent, spawns it and answers `{ total }` of `add(41)`.
import { AgentRuntime, AgentRuntimes, agentId, makeMetadata } from "@agent-runtime/domain"
import { EdgeEngine } from "@agent-runtime/engine-edge"
import { BundleRegistry, BundleVerifier } from "@agent-runtime/engine-edge/bundle"
import { bundle } from "agent-runtime:bundle"
import { Effect, Layer } from "effect"

const answer = Effect.gen(function* () {
  const registry = yield* BundleRegistry.make(bundle)
  const type = registry.agent("counter")
  const engine = Layer.mergeAll(EdgeEngine.layer(registry), BundleVerifier.layer(registry))
  return yield* Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const bytes = registry.originalBytes(type.moduleHash)
    const moduleId = yield* runtime.loadModule(bytes, makeMetadata({ name: type.name, version: type.version }))
    yield* runtime.spawnAgent(agentId("edge-1"), moduleId, { memoryLimit: type.memoryLimit })
    const [total] = yield* runtime.invoke(agentId("edge-1"), "add", [41])
    return { total, platform: "Edge" }
  }).pipe(Effect.provide(AgentRuntimes.layerMemory({ limits: registry.manifest.limits }).pipe(Layer.provide(engine))))
})

export default {
  async fetch() {
    try {
      return Response.json(await Effect.runPromise(answer))
    } catch (e) {
      return Response.json({ error: e instanceof Error ? e.message : String(e) }, { status: 500 })
    }
  }
}
