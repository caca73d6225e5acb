/**
 * One runtime host of `pnpm start --hosts N` (`MultiHost.ts` starts N of
 * these as child processes): a runtime on the native engine whose modules
 * (Object Store), agent states (KV, saved after every call:
 * `snapshotAfterCalls`) and events (JetStream) live on the run's
 * nats-server, with one owner per agent across hosts through leases
 * (`@agent-runtime/nats` `LeasedRuntime`).
 *
 * Config: the JSON in its first argument (`HostConfig`; visible in `ps`, no secret in it). Line protocol, one JSON
 * object per line:
 * - stdin, requests `{ id, op, agentId?, type?, critical?, fn?, args?, offset?, bytes?, length? }`,
 *   `op` one of `spawn` (lease, then spawn an agent of the swarm's fixture
 *   `type`, memory per `Plan.memoryOf`), `invoke` (activating the agent here
 *   from its last snapshot first when it is not live here; `args` and the
 *   results in `toWire` form: an i64 as `{ "i64": "<decimal>" }`),
 *   `writeMemory` (`bytes` base64 at `offset`) and `readMemory` (`length`
 *   bytes at `offset`, the value base64), activating likewise, and `held`;
 * - stdout: `{ ready, hostId }` once loaded, then replies
 *   `{ id, ok: true, value }` / `{ id, ok: false, error: { _tag, message, owner? } }`
 *   and `{ event }` for each event this runtime published, as it comes back
 *   from JetStream (so acknowledged by the server).
 *
 * The host stops when stdin closes (its parent is gone) or on SIGINT/SIGTERM
 * (leases released); after SIGKILL its leases expire after `ttlMs`.
 *
 * @since 0.1.0
 */
import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntimes,
  agentId as toAgentId,
  ExecutionAuthorizers,
  makeMetadata,
  MemoryBudget,
  type ModuleId,
  MetricsRepositories
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import { NodeEngine } from "@agent-runtime/engine-node"
import { LeasedRuntime, NatsHost } from "@agent-runtime/nats"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as readline from "node:readline"
import { fromWire, toWire } from "./MultiHost.js"
import { agentTypes, type AgentType, memoryOf, POOL_OVERCOMMIT } from "./Plan.js"

/** What a host is told through its first argument. */
export interface HostConfig {
  readonly url: string
  readonly hostId: string
  /** Prefix of the run's buckets, object stores and stream (`[A-Za-z0-9_]`). */
  readonly names: string
  /** Lease TTL, ms. */
  readonly ttlMs: number
  /** Agents this host may hold at most (sizes its pool: one reservation, 1 MiB, each). */
  readonly capacity: number
}

/** Pool reservation of each agent (`Plan.memoryOf`: 1 MiB for every type; the pool over-commits like the embedded swarm's). */
export const AGENT_RESERVATION = 1 * MemoryBudget.MiB

interface Request {
  readonly id: number
  readonly op: "spawn" | "invoke" | "writeMemory" | "readMemory" | "held"
  readonly agentId?: string
  readonly type?: AgentType
  readonly critical?: boolean
  readonly fn?: string
  readonly args?: ReadonlyArray<unknown>
  readonly offset?: number
  readonly bytes?: string
  readonly length?: number
}

const config = JSON.parse(process.argv[2] ?? "{}") as HostConfig
const write = (line: unknown) => process.stdout.write(JSON.stringify(line) + "\n")

const ports = NatsHost.layer({
  servers: config.url,
  hostId: config.hostId,
  names: NatsHost.names(config.names),
  ttlMs: config.ttlMs,
  connectTimeoutMs: 5_000
})
const runtime = AgentRuntimes.layer({
  id: config.hostId,
  persistence: { snapshotAfterCalls: true },
  // no automatic pressure handling: nothing here is evicted (an eviction by pressure would delete saved state)
  autoPressure: false,
  pool: { totalMemory: Math.max(64, config.capacity + 16) * AGENT_RESERVATION, overcommit: POOL_OVERCOMMIT }
}).pipe(
  Layer.provideMerge(Layer.mergeAll(ports, MetricsRepositories.layerMemory, ExecutionAuthorizers.layerAllowAll)),
  Layer.provide(
    Layer.mergeAll(NativeEngine.layer, NodeEngine.layerPlatform, verifierLayer({ trustStore: testOnlyTrustStore() }))
  )
)

/** Start-up phases on stderr (the parent shows them when a host does not come up). */
const phase = (what: string) => Effect.sync(() => process.stderr.write(`${config.hostId}: ${what}\n`))

const program = Effect.gen(function* () {
  yield* phase("runtime up")
  const leased = yield* LeasedRuntime.LeasedRuntime
  const { runtime } = leased
  const moduleIds = new Map<string, ModuleId>()
  for (const type of agentTypes) {
    moduleIds.set(type, yield* runtime.loadModule(readAgent(type), makeMetadata({ name: type, version: "1.0.0" })))
  }
  yield* phase("modules loaded")
  const events = yield* runtime.events
  yield* Effect.forkScoped(Stream.runForEach(events, (e) => Effect.sync(() => write({ event: e.eventId }))))

  const handle = (req: Request): Effect.Effect<unknown, unknown> => {
    const agentId = toAgentId(req.agentId ?? "")
    /** The agent live here: activated from its last snapshot first when it is not. */
    const here = runtime.agent(agentId).pipe(
      Effect.asVoid,
      Effect.catchTag("AgentNotFound", () =>
        leased.activate(agentId).pipe(
          Effect.asVoid,
          // activated here by a concurrent call meanwhile: go on
          Effect.catchIf(
            (e) => e._tag === "AgentAlreadyExists" && "owner" in e && e.owner === config.hostId,
            () => Effect.void
          )
        )
      )
    )
    switch (req.op) {
      case "spawn": {
        const type = req.type ?? "counter"
        const memory = memoryOf(type)
        return Effect.asVoid(
          leased.spawnAgent(agentId, moduleIds.get(type)!, {
            memoryLimit: memory.limit,
            memoryReservation: memory.reservation,
            critical: req.critical ?? false
          })
        )
      }
      case "invoke":
        return here.pipe(
          Effect.andThen(runtime.invoke(agentId, req.fn ?? "get", fromWire(req.args ?? []))),
          Effect.map(toWire)
        )
      case "writeMemory":
        return here.pipe(
          Effect.andThen(runtime.writeMemory(agentId, req.offset ?? 0, Buffer.from(req.bytes ?? "", "base64")))
        )
      case "readMemory":
        return here.pipe(
          Effect.andThen(runtime.readMemory(agentId, req.offset ?? 0, req.length ?? 0)),
          Effect.map((bytes) => Buffer.from(bytes).toString("base64"))
        )
      case "held":
        return Effect.sync(() => leased.held())
    }
  }

  write({ ready: true, hostId: config.hostId })
  const lines = Stream.fromAsyncIterable(readline.createInterface({ input: process.stdin }), (e) => e)
  yield* Stream.runForEach(lines, (line) =>
    Effect.forkScoped(
      Effect.suspend(() => {
        const req = JSON.parse(line) as Request
        return handle(req).pipe(
          Effect.matchCause({
            onSuccess: (value) => write({ id: req.id, ok: true, value }),
            onFailure: (cause) => {
              const e = cause.reasons.find((r) => r._tag === "Fail")?.error as
                | { _tag?: string; message?: string; owner?: string }
                | undefined
              write({
                id: req.id,
                ok: false,
                error: { _tag: e?._tag ?? "Defect", message: e?.message ?? String(cause), owner: e?.owner }
              })
            }
          })
        )
      })
    )
  )
}).pipe(Effect.scoped, Effect.provide(LeasedRuntime.layer.pipe(Layer.provideMerge(runtime))))

process.stderr.write(`${config.hostId}: starting\n`)
const fiber = Effect.runFork(program)
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => Effect.runFork(Fiber.interrupt(fiber)))
fiber.addObserver((exit) => {
  // interrupted by SIGINT/SIGTERM: a clean stop
  const clean = exit._tag === "Success" || Cause.hasInterruptsOnly(exit.cause)
  if (!clean) process.stderr.write(`swarm host ${config.hostId} failed: ${String(exit.cause)}\n`)
  process.exit(clean ? 0 : 1)
})
