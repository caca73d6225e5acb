/** The end-to-end test runs in Node: it starts Vite and drives Debian's Chromium with playwright-core. */
import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 90_000,
    hookTimeout: 90_000,
    pool: "forks"
  }
})
