// README example: the Promise facade. Run: pnpm --filter @agent-runtime/examples promise-example
import { readAgent } from "@agent-runtime/agents"
import { agentId, AgentNotRunning, createRuntime, makeMetadata, MemoryBudget } from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"

export const main = async () => {
  const runtime = await createRuntime({
    engine: NativeEngine.layer,
    verifier: Signing.layer({ trustStore: testOnlyTrustStore() })
  })
  const moduleId = await runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
  await runtime.spawnAgent(agentId("c1"), moduleId, { memoryLimit: 16 * MemoryBudget.MiB })
  const [count] = await runtime.invoke(agentId("c1"), "increment", [])
  await runtime.pause(agentId("c1"))
  const refused = await runtime.invoke(agentId("c1"), "increment", []).catch((e: unknown) => e)
  await runtime.dispose()
  return { count, refusedWhilePaused: refused instanceof AgentNotRunning }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(console.log) // { count: 1, refusedWhilePaused: true }
}
