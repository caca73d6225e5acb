import { describe, expect, it } from "@effect/vitest"
import type { AgentConfig } from "../../src/AgentConfig.js"
import { InvalidConfig } from "../../src/RuntimeError.js"
import type { RuntimeState } from "../../src/internal/RuntimeState.js"
import { withDefaultFuel } from "../../src/internal/Spawning.js"

/** The parts of the state `withDefaultFuel` reads: an engine that meters fuel and cannot preempt (the native engine). */
const stateWith = (defaultFuel: number | false) =>
  ({
    engine: {
      platform: "Native",
      capabilities: { preemptiveTimeout: false, fuel: true, runtimeCompile: true }
    },
    settings: { limits: { defaultFuel } }
  }) as unknown as RuntimeState

describe("withDefaultFuel", () => {
  it("adds the default fuel as { ...config, fuel } would: same keys, same order, same values; the input is untouched", () => {
    const configs: Array<AgentConfig> = [
      { memoryLimit: 1_048_576 },
      { memoryLimit: 2_097_152, autoStart: false, critical: true },
      // a `fuel` key present but undefined keeps its place
      { memoryLimit: 1_048_576, fuel: undefined, autoStart: true } as AgentConfig
    ]
    for (const config of configs) {
      const before = JSON.stringify(Object.entries(config))
      const got = withDefaultFuel(stateWith(5_000), config)
      const expected = { ...config, fuel: 5_000 }
      expect(got).not.toBe(config)
      expect(Object.entries(got as AgentConfig)).toEqual(Object.entries(expected))
      expect(JSON.stringify(Object.entries(config))).toBe(before)
    }
  })

  it("keeps a config that bounds its calls, and refuses when the default is disabled", () => {
    const bounded: AgentConfig = { memoryLimit: 1_048_576, fuel: 10 }
    expect(withDefaultFuel(stateWith(5_000), bounded)).toBe(bounded)
    expect(withDefaultFuel(stateWith(false), { memoryLimit: 1_048_576 })).toBeInstanceOf(InvalidConfig)
  })
})
