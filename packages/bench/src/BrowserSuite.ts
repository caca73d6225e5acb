/**
 * Suite `browser`: `@agent-runtime/engine-browser` measured in Chromium
 * against raw baselines measured on the same page in the same run (see
 * `browser/main.ts` for the rows). This driver serves `src/browser/` with
 * Vite (COOP/COEP headers: the page is cross-origin isolated; workspace
 * packages resolved through the `@agent-runtime/source` condition), starts
 * Debian's Chromium through playwright-core (`CHROMIUM_PATH` overrides
 * `/usr/bin/chromium`; no browser download), calls
 * `window.agentRuntimeBench(input)` with `page.evaluate` and turns the
 * samples into rows. Without Chromium the suite returns no rows and a
 * note (skipped, not failed). With `AGENT_RUNTIME_BENCH_CPU_PROFILE=<file>`
 * in the environment, the page's main thread is profiled while the rows run
 * (CDP `Profiler`, 50 µs sampling) and the `.cpuprofile` is written there;
 * `AGENT_RUNTIME_BENCH_BROWSER_GROUPS=inPage` (or `workers`) runs only those
 * rows (`BrowserBenchInput.groups`).
 *
 * @since 0.1.0
 */
import { readAgent } from "@agent-runtime/agents"
import { existsSync, writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import type { RunOptions, SuiteResult, Target } from "./Measure.js"
import { size } from "./Measure.js"
import { assemble, callsWat } from "./Modules.js"
import { rowFromSamples } from "./Samples.js"
import type { BrowserBenchInput, BrowserBenchOutput } from "./browser/main.js"
import { chromiumArgs, chromiumPath, isolationHeaders } from "@agent-runtime/test-support/chromium"

const SUITE = "browser"
const root = fileURLToPath(new URL("./browser/", import.meta.url))
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))
const cacheDir = fileURLToPath(new URL("../node_modules/.vite-bench", import.meta.url))

/** The Chromium binary: `CHROMIUM_PATH` or `/usr/bin/chromium`. */
export { chromiumPath }

const targets: Record<NonNullable<BrowserBenchOutput["rows"][number]["target"]>, Target> = {
  "invoke-1us": { text: "≤ 1 µs median", met: (_r, median) => median <= 0.001 },
  "worker-idle": { text: "≤ 1.3× raw Atomics round trip", met: (r) => r <= 1.3 },
  "worker-hot": { text: "≤ 5× raw spinning SAB round trip", met: (r) => r <= 5 }
}

export const browserSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const executablePath = chromiumPath()
  if (!existsSync(executablePath)) {
    return { suite: SUITE, rows: [], notes: [`skipped: no Chromium at ${executablePath} (set CHROMIUM_PATH)`] }
  }
  const input: BrowserBenchInput = {
    noopModule: [...(await assemble(callsWat(1)))],
    addModule: [...readAgent("no-memory")],
    samples: size(options, 30, 10, 2),
    idleSamples: size(options, 30, 8, 2),
    idlePauseMs: 20,
    rawBatch: size(options, 100_000, 10_000, 100),
    invokeBatch: size(options, 5_000, 1_000, 10),
    roundTripBatch: size(options, 1_000, 200, 5),
    // `AGENT_RUNTIME_BENCH_BROWSER_GROUPS=inPage` (or `workers`): only those rows (to profile one part)
    groups: process.env["AGENT_RUNTIME_BENCH_BROWSER_GROUPS"]?.split(",") as BrowserBenchInput["groups"]
  }
  const { createServer } = await import("vite")
  const { chromium } = await import("playwright-core")
  const server = await createServer({
    root,
    configFile: false,
    cacheDir,
    logLevel: "error",
    resolve: { conditions: ["@agent-runtime/source", "browser", "module", "import", "default"] },
    server: { port: 0, host: "127.0.0.1", headers: isolationHeaders, fs: { allow: [repoRoot] } },
    optimizeDeps: { entries: ["index.html"] },
    worker: { format: "es" }
  })
  let browser: Awaited<ReturnType<typeof chromium.launch>> | undefined
  try {
    await server.listen()
    const address = server.httpServer?.address()
    if (address === null || address === undefined || typeof address === "string")
      throw new Error("vite: no server address")
    browser = await chromium.launch({ executablePath, args: chromiumArgs })
    const page = await browser.newPage()
    const errors: Array<string> = []
    page.on("pageerror", (e) => errors.push(String(e)))
    await page.goto(`http://127.0.0.1:${address.port}/`)
    await page
      .waitForFunction(() => typeof window.agentRuntimeBench === "function", undefined, { timeout: 60_000 })
      .catch((e: unknown) => {
        throw new Error(
          `the bench page did not start: ${String(e)}${errors.length > 0 ? `; page errors: ${errors.join("; ")}` : ""}`
        )
      })
    // `AGENT_RUNTIME_BENCH_CPU_PROFILE=<file>`: the page's main thread is profiled (CDP `Profiler`, what
    // `node --cpu-prof` records) while the rows run, and the `.cpuprofile` is written there (DevTools reads it)
    const profileTo = process.env["AGENT_RUNTIME_BENCH_CPU_PROFILE"]
    const cdp = profileTo === undefined ? undefined : await page.context().newCDPSession(page)
    if (cdp !== undefined) {
      await cdp.send("Profiler.enable")
      await cdp.send("Profiler.setSamplingInterval", { interval: 50 })
      await cdp.send("Profiler.start")
    }
    const out = await page.evaluate((i) => window.agentRuntimeBench!(i), input)
    if (cdp !== undefined && profileTo !== undefined) {
      const { profile } = await cdp.send("Profiler.stop")
      writeFileSync(profileTo, JSON.stringify(profile))
    }
    const version = browser.version()
    return {
      suite: SUITE,
      rows: out.rows.map((r) =>
        rowFromSamples({
          suite: SUITE,
          name: r.name,
          samples: r.samples,
          batch: r.batch,
          baseline: r.baseline,
          target: r.target === undefined ? undefined : targets[r.target]
        })
      ),
      notes: [`Chromium ${version} (headless), crossOriginIsolated: ${String(out.crossOriginIsolated)}`, ...out.notes]
    }
  } finally {
    await browser?.close()
    await server.close()
  }
}
