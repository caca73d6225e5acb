/**
 * End to end in real Chromium: durable agents survive a page reload in the
 * middle of an invocation (issue 5, "Bad input": "a page reload
 * mid-invocation (snapshots in IndexedDB survive)"; "IndexedDB unavailable
 * (private mode) → a clear fallback to memory repositories, never an
 * unhandled rejection").
 *
 * The durable runtime of the page snapshots after every successful call
 * (`persistence.snapshotAfterCalls`) into IndexedDB and restores on start
 * (`persistence.restoreOnStart`). Everything is read through the page: the
 * counts on the agent cards, the storage badge, the event log. Writes
 * `test-output/durable-after-reload.png` (not committed).
 */
import { mkdirSync } from "node:fs"
import type { BrowserContext, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Demo, output, type Problems, startDemo, watchProblems } from "./support.js"

let demo: Demo

beforeAll(async () => {
  demo = await startDemo()
})

afterAll(async () => {
  await demo?.close()
})

/** A fresh browser context (its own, empty IndexedDB) with a watched page. */
const open = async (init?: () => void): Promise<{ context: BrowserContext; page: Page; problems: Problems }> => {
  const context = await demo.browser.newContext({ viewport: { width: 1440, height: 1000 } })
  const page = await context.newPage()
  const problems = await watchProblems(page)
  if (init !== undefined) await page.addInitScript(init)
  return { context, page, problems }
}

const ready = (page: Page) => page.waitForSelector("body[data-ready=true]", { timeout: 30_000 })

/** The counts the page shows, by agent id. */
const counts = (page: Page) =>
  page.evaluate(
    () =>
      Object.fromEntries(
        [...document.querySelectorAll<HTMLElement>(".agent")].flatMap((card) => {
          const count = card.querySelector<HTMLElement>(".count")?.dataset["count"]
          return count === undefined ? [] : [[card.dataset["agent"]!, Number(count)]]
        })
      ) as Record<string, number>
  )

const waitForCount = (page: Page, id: string, n: number) =>
  page.waitForSelector(`[data-agent="${id}"] .count[data-count="${n}"]`, { timeout: 30_000 })

const spawn = async (page: Page, kind: string, n: number, durable: boolean) => {
  await page.selectOption("#kind", kind)
  await page.fill("#count", String(n))
  await page.setChecked("#durable", durable)
  await page.click("#spawn")
  await page.waitForFunction(
    (want) => document.getElementById("status")!.textContent === want,
    `spawned ${n} ${durable ? "durable " : ""}${kind}`
  )
}

const invokeSelected = async (page: Page, id: string, times: number) => {
  await page.click(`[data-agent="${id}"]`)
  for (let k = 0; k < times; k++) {
    const before = (await counts(page))[id]!
    await page.click("#invoke-one")
    await waitForCount(page, id, before + 1)
  }
}

const expectNoProblems = async (problems: Problems) => {
  expect(problems.pageErrors).toEqual([])
  expect(problems.consoleErrors).toEqual([])
  expect(await problems.rejections()).toEqual([])
}

describe("durable agents across a page reload", () => {
  it("a reload during a runaway call brings the durable counters back with their last acknowledged counts, and the page keeps working", async () => {
    const { context, page, problems } = await open()
    await page.goto(demo.url)
    await ready(page)
    expect(await page.locator("[data-badge=storage] b").innerText()).toBe("IndexedDB")
    expect(await page.locator("[data-event=Restored]").first().innerText()).toMatch(/restored 0 agents from IndexedDB/)

    // three durable counters, two ordinary ones
    await spawn(page, "counter", 3, true)
    await spawn(page, "counter", 2, false)
    await page.waitForFunction(() => document.querySelectorAll(".agent[data-state=Running] .count").length === 5)
    expect(await page.locator(".agent[data-durable=true]").count()).toBe(3)
    expect(await page.locator("#kpi-durable").innerText()).toBe("3")

    // known counts: everyone twice, then counter-d1 three more times and counter-d2 once more
    for (let round = 1; round <= 2; round++) {
      await page.click("#invoke")
      for (const id of ["counter-d1", "counter-d2", "counter-d3", "counter-1", "counter-2"])
        await waitForCount(page, id, round)
    }
    await invokeSelected(page, "counter-d1", 3)
    await invokeSelected(page, "counter-d2", 1)
    expect(await counts(page)).toEqual({
      "counter-d1": 5,
      "counter-d2": 3,
      "counter-d3": 2,
      "counter-1": 2,
      "counter-2": 2
    })

    // a runaway call is spinning in a worker when the page goes away
    await page.click("#runaway")
    await page.waitForFunction(() => /runaway call running/.test(document.getElementById("status")!.textContent ?? ""))
    await page.waitForSelector("[data-agent=looper-1][data-state=Running]")
    await page.waitForTimeout(300)
    expect(await page.locator("#status").innerText()).toMatch(/runaway call running/)
    await page.reload()
    await ready(page)

    // the durable agents are back with the counts they acknowledged; the others (and the looper) are gone
    await page.waitForFunction(() => document.querySelectorAll(".agent").length === 3)
    expect(await counts(page)).toEqual({ "counter-d1": 5, "counter-d2": 3, "counter-d3": 2 })
    expect(await page.locator(".agent[data-durable=true][data-state=Running]").count()).toBe(3)
    expect(await page.locator("[data-agent=looper-1]").count()).toBe(0)
    expect(await page.locator("[data-event=Restored]").first().innerText()).toMatch(
      /restored 3 agents from IndexedDB \(counter-d\d=\d, counter-d\d=\d, counter-d\d=\d\)/
    )
    expect(await page.locator("[data-badge=storage] b").innerText()).toBe("IndexedDB")
    mkdirSync(output, { recursive: true })
    await page.screenshot({ path: `${output}durable-after-reload.png`, fullPage: true })

    // it works: calls continue from the restored values, new durable agents get fresh ids
    await invokeSelected(page, "counter-d1", 1)
    await page.click("#invoke")
    await waitForCount(page, "counter-d1", 7)
    await waitForCount(page, "counter-d2", 4)
    await waitForCount(page, "counter-d3", 3)
    await spawn(page, "counter", 1, true)
    await page.waitForSelector('[data-agent=counter-d4] .count[data-count="0"]')

    // a reload under traffic: every count the page saw acknowledged comes back (calls in flight may add to it)
    await page.check("#traffic")
    await page.waitForFunction(
      () => Number(document.querySelector("[data-agent=counter-d4] .count")?.getAttribute("data-count")) >= 5
    )
    const seen = await counts(page)
    await page.reload()
    await ready(page)
    await page.waitForFunction(() => document.querySelectorAll(".agent .count").length === 4)
    const back = await counts(page)
    expect(Object.keys(back).sort()).toEqual(["counter-d1", "counter-d2", "counter-d3", "counter-d4"])
    for (const [id, n] of Object.entries(seen)) expect(back[id]).toBeGreaterThanOrEqual(n)

    // evicting a durable agent forgets it: it does not come back after the next reload
    await page.click("[data-agent=counter-d2]")
    await page.click("#evict")
    await page.waitForFunction(() => document.querySelector("[data-agent=counter-d2]") === null)
    await page.reload()
    await ready(page)
    await page.waitForFunction(() => document.querySelectorAll(".agent").length === 3)
    expect(Object.keys(await counts(page)).sort()).toEqual(["counter-d1", "counter-d3", "counter-d4"])

    await expectNoProblems(problems)
    await context.close()
  })
})

describe("IndexedDB unavailable", () => {
  const cases = [
    {
      name: "missing (indexedDB is undefined, as in some private modes)",
      init: () => Object.defineProperty(globalThis, "indexedDB", { value: undefined, configurable: true }),
      query: "",
      reason: /IndexedDB is not available/
    },
    {
      name: "refused (indexedDB.open throws SecurityError, as in sandboxed frames)",
      init: () => {
        IDBFactory.prototype.open = () => {
          throw new DOMException("access to the Indexed Database API is denied in this context", "SecurityError")
        }
      },
      query: "",
      reason: /SecurityError/
    },
    { name: "turned off with ?storage=memory", init: undefined, query: "?storage=memory", reason: /\?storage=memory/ }
  ]

  for (const c of cases) {
    it(`${c.name}: the page falls back to memory repositories, says why, and works without an unhandled rejection`, async () => {
      const { context, page, problems } = await open(c.init)
      await page.goto(`${demo.url}${c.query}`)
      await ready(page)
      const badge = page.locator("[data-badge=storage]")
      expect(await badge.locator("b").innerText()).toBe("memory (fallback)")
      expect(await badge.getAttribute("title")).toMatch(c.reason)
      expect(await page.locator("#storage-note").innerText()).toMatch(/memory fallback .* will not survive a reload/)
      expect(await page.locator("#storage-note").innerText()).toMatch(c.reason)
      expect(await page.locator("[data-event=Storage]").first().innerText()).toMatch(c.reason)
      expect(await page.locator("[data-event=Restored]").first().innerText()).toMatch(/restored 0 agents from memory/)

      // durable agents still run (snapshots go to memory) — they just do not outlive the page
      await spawn(page, "counter", 2, true)
      await page.click("#invoke")
      await waitForCount(page, "counter-d1", 1)
      await waitForCount(page, "counter-d2", 1)
      await page.reload()
      await ready(page)
      expect(await page.locator("[data-badge=storage] b").innerText()).toBe("memory (fallback)")
      expect(await page.locator(".agent").count()).toBe(0)
      await spawn(page, "counter", 1, true)
      await page.click("#invoke")
      await waitForCount(page, "counter-d1", 1)

      await expectNoProblems(problems)
      await context.close()
    })
  }
})
