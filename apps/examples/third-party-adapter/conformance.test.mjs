// The published conformance suite on the third-party engine, from this project's own vitest.
import { suite } from "@agent-runtime/conformance"
import { afterAll, expect } from "vitest"
import { MyEngine } from "./my-engine.mjs"

suite("my-engine", MyEngine.layer)

// the suite compiled the fixture agents with this engine, not another one
afterAll(() => {
  expect(MyEngine.compiledModules()).toBeGreaterThan(0)
})
