/** Tests run in real Chromium (`tooling/vitest.browser.ts`): IndexedDB as a page sees it. */
import { playwright } from "@vitest/browser-playwright"
import { browserConfig } from "../../tooling/vitest.browser.ts"

export default browserConfig(playwright, { optimizeDeps: ["idb"] })
