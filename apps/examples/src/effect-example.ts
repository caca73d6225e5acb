// README example: the Effect API. Run: pnpm --filter @agent-runtime/examples effect-example
import { readAgent } from "@agent-runtime/agents"
import { AgentRuntime, AgentRuntimes, agentId, makeMetadata, MemoryBudget } from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { Effect, Layer } from "effect"

export const program = Effect.gen(function* () {
  const runtime = yield* AgentRuntime
  const moduleId = yield* runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
  yield* runtime.spawnAgent(agentId("counter-1"), moduleId, { memoryLimit: 16 * MemoryBudget.MiB })
  const [total] = yield* runtime.invoke(agentId("counter-1"), "add", [41])
  const mistake = yield* Effect.flip(runtime.invoke(agentId("counter-1"), "add", [41n]))
  const [health] = yield* runtime.checkHealth
  return { total, mistake: mistake._tag, health: health?.status }
}).pipe(
  Effect.provide(
    AgentRuntimes.layerMemory().pipe(
      Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
    )
  )
)

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.runPromise(program).then(console.log) // { total: 41, mistake: 'SignatureMismatch', health: 'Healthy' }
}
