/**
 * Shared Vitest settings for the packages whose tests run in real Chromium
 * (Debian's `/usr/bin/chromium` or `CHROMIUM_PATH`, driven by Playwright
 * through `@vitest/browser-playwright`; no browser download), headless.
 *
 * `isolated`: the Vite server sends the COOP/COEP headers so the test page
 * is cross-origin isolated (SharedArrayBuffer, `Atomics.wait` in workers;
 * HTML §"Cross-origin isolation"). The provider is passed in by each
 * package (it is a dependency of the package, not of the workspace root).
 */
import { defineConfig } from "vitest/config"
import { chromiumArgs, chromiumPath, isolationHeaders } from "./test-support/src/Chromium.ts"
import { sourceCondition } from "./vitest.shared.ts"

/** `@vitest/browser-playwright`'s `playwright` (structurally). */
type Provider = (options: {
  readonly launchOptions: { readonly executablePath: string; readonly args: Array<string> }
}) => any

export const browserConfig = (
  playwright: Provider,
  options: { readonly isolated?: boolean; readonly optimizeDeps?: ReadonlyArray<string> } = {}
) =>
  defineConfig({
    resolve: { conditions: [sourceCondition, "browser", "module", "import", "default"] },
    server: {
      ...(options.isolated === true ? { headers: isolationHeaders } : {}),
      fs: { allow: ["../.."] }
    },
    worker: { format: "es" },
    optimizeDeps: { include: [...(options.optimizeDeps ?? [])] },
    test: {
      include: ["test/**/*.test.ts"],
      testTimeout: 30_000,
      hookTimeout: 60_000,
      browser: {
        enabled: true,
        headless: true,
        screenshotFailures: false,
        provider: playwright({
          launchOptions: { executablePath: chromiumPath(), args: chromiumArgs }
        }),
        instances: [{ browser: "chromium" }]
      }
    }
  })
