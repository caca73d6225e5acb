#!/usr/bin/env node
// Runs the TypeScript CLI from source: node --conditions=@agent-runtime/source --import tsx src/bin.ts
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const entry = fileURLToPath(new URL("../src/bin.ts", import.meta.url))
const tsx = import.meta.resolve("tsx")
const result = spawnSync(
  process.execPath,
  ["--conditions=@agent-runtime/source", "--import", tsx, entry, ...process.argv.slice(2)],
  { stdio: "inherit" }
)
process.exit(result.status ?? 1)
