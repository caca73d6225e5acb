import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.mjs", "third-party/**/*.test.mjs"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks"
  }
})
