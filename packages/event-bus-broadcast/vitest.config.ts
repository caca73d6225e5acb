/** Tests run in real Chromium (`tooling/vitest.browser.ts`): BroadcastChannel as a page sees it. */
import { playwright } from "@vitest/browser-playwright"
import { browserConfig } from "../../tooling/vitest.browser.ts"

export default browserConfig(playwright)
