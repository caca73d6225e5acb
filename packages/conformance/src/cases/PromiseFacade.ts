/**
 * The Promise facade (`createRuntime`): typed rejections and the event listener.
 */
import {
  AgentNotFound,
  agentId,
  createRuntime,
  makeMetadata,
  type RuntimeEvent,
  SignatureMismatch
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { vi } from "vitest"
import { MiB, verifierLayer } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

export const promiseFacadeCases = ({ engineLayer, fixtures, settings }: SuiteContext) =>
  describe("Promise facade (createRuntime)", () => {
    it("runs agents with async methods; failures reject with the typed error classes; onEvent delivers events", async () => {
      const runtime = await createRuntime({ engine: engineLayer, verifier: verifierLayer(), settings })
      try {
        const events: Array<RuntimeEvent> = []
        const unsubscribe = await runtime.onEvent((e) => void events.push(e))
        const bytes = await Effect.runPromise(fixtures.bytes("counter"))
        const moduleId = await runtime.loadModule(
          bytes,
          makeMetadata({ name: "counter", version: fixtures.version("counter") })
        )
        const info = await runtime.spawnAgent(agentId("p1"), moduleId, { memoryLimit: MiB })
        expect(info.state).toBe("Running")
        expect(await runtime.invoke(agentId("p1"), "add", [41])).toEqual([41])
        expect(await runtime.invoke(agentId("p1"), "increment")).toEqual([42])

        const missing = await runtime.invoke(agentId("nobody"), "get").then(
          () => undefined,
          (e: unknown) => e
        )
        expect(missing).toBeInstanceOf(AgentNotFound)
        expect(missing).toBeInstanceOf(Error)
        expect(missing).toMatchObject({ _tag: "AgentNotFound", agentId: "nobody" })
        await expect(runtime.invoke(agentId("p1"), "add", ["abc" as never])).rejects.toBeInstanceOf(SignatureMismatch)
        await expect(runtime.loadModule(bytes, makeMetadata({ name: "text", version: "1.0.0" }))).rejects.toMatchObject(
          { _tag: "InvalidSignature" }
        )
        await expect(runtime.invoke(agentId("p1"), "nope")).rejects.toMatchObject({ _tag: "FunctionNotFound" })

        await vi.waitFor(() =>
          expect(events.map((e) => e._tag)).toEqual(expect.arrayContaining(["ModuleLoaded", "AgentSpawned"]))
        )
        unsubscribe()
        expect((await runtime.stats()).agents).toBe(1)
        expect(await runtime.agents()).toHaveLength(1)
      } finally {
        await runtime.dispose()
      }
    })
  })
