/**
 * One host process of the multi-host scale suite (`MultiHostScaleSuite.ts`
 * starts several on one machine and one nats-server):
 *
 *   node --expose-gc --conditions=@agent-runtime/source bin/tsx.mjs src/MultiHostScaleHost.ts '<HostConfig JSON>'
 *
 * A runtime on the native engine with every shared port on NATS — modules
 * in the Object Store, agent states in KV, events on JetStream — and each
 * spawn guarded by a lease (`@agent-runtime/nats` `LeasedRuntime`), as a
 * host of `pnpm start --hosts N` runs. It spawns live 1-page agents (the
 * signed `grower` fixture: 1 MiB limit, 64 KiB reserved) until the cap, the
 * time limit or the first failure, measures its RSS after a full GC, then
 * (when `passivate` > 0) registers more agents through passivation: spawn a
 * chunk, `runGc` (every idle agent is snapshotted to KV and its instance
 * released), until `passivate` more are registered or the time limit.
 *
 * stdout: one `{ progress, phase }` line per chunk, then one JSON line
 * (`HostScaleReport`). Memory in bytes, time in ms. The host exits after
 * reporting, when stdin closes (its parent is gone) and on SIGINT/SIGTERM.
 *
 * @since 0.1.0
 */
import { readAgent } from "@agent-runtime/agents"
import { AgentRuntimes, agentId, ExecutionAuthorizers, makeMetadata, MetricsRepositories } from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import { LeasedRuntime, NatsHost } from "@agent-runtime/nats"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** What a host is told through its first argument. */
export interface HostScaleConfig {
  readonly url: string
  readonly hostId: string
  /** Prefix of the run's buckets, object stores and stream (`[A-Za-z0-9_]`). */
  readonly names: string
  /** Live agents to spawn at most. */
  readonly cap: number
  /** Agents to register through passivation after the live phase (0: none). */
  readonly passivate: number
  /** Time limit of each phase, ms. */
  readonly limitMs: number
}

/** Process memory, bytes (after a full GC when `--expose-gc`). */
export interface HostMemory {
  readonly rss: number
  readonly heapUsed: number
  readonly external: number
}

/** What one host found. */
export interface HostScaleReport {
  readonly hostId: string
  /** Live agents held at the end of the live phase. */
  readonly live: number
  readonly stoppedBy: "cap" | "time" | "error"
  readonly error?: string | undefined
  /** ms of the live phase. */
  readonly elapsedMs: number
  /** Memory after the module loaded (before any agent) and at the end of the live phase. */
  readonly before: HostMemory
  readonly after: HostMemory
  /** Agents registered at the end (live + passivated, snapshots in KV). */
  readonly registered: number
  readonly passivated: number
  /** ms of the passivation phase (0 when it did not run). */
  readonly passivationMs: number
  readonly passivationError?: string | undefined
}

const MiB = 1_048_576
const PAGE = 65_536
const CHUNK = 250

const config = JSON.parse(process.argv[2] ?? "{}") as HostScaleConfig
const write = (line: unknown) => process.stdout.write(JSON.stringify(line) + "\n")

const memory = (): HostMemory => {
  ;(globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external }
}

const describeError = (e: unknown): string =>
  (e !== null && typeof e === "object" && "_tag" in e
    ? `${String((e as { _tag: unknown })._tag)}: ${(e as { message?: unknown }).message ?? JSON.stringify(e)}`
    : e instanceof Error
      ? `${e.name}: ${e.message}`
      : String(e)
  ).slice(0, 400)

const ports = NatsHost.layer({
  servers: config.url,
  hostId: config.hostId,
  names: NatsHost.names(config.names),
  // a TTL longer than the run: renewals (one KV update per agent per TTL / 3) stay out of the measurement
  ttlMs: 10 * 60_000,
  connectTimeoutMs: 10_000
})
const total = config.cap + config.passivate
const runtime = AgentRuntimes.layer({
  id: config.hostId,
  autoPressure: false,
  pool: { totalMemory: (total + 16) * MiB, maxHandles: 10_000_000 },
  gc: { passivateIdleMs: 1 }
}).pipe(
  Layer.provideMerge(Layer.mergeAll(ports, MetricsRepositories.layerMemory, ExecutionAuthorizers.layerAllowAll)),
  Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
)

const program = Effect.gen(function* () {
  const leased = yield* LeasedRuntime.LeasedRuntime
  const rt = leased.runtime
  const moduleId = yield* rt.loadModule(readAgent("grower"), makeMetadata({ name: "grower", version: "1.0.0" }))
  const spawnChunk = (first: number, n: number) =>
    Effect.forEach(
      Array.from({ length: n }, (_, i) => first + i),
      (i) =>
        leased.spawnAgent(agentId(`${config.hostId}-a${i}`), moduleId, { memoryLimit: MiB, memoryReservation: PAGE }),
      { concurrency: 16, discard: true }
    )

  // live phase
  const before = memory()
  const start = performance.now()
  let live = 0
  let stoppedBy: HostScaleReport["stoppedBy"] = "cap"
  let error: string | undefined
  while (live < config.cap) {
    if (performance.now() - start > config.limitMs) {
      stoppedBy = "time"
      break
    }
    const n = Math.min(CHUNK, config.cap - live)
    const r = yield* Effect.result(spawnChunk(live, n))
    live = (yield* rt.stats).agents
    if (r._tag === "Failure") {
      stoppedBy = "error"
      error = describeError(r.failure)
      break
    }
    write({ progress: live, phase: "live" })
  }
  const elapsedMs = performance.now() - start
  const after = memory()

  // passivation phase: every idle agent (the live ones too) goes to KV; more are spawned and passivated
  let registered = live
  let passivated = 0
  let passivationMs = 0
  let passivationError: string | undefined
  if (config.passivate > 0) {
    const pStart = performance.now()
    let next = live + 1_000_000 // ids apart from the live phase's, whatever it reached
    const goal = live + config.passivate
    while (registered < goal && performance.now() - pStart <= config.limitMs) {
      const n = Math.min(CHUNK, goal - registered)
      const r = yield* Effect.result(spawnChunk(next, n))
      next += n
      yield* Effect.sleep(2) // older than `passivateIdleMs`
      yield* rt.runGc
      const stats = yield* rt.stats
      registered = stats.agents + stats.passivated
      passivated = stats.passivated
      if (r._tag === "Failure") {
        passivationError = describeError(r.failure)
        break
      }
      write({ progress: registered, phase: "passivation" })
    }
    passivationMs = performance.now() - pStart
  }
  const report: HostScaleReport = {
    hostId: config.hostId,
    live,
    stoppedBy,
    error,
    elapsedMs,
    before,
    after,
    registered,
    passivated,
    passivationMs,
    passivationError
  }
  write(report)
}).pipe(Effect.scoped, Effect.provide(LeasedRuntime.layer.pipe(Layer.provideMerge(runtime))))

process.stdin.resume()
process.stdin.once("end", () => process.exit(0))
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(0))
Effect.runPromise(program).then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`${config.hostId}: ${describeError(e)}\n`)
    process.exit(1)
  }
)
