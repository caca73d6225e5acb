#!/usr/bin/env node
// `pnpm start [swarm options]`: builds the signed fixture agents (turbo, cached),
// then runs the swarm demo from source (apps/swarm/src/main.ts) with the
// arguments given, and exits with its exit code.
//
// stdout belongs to the swarm's report alone (`pnpm --silent start --json` is
// pure JSON): turbo's output is sent to stderr.
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"

const root = fileURLToPath(new URL("../../", import.meta.url))
const env = { ...process.env, TURBO_TELEMETRY_DISABLED: "1", TURBO_NO_UPDATE_NOTIFIER: "1" }

const exitCode = (result, what) => {
  if (result.error) {
    process.stderr.write(`start: cannot run ${what}: ${result.error.message}\n`)
    return 1
  }
  if (result.signal) {
    process.stderr.write(`start: ${what} was killed by ${result.signal}\n`)
    return 1
  }
  return result.status ?? 1
}

const fixtures = spawnSync(
  "pnpm",
  ["exec", "turbo", "run", "fixtures", "--filter=@agent-runtime/agents", "--output-logs=errors-only"],
  { cwd: root, env, stdio: ["ignore", 2, 2] }
)
const built = exitCode(fixtures, "the fixture build (pnpm exec turbo run fixtures)")
if (built !== 0) {
  process.stderr.write("start: building the fixture agents failed\n")
  process.exit(built)
}

const swarm = spawnSync(
  process.execPath,
  ["--conditions=@agent-runtime/source", "--import", "tsx", "apps/swarm/src/main.ts", ...process.argv.slice(2)],
  { cwd: root, env, stdio: "inherit" }
)
process.exit(exitCode(swarm, "the swarm"))
