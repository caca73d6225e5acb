#!/usr/bin/env node
// Runs the TypeScript CLI from source: node --conditions=@agent-runtime/source --import tsx src/bin.ts
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const entry = fileURLToPath(new URL("../src/bin.ts", import.meta.url))
const tsx = import.meta.resolve("tsx")
// `pnpm --filter @agent-runtime/cli cli …` runs this from apps/cli: relative paths are the
// user's, so run in the directory pnpm was invoked from (INIT_CWD) when there is one.
const packageDir = fileURLToPath(new URL("..", import.meta.url)).replace(/\/$/, "")
const cwd = process.env.INIT_CWD !== undefined && process.cwd() === packageDir ? process.env.INIT_CWD : process.cwd()
const result = spawnSync(
  process.execPath,
  ["--conditions=@agent-runtime/source", "--import", tsx, entry, ...process.argv.slice(2)],
  { stdio: "inherit", cwd }
)
process.exit(result.status ?? 1)
