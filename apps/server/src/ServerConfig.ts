/**
 * `ServerConfig`: how one server is configured — from command-line flags,
 * then environment variables, then defaults (flags win).
 *
 * | flag | env | default | meaning |
 * |---|---|---|---|
 * | `--port N` | `PORT` | `8080` | HTTP port (0 = a free port, printed at start) |
 * | `--host H` | `HOST` | `127.0.0.1` | HTTP interface |
 * | `--nats URL` | `NATS_URL` | none | NATS server: JetStream bus, KV/Object Store repositories, leases, request/reply endpoints; without it the server runs embedded |
 * | `--host-id ID` | `AGENT_RUNTIME_HOST_ID` | `<hostname>-<pid>` | this host's id: runtime id, lease owner, NATS subject token |
 * | `--engine native\|node` | `AGENT_RUNTIME_ENGINE` | `native` | in-process engine, or Node worker threads |
 * | `--memory BYTES` | `AGENT_RUNTIME_MEMORY` | `1GiB` | memory budget of the pool (accepts `KiB`/`MiB`/`GiB` suffixes) |
 * | `--db PATH` | `AGENT_RUNTIME_DB` | none | embedded mode only: modules, snapshots and metrics in this SQLite file |
 * | `--trust PATH\|test-only` | `AGENT_RUNTIME_TRUST` | none (required) | trust store JSON (`TrustStore.fromJson`), or the committed test-only key |
 * | `--drain-timeout MS` | `AGENT_RUNTIME_DRAIN_TIMEOUT` | `30000` | how long a drain waits for in-flight calls |
 *
 * Errors: `ServerConfigInvalid { option, reason }` for an unknown flag, a
 * missing value or a value out of range.
 *
 * @since 0.1.0
 */
import * as os from "node:os"
import * as Schema from "effect/Schema"

/** A flag or environment variable that cannot be used. */
export class ServerConfigInvalid extends Schema.TaggedError<ServerConfigInvalid>()("ServerConfigInvalid", {
  option: Schema.String,
  reason: Schema.String
}) {
  override get message() {
    return `invalid option ${this.option}: ${this.reason}`
  }
}

/** The resolved configuration of one server. Memory in bytes, times in ms. */
export interface ServerConfig {
  readonly port: number
  readonly host: string
  readonly natsUrl: string | undefined
  readonly hostId: string
  readonly engine: "native" | "node"
  readonly memoryBytes: number
  readonly db: string | undefined
  /** A trust store file, or `"test-only"` for the committed test key (never in production). */
  readonly trust: string
  readonly drainTimeoutMs: number
}

const FLAGS = {
  "--port": "PORT",
  "--host": "HOST",
  "--nats": "NATS_URL",
  "--host-id": "AGENT_RUNTIME_HOST_ID",
  "--engine": "AGENT_RUNTIME_ENGINE",
  "--memory": "AGENT_RUNTIME_MEMORY",
  "--db": "AGENT_RUNTIME_DB",
  "--trust": "AGENT_RUNTIME_TRUST",
  "--drain-timeout": "AGENT_RUNTIME_DRAIN_TIMEOUT"
} as const
type Flag = keyof typeof FLAGS

const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3
}

/** Parses a byte size: `268435456`, `256MiB`, `1GiB`, `512kb`. */
export const parseBytes = (option: string, text: string): number => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text)
  const unit = m === null ? undefined : UNITS[m[2]!.toLowerCase()]
  if (m === null || unit === undefined) {
    throw new ServerConfigInvalid({
      option,
      reason: `expected a byte size like 268435456 or 256MiB, got ${JSON.stringify(text)}`
    })
  }
  return Math.floor(Number(m[1]) * unit)
}

const integer = (option: string, text: string, min: number, max: number): number => {
  const n = Number(text)
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new ServerConfigInvalid({
      option,
      reason: `expected an integer in [${min}, ${max}], got ${JSON.stringify(text)}`
    })
  }
  return n
}

/**
 * Resolves the configuration from `argv` (flags only, `--flag value` or
 * `--flag=value`) and `env`. Throws `ServerConfigInvalid`.
 */
export const parse = (argv: ReadonlyArray<string>, env: Readonly<Record<string, string | undefined>>): ServerConfig => {
  const given = new Map<Flag, string>()
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === "--") continue // `pnpm start -- --port 8080` passes the separator through
    const eq = arg.indexOf("=")
    const name = (eq > 0 ? arg.slice(0, eq) : arg) as Flag
    if (!(name in FLAGS))
      throw new ServerConfigInvalid({ option: arg, reason: `unknown flag (known: ${Object.keys(FLAGS).join(", ")})` })
    const value = eq > 0 ? arg.slice(eq + 1) : argv[++i]
    if (value === undefined) throw new ServerConfigInvalid({ option: name, reason: "missing value" })
    given.set(name, value)
  }
  const get = (flag: Flag): string | undefined => {
    const v = given.get(flag) ?? env[FLAGS[flag]]
    return v === undefined || v === "" ? undefined : v
  }
  const engine = get("--engine") ?? "native"
  if (engine !== "native" && engine !== "node") {
    throw new ServerConfigInvalid({
      option: "--engine",
      reason: `expected native or node, got ${JSON.stringify(engine)}`
    })
  }
  const trust = get("--trust")
  if (trust === undefined) {
    throw new ServerConfigInvalid({
      option: "--trust",
      reason:
        "a trust store is required: --trust keys.json (TrustStore JSON), or --trust test-only for the committed test key"
    })
  }
  const natsUrl = get("--nats")
  const db = get("--db")
  if (natsUrl !== undefined && db !== undefined) {
    throw new ServerConfigInvalid({
      option: "--db",
      reason: "--db is for the embedded mode; with --nats the repositories live in NATS"
    })
  }
  const hostId = get("--host-id") ?? `${os.hostname()}-${process.pid}`
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(hostId)) {
    throw new ServerConfigInvalid({
      option: "--host-id",
      reason: "1 to 64 characters of A-Z a-z 0-9 _ - (it is a NATS subject token)"
    })
  }
  return {
    port: integer("--port", get("--port") ?? "8080", 0, 65_535),
    host: get("--host") ?? "127.0.0.1",
    natsUrl,
    hostId,
    engine,
    memoryBytes: parseBytes("--memory", get("--memory") ?? "1GiB"),
    db,
    trust,
    drainTimeoutMs: integer("--drain-timeout", get("--drain-timeout") ?? "30000", 0, 3_600_000)
  }
}
