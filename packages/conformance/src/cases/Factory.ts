/**
 * `AgentFactory` (spec "Domain Services / AgentFactory"): agents by type
 * through the `ModuleRegistry` and `ConfigProvider` ports.
 */
import {
  AgentFactories,
  AgentFactory,
  agentId,
  agentType,
  ConfigProviders,
  ModuleRegistries,
  ModuleRegistry
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { MiB } from "../Harness.js"
import type { SuiteContext } from "./Context.js"

const factoryLayer = AgentFactories.layer.pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      ModuleRegistries.layerMemory,
      ConfigProviders.layer({ counter: { memoryLimit: 2 * MiB } }, { memoryLimit: 4 * MiB })
    )
  )
)

export const factoryCases = ({ run }: SuiteContext) =>
  describe("AgentFactory", () => {
    it.effect(
      "createDefault by agent type via ModuleRegistry + ConfigProvider; unknown type → ModuleNotFound; createCustom validates",
      () =>
        run(({ rt, load, call }) =>
          Effect.gen(function* () {
            const factory = yield* AgentFactory
            const registry = yield* ModuleRegistry
            yield* registry.register(agentType("counter"), yield* load("counter"))
            yield* registry.register(agentType("text"), yield* load("text"))
            const c = yield* factory.createDefault(agentType("counter"))
            expect(c.agentId).toMatch(/^counter-[0-9a-f]{8}$/)
            expect(c.budget.limit).toBe(2 * MiB)
            expect(c.state).toBe("Running")
            expect(yield* call(c.agentId, "increment")).toEqual([1])
            const t = yield* factory.createDefault(agentType("text"), agentId("words"))
            expect(t).toMatchObject({ agentId: "words", budget: { limit: 4 * MiB } })
            expect(t.moduleId).toBe(yield* registry.getModuleForType(agentType("text")))
            const unknown = yield* Effect.flip(factory.createDefault(agentType("unknown")))
            expect(unknown).toMatchObject({ _tag: "ModuleNotFound" })
            expect(unknown.message).toMatch(/unknown/)
            const custom = yield* Effect.flip(
              factory.createCustom(agentId("x"), c.moduleId, { memoryLimit: 513 * MiB })
            )
            expect(custom).toMatchObject({ _tag: "InvalidConfig" })
            const ok = yield* factory.createCustom(agentId("x"), c.moduleId, { memoryLimit: MiB })
            expect(ok.budget.limit).toBe(MiB)
            expect((yield* rt.agents).map((a) => a.agentId).sort()).toEqual([c.agentId, "words", "x"].sort())
          }).pipe(Effect.provide(factoryLayer))
        )
    )
  })
