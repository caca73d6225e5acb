/**
 * Tests run in real Chromium (`tooling/vitest.browser.ts`) on a page that is
 * cross-origin isolated (COOP/COEP), so worker mode runs: SharedArrayBuffer,
 * `Atomics.wait` in workers.
 */
import { playwright } from "@vitest/browser-playwright"
import { browserConfig } from "../../tooling/vitest.browser.ts"

export default browserConfig(playwright, { isolated: true, optimizeDeps: ["@bjorn3/browser_wasi_shim", "wabt", "effect/ManagedRuntime", "effect/Scheduler"] })
