/**
 * Shared by the end-to-end tests: the demo's Vite dev server (COOP/COEP
 * headers) and Debian's Chromium driven by playwright-core (no browser
 * download; `CHROMIUM_PATH` overrides `/usr/bin/chromium`).
 */
import { fileURLToPath } from "node:url"
import { type Browser, chromium, type Page } from "playwright-core"
import { createServer, type ViteDevServer } from "vite"
import { chromiumArgs, chromiumPath } from "@agent-runtime/test-support/chromium"

export const root = fileURLToPath(new URL("..", import.meta.url))
export const output = fileURLToPath(new URL("../test-output/", import.meta.url))

export interface Demo {
  readonly url: string
  readonly browser: Browser
  readonly close: () => Promise<void>
}

/** Starts the dev server on a free port and launches Chromium. */
export const startDemo = async (): Promise<Demo> => {
  const server: ViteDevServer = await createServer({
    root,
    configFile: `${root}vite.config.ts`,
    logLevel: "error",
    server: { port: 0, host: "127.0.0.1" }
  })
  await server.listen()
  const address = server.httpServer?.address()
  if (address === null || address === undefined || typeof address === "string") throw new Error("no server address")
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: chromiumArgs })
  return {
    url: `http://127.0.0.1:${address.port}/`,
    browser,
    close: async () => {
      await browser.close()
      await server.close()
    }
  }
}

/**
 * What went wrong on a page, across reloads: uncaught errors (`pageerror`,
 * which includes unhandled rejections in Chromium), `console.error`
 * messages, and `unhandledrejection` events recorded by an init script into
 * `sessionStorage` (it survives a reload).
 */
export interface Problems {
  readonly pageErrors: Array<string>
  readonly consoleErrors: Array<string>
  /** The `unhandledrejection` reasons the page recorded (read from the current document). */
  readonly rejections: () => Promise<Array<string>>
}

export const watchProblems = async (page: Page): Promise<Problems> => {
  const pageErrors: Array<string> = []
  const consoleErrors: Array<string> = []
  page.on("pageerror", (e) => pageErrors.push(String(e)))
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(`${m.text()}${m.location().url ? ` (${m.location().url})` : ""}`)
  })
  await page.addInitScript(() => {
    addEventListener("unhandledrejection", (e) => {
      const list = JSON.parse(sessionStorage.getItem("unhandled-rejections") ?? "[]") as Array<string>
      list.push(String((e as PromiseRejectionEvent).reason))
      sessionStorage.setItem("unhandled-rejections", JSON.stringify(list))
    })
  })
  return {
    pageErrors,
    consoleErrors,
    rejections: () =>
      page.evaluate(() => JSON.parse(sessionStorage.getItem("unhandled-rejections") ?? "[]") as Array<string>)
  }
}
