/**
 * Shared Vitest settings for every workspace package.
 *
 * Workspace packages resolve each other from `src/` through the
 * `@agent-runtime/source` export condition, so tests never need a build.
 */
import { defineConfig } from "vitest/config"

export const sourceCondition = "@agent-runtime/source"

export const shared = defineConfig({
  resolve: {
    conditions: [sourceCondition, "module", "node", "import", "default"]
  },
  ssr: {
    resolve: {
      conditions: [sourceCondition, "module", "node", "import", "default"],
      externalConditions: [sourceCondition]
    }
  },
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: "forks"
  }
})
