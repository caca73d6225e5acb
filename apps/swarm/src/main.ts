/**
 * `pnpm start [--json] [--agents N] [--seed S] [--tamper <agent>]… [--quiet]`:
 * runs the swarm on the embedded defaults — native engine, in-memory
 * repositories and bus, the TEST-ONLY trust store — and prints the report.
 *
 * stdout carries only the report (text, or JSON with `--json`); progress
 * goes to stderr. Exit code 0 on success, 1 when the run crashed (crashes >
 * 0), 2 for bad arguments.
 *
 * @since 0.1.0
 */
import { NativeEngine } from "@agent-runtime/engine-native"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { parseArgs } from "node:util"
import * as Progress from "./Progress.js"
import { formatText, toJson } from "./Report.js"
import { agentTypes, DEFAULT_AGENTS, DEFAULT_SEED, MIN_AGENTS, runSwarm } from "./Swarm.js"

const usage = `usage: pnpm start [options]

  --json             print only the report, as JSON, on stdout
  --agents <n>       agents to spawn (default ${DEFAULT_AGENTS}, at least ${MIN_AGENTS})
  --seed <n>         seed of the workload (default ${DEFAULT_SEED})
  --tamper <agent>   flip one byte of that agent's module before loading (repeatable): ${agentTypes.join(", ")}
  --quiet            no progress on stderr
  -h, --help         this text
`

const fail = (message: string): never => {
  process.stderr.write(`swarm: ${message}\n\n${usage}`)
  process.exit(2)
}

const integer = (name: string, value: string | undefined, fallback: number, min: number): number => {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min) return fail(`--${name} must be an integer ≥ ${min}, got "${value}"`)
  return n
}

const parsed = (() => {
  try {
    return parseArgs({
      args: process.argv.slice(2),
      options: {
        json: { type: "boolean", default: false },
        agents: { type: "string" },
        seed: { type: "string" },
        tamper: { type: "string", multiple: true },
        quiet: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false }
      },
      strict: true,
      allowPositionals: false
    }).values
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e))
  }
})()

if (parsed.help) {
  process.stdout.write(usage)
  process.exit(0)
}

const agents = integer("agents", parsed.agents, DEFAULT_AGENTS, MIN_AGENTS)
const seed = integer("seed", parsed.seed, DEFAULT_SEED, 0)
const tamper = parsed.tamper ?? []
for (const name of tamper) {
  if (!(agentTypes as ReadonlyArray<string>).includes(name)) fail(`--tamper: unknown agent "${name}" (one of ${agentTypes.join(", ")})`)
}

const progress = Progress.make(
  process.stderr,
  Progress.modeFor({ json: parsed.json, quiet: parsed.quiet, tty: process.stderr.isTTY === true })
)

/** The embedded defaults: the native engine and the TEST-ONLY trust store (never trust it in production). */
const PlatformLive = Layer.mergeAll(NativeEngine.layer, verifierLayer({ trustStore: testOnlyTrustStore() }))

try {
  const report = await Effect.runPromise(
    runSwarm({ agents, seed, tamper, onProgress: progress.onProgress }).pipe(Effect.provide(PlatformLive))
  )
  progress.close()
  process.stdout.write(`${parsed.json ? toJson(report) : formatText(report)}\n`)
  process.exitCode = report.crashes > 0 ? 1 : 0
} catch (e) {
  progress.close()
  process.stderr.write(`swarm: crashed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`)
  process.exitCode = 1
}
