import { mergeConfig } from "vitest/config"
import { shared } from "../../tooling/vitest.shared.ts"

// The timeout tests assert deadlines (deadline + 100 ms): test files run one
// at a time so they do not compete with each other for the 2 cores.
export default mergeConfig(shared, { test: { fileParallelism: false } })
