import { defineConfig } from "vitest/config"
import { shared, sourceCondition } from "../../tooling/vitest.shared.ts"

// Without the shared `module` condition: it picks @opentelemetry/api's `build/esm`, whose extensionless
// imports only a bundler resolves (Node loads its CommonJS build instead).
const conditions = [sourceCondition, "node", "import", "default"]

export default defineConfig({
  ...shared,
  resolve: { ...shared.resolve, conditions },
  ssr: { ...shared.ssr, resolve: { ...shared.ssr?.resolve, conditions } }
})
