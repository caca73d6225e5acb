import { describe, expect, it } from "@effect/vitest"
import { existsSync } from "node:fs"
import { browserSuite, chromiumPath, resolve } from "../src/index.js"
import { checkShape } from "./support.js"

const smoke = { quick: true, smoke: true }
const hasChromium = existsSync(chromiumPath())

describe("browser suite (Chromium, smoke counts)", () => {
  it.skipIf(!hasChromium)(
    "measures engine-browser in-page and in workers next to the raw baselines of the same page",
    async () => {
      const result = await browserSuite(smoke)
      checkShape(result)
      const names = result.rows.map((r) => r.name)
      expect(names).toEqual([
        "direct export call: no-op",
        "direct export call: add(i32,i32)",
        "in-page runtime.invoke: no-op",
        "in-page runtime.invoke: add(i32,i32)",
        "in-page runtime.invoke: no-op (Effect's default scheduler)",
        "raw postMessage round trip (hot)",
        "raw SAB+Atomics round trip (hot)",
        "raw SAB+Atomics round trip (idle)",
        "raw SAB round trip, both sides spinning (the limit)",
        "worker (shared channel) runtime.invoke no-op (hot agent)",
        "worker (shared channel) runtime.invoke no-op (hot agent) vs sleeping raw",
        "worker (shared channel) runtime.invoke add(i32,i32) (hot agent)",
        "worker (shared channel) runtime.invoke no-op (idle agent)"
      ])
      expect(result.notes.some((n) => n.includes("crossOriginIsolated: true"))).toBe(true)
      const idle = resolve([result]).find((r) => r.name.endsWith("(idle agent)"))
      expect(idle?.baseline).toBe("raw SAB+Atomics round trip (idle)")
      expect(idle?.target?.text).toBe("≤ 1.3× raw Atomics round trip")
      expect(idle !== undefined && idle.ratio !== null && idle.ratio > 0).toBe(true)
    },
    60_000
  )

  it("without Chromium the suite is skipped with a note, not failed", async () => {
    const before = process.env["CHROMIUM_PATH"]
    process.env["CHROMIUM_PATH"] = "/nonexistent/chromium"
    try {
      const result = await browserSuite(smoke)
      expect(result.rows).toEqual([])
      expect(result.notes).toEqual(["skipped: no Chromium at /nonexistent/chromium (set CHROMIUM_PATH)"])
    } finally {
      if (before === undefined) delete process.env["CHROMIUM_PATH"]
      else process.env["CHROMIUM_PATH"] = before
    }
  })
})
