/**
 * The conformance suite INSIDE real workerd against engine-edge: the test
 * Worker (`src/conformance-worker.ts`) registers `suite("edge (workerd)", …)`
 * with the runner of `src/testing/VitestShim.ts`, runs every case in the
 * isolate and returns the results; this test asserts them case by case.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { build, startWorkerd, type Workerd } from "./support/workerd.js"

interface TestResult {
  readonly name: string
  readonly state: "pass" | "fail" | "skip"
  readonly durationMs: number
  readonly error?: string
}

let workerd: Workerd
let results: ReadonlyArray<TestResult>

beforeAll(async () => {
  build("conformance")
  workerd = await startWorkerd("conformance", "/ready")
  const response = await fetch(`${workerd.url}/run`, { signal: AbortSignal.timeout(100_000) })
  const body = (await response.json()) as { results?: ReadonlyArray<TestResult>; error?: string }
  if (body.results === undefined) throw new Error(`the conformance Worker failed: ${body.error}\n${workerd.output()}`)
  results = body.results
}, 120_000)

afterAll(async () => {
  await workerd?.stop()
})

describe("conformance suite inside workerd (engine-edge)", () => {
  it("ran the whole case list", () => {
    expect(results.length).toBeGreaterThanOrEqual(50)
    expect(new Set(results.map((r) => r.name)).size).toBe(results.length)
    expect(results.every((r) => r.name.startsWith("conformance: edge (workerd) > "))).toBe(true)
  })

  it("every case passes, except those the capability record rules out", () => {
    const failed = results.filter((r) => r.state === "fail")
    expect(failed.map((r) => `${r.name}\n    ${r.error}`)).toEqual([])
    // engine-edge: no preemption, fuel on, no runtime compilation — exactly the five cases gated on those flags are
    // skipped (two CPU-limit cases, the start function held to the agent's timeoutMs, and the two hostile-module
    // cases whose modules are built at run time: the metered loop and the caller-supplied table)
    const skipped = results.filter((r) => r.state === "skip").map((r) => r.name)
    expect(skipped).toHaveLength(5)
    expect(skipped.some((n) => /the valid twin of the escape/.test(n))).toBe(true)
    expect(skipped.some((n) => /a caller-supplied table is checked against the budget/.test(n))).toBe(true)
    expect(skipped.some((n) => /preemption: an infinite loop is stopped at its deadline/.test(n))).toBe(true)
    expect(skipped.some((n) => /can neither preempt nor meter/.test(n))).toBe(true)
    expect(skipped.some((n) => /start function that never returns is stopped at the agent's timeoutMs/.test(n))).toBe(
      true
    )
  })

  it("the fuel case ran (and passed) inside workerd", () => {
    const fuel = results.find((r) => /fuel: an infinite loop runs out of fuel/.test(r.name))
    expect(fuel?.state).toBe("pass")
  })

  it("the table bomb case ran (and passed) inside workerd: the bundle carries the table-capped variant", () => {
    const tables = results.find((r) => /table\.grow\(9 999 999\) returns -1/.test(r.name))
    expect(tables?.state).toBe("pass")
  })
})

describe("the in-workerd runner reports failures (self-test)", () => {
  it("pass, fail, skip and timeout are reported as such", async () => {
    const response = await fetch(`${workerd.url}/selftest`, { signal: AbortSignal.timeout(30_000) })
    const { results } = (await response.json()) as { results: ReadonlyArray<TestResult> }
    const state = Object.fromEntries(results.map((r) => [r.name, r.state]))
    expect(state).toEqual({
      "selftest > passes": "pass",
      "selftest > fails on a wrong value": "fail",
      "selftest > fails on a wrong shape": "fail",
      "selftest > effect passes with the TestClock": "pass",
      "selftest > effect fails": "fail",
      "selftest > skipped by skipIf": "skip",
      "selftest > times out": "fail",
      "selftest > nested > passes too": "pass"
    })
    expect(results.find((r) => r.name === "selftest > fails on a wrong value")?.error).toMatch(/expected 1 to be 2/)
    expect(results.find((r) => r.name === "selftest > times out")?.error).toMatch(/timed out after 100 ms/)
  })
})
