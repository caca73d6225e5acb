/**
 * End to end in real Chromium (Debian's `/usr/bin/chromium`, driven by
 * playwright-core; no browser download): starts the demo's Vite dev server
 * (COOP/COEP headers), opens the page, clicks spawn → invoke → evict and
 * checks what the page shows, clicks during a runaway call (the page must
 * answer while the agent spins, and the call ends as Timeout at its
 * deadline), and writes `test-output/dashboard.png` for a person to look at.
 */
import { mkdirSync } from "node:fs"
import type { Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { type Demo, output, type Problems, startDemo, watchProblems } from "./support.js"

let demo: Demo
let page: Page
let problems: Problems

const text = (selector: string) => page.locator(selector).innerText()
const agentCount = async () => Number(await text("#kpi-agents"))

beforeAll(async () => {
  demo = await startDemo()
  page = await demo.browser.newPage({ viewport: { width: 1440, height: 1000 } })
  problems = await watchProblems(page)
  await page.goto(demo.url)
  await page.waitForSelector("body[data-ready=true]", { timeout: 60_000 })
})

afterAll(async () => {
  await demo?.close()
})

describe("browser demo dashboard", () => {
  it("runs in Web Workers on a cross-origin isolated page", async () => {
    expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true)
    expect(await text("[data-badge=mode] b")).toBe("Web Workers")
    expect(await text("[data-badge=isolated] b")).toBe("yes")
    expect(await text("[data-badge=call\\ path] b")).toBe("shared")
  })

  it("spawn → the swarm shows the agents Running; invoke → their call counts and invocations go up", async () => {
    await page.fill("#count", "12")
    await page.selectOption("#kind", "counter")
    await page.click("#spawn")
    await page.waitForFunction(() => document.querySelectorAll(".agent[data-state=Running]").length === 12)
    expect(await page.locator("[data-event=AgentSpawned]").count()).toBe(12)
    await page.selectOption("#kind", "lifecycle")
    await page.fill("#count", "6")
    await page.click("#spawn")
    await page.fill("#count", "4")
    await page.click("#spawn")
    await page.waitForFunction(() => document.querySelectorAll(".agent").length === 22)
    expect(await agentCount()).toBe(22)
    await page.waitForFunction(() => document.querySelector(".state-row[data-state=Running] .n")?.textContent === "22")

    await page.click("#invoke")
    await page.waitForFunction(() => /invoked 22 agents/.test(document.getElementById("status")!.textContent ?? ""))
    await page.waitForFunction(
      () => Number(document.getElementById("kpi-invocations")!.textContent!.replace(/\D/g, "")) >= 22
    )
    await page.waitForFunction(
      () => document.querySelector("[data-agent=counter-1]")?.textContent?.includes("1 calls") === true
    )
  })

  it("a click whose mouse-down and mouse-up fall on either side of a re-render still selects the card", async () => {
    const card = page.locator("[data-agent=counter-2]")
    const box = (await card.boundingBox())!
    await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2)
    await page.mouse.down()
    // the card's contents at mouse-down: the page re-renders 4 times a second, wait until they have been replaced
    const pressed = await page.evaluateHandle(
      () => document.querySelector("[data-agent=counter-2]")!.firstElementChild!
    )
    await page.waitForFunction((node) => !node.isConnected, pressed)
    await page.mouse.up()
    await page.waitForSelector("[data-agent=counter-2].selected", { timeout: 5_000 })
    expect(await page.locator(".agent.selected").count()).toBe(1)
  })

  it("pause and evict the selected agent: its state changes, then it leaves the swarm with an AgentEvicted event", async () => {
    await page.click("[data-agent=counter-3]")
    await page.click("#pause")
    await page.waitForSelector("[data-agent=counter-3][data-state=Paused]")
    await page.waitForFunction(() => document.querySelector(".state-row[data-state=Paused] .n")?.textContent === "1")
    await page.click("#evict")
    await page.waitForFunction(() => document.querySelector("[data-agent=counter-3]") === null)
    expect(await agentCount()).toBe(21)
    expect(await page.locator("[data-event=AgentEvicted]").first().innerText()).toMatch(/counter-3 · Manual/)
  })

  it("a runaway call: the page keeps answering clicks while the agent spins, and the call ends as Timeout at its deadline", async () => {
    const before = await agentCount()
    await page.click("#runaway")
    await page.waitForFunction(() => /runaway call running/.test(document.getElementById("status")!.textContent ?? ""))
    // while the looper spins in its worker, the page spawns more agents and renders them
    await page.selectOption("#kind", "counter")
    await page.fill("#count", "2")
    await page.click("#spawn")
    // order, not wall-clock: the new agents are rendered while the runaway call is still running
    const rendered = await page.waitForFunction((n) => {
      if (Number(document.getElementById("kpi-agents")!.textContent) < n + 3) return false
      // the runaway call has not ended yet: no Timeout in the status, no eviction for Timeout in the events
      const ended =
        /runaway call: Timeout/.test(document.getElementById("status")!.textContent ?? "") ||
        [...document.querySelectorAll("[data-event=AgentEvicted]")].some((e) => /Timeout/.test(e.textContent ?? ""))
      return { running: !ended }
    }, before)
    expect(await rendered.jsonValue()).toEqual({ running: true })
    await page.waitForFunction(
      () => /runaway call: Timeout after \d+ ms/.test(document.getElementById("status")!.textContent ?? ""),
      undefined,
      { timeout: 10_000 }
    )
    const ms = Number(/after (\d+) ms/.exec(await text("#status"))![1])
    // not before the looper's 1,500 ms deadline; that the deadline ended it is the "Timeout" status and the eviction below
    expect(ms).toBeGreaterThanOrEqual(1450)
    await page.waitForFunction(() =>
      [...document.querySelectorAll("[data-event=AgentEvicted]")].some((e) => /Timeout/.test(e.textContent ?? ""))
    )
  })

  it("health check fills the health table; trigger pressure moves the gauge and evicts", async () => {
    await page.click("#health")
    // the table is refreshed 4 times a second anyway: wait for the check itself to finish
    await page.waitForFunction(() => /checked \d+ agents/.test(document.getElementById("status")!.textContent ?? ""))
    await page.waitForFunction(() => document.querySelectorAll("#health-rows tr[data-health]").length > 0)
    expect(await text("#health-rows")).toMatch(/Healthy/)
    await page.click("#pressure")
    await page.waitForFunction(
      () => /pressure handled/.test(document.getElementById("status")!.textContent ?? ""),
      undefined,
      { timeout: 30_000 }
    )
    await page.waitForSelector("[data-event=MemoryPressure]")
  })

  it("writes the dashboard screenshot with a live swarm, and no page error happened", async () => {
    await page.selectOption("#kind", "flaky")
    await page.fill("#count", "4")
    await page.click("#spawn")
    await page.selectOption("#kind", "counter")
    await page.fill("#count", "16")
    await page.click("#spawn")
    await page.check("#traffic")
    await page.waitForFunction(() => Number(document.getElementById("kpi-ips")!.textContent) > 0)
    await page.locator(".agent[data-state=Running]").nth(2).click()
    await page.click("#pause")
    await page.waitForTimeout(1500)
    mkdirSync(output, { recursive: true })
    await page.screenshot({ path: `${output}dashboard.png`, fullPage: true })
    expect(problems.pageErrors).toEqual([])
    expect(problems.consoleErrors).toEqual([])
    expect(await problems.rejections()).toEqual([])
  })
})
