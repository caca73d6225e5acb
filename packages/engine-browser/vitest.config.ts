/**
 * Tests run in real Chromium (Debian's `/usr/bin/chromium`, driven by
 * Playwright through `@vitest/browser-playwright`; no browser download),
 * headless, on a Vite server that sends the COOP/COEP headers so the test
 * page is cross-origin isolated (SharedArrayBuffer, Atomics.wait in workers).
 */
import { playwright } from "@vitest/browser-playwright"
import { defineConfig } from "vitest/config"

const sourceCondition = "@agent-runtime/source"

/** Cross-origin isolation (HTML §"Cross-origin isolation"): needed for SharedArrayBuffer. */
export const isolationHeaders = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp"
}

export const chromiumArgs = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

export default defineConfig({
  resolve: { conditions: [sourceCondition, "browser", "module", "import", "default"] },
  server: {
    headers: isolationHeaders,
    fs: { allow: ["../.."] }
  },
  worker: { format: "es" },
  optimizeDeps: {
    include: ["idb", "@bjorn3/browser_wasi_shim", "wabt"]
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    browser: {
      enabled: true,
      headless: true,
      screenshotFailures: false,
      provider: playwright({
        launchOptions: { executablePath: process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium", args: chromiumArgs }
      }),
      instances: [{ browser: "chromium" }]
    }
  }
})
