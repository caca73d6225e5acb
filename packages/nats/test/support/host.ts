/**
 * One runtime host as a child process, for the multi-host test
 * (`MultiHost.test.ts`, through `Hosts.ts`): a runtime on the native engine
 * with every shared port on NATS — modules in the Object Store, snapshots in
 * KV (saved after every call: `snapshotAfterCalls`), events on JetStream —
 * and its spawns / activations guarded by leases (`LeasedRuntime`).
 *
 * Config: the JSON in `$HOST_CONFIG` (`HostConfig` below). Controlled by a
 * line protocol, one JSON object per line:
 * - stdin, requests: `{ id, op, agentId?, fn?, args? }` with `op` one of
 *   `spawn` (lease, then spawn a counter agent), `activate` (lease, then
 *   restore from the last snapshot), `invoke` (activating the agent here
 *   first when it is not live here), `migrate` (save, evict with the state
 *   kept, release the lease), `held`;
 * - stdout: `{ ready, hostId }` once, then replies `{ id, ok: true, value }`
 *   or `{ id, ok: false, error: { _tag, message, owner? } }`, and one
 *   `{ event, tag, agentId? }` per event this host's runtime published (seen
 *   back from JetStream, so acknowledged by the server).
 *
 * The host ends when stdin closes (its parent is gone) or on SIGINT/SIGTERM,
 * releasing its leases; SIGKILL leaves them to expire after the TTL.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntimes,
  agentId as toAgentId,
  ExecutionAuthorizers,
  makeMetadata,
  MemoryBudget,
  MetricsRepositories
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as readline from "node:readline"
import { LeasedRuntime, NatsHost } from "../../src/index.js"

/** What a host is told through `$HOST_CONFIG`. */
export interface HostConfig {
  readonly url: string
  readonly hostId: string
  readonly names: NatsHost.Names
  /** Lease TTL, ms. */
  readonly ttlMs: number
}

const config = JSON.parse(process.env["HOST_CONFIG"] ?? "{}") as HostConfig
const write = (line: unknown) =>
  process.stdout.write(JSON.stringify(line, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) + "\n")

const ports = NatsHost.layer({
  servers: config.url,
  hostId: config.hostId,
  names: config.names,
  ttlMs: config.ttlMs,
  connectTimeoutMs: 5_000
})
const runtime = AgentRuntimes.layer({ id: config.hostId, persistence: { snapshotAfterCalls: true } }).pipe(
  Layer.provideMerge(Layer.mergeAll(ports, MetricsRepositories.layerMemory, ExecutionAuthorizers.layerAllowAll)),
  Layer.provide(Layer.mergeAll(NativeEngine.layer, Signing.layer({ trustStore: testOnlyTrustStore() })))
)
const HostLive = LeasedRuntime.layer.pipe(Layer.provideMerge(runtime))

interface Request {
  readonly id: number
  readonly op: "spawn" | "activate" | "invoke" | "migrate" | "held"
  readonly agentId?: string
  readonly fn?: string
  readonly args?: ReadonlyArray<number>
}

const program = Effect.gen(function* () {
  const leased = yield* LeasedRuntime.LeasedRuntime
  const { runtime } = leased
  const moduleId = yield* runtime.loadModule(readAgent("counter"), makeMetadata({ name: "counter", version: "1.0.0" }))
  const events = yield* runtime.events
  yield* Effect.forkScoped(
    Stream.runForEach(events, (e) =>
      Effect.sync(() => write({ event: e.eventId, tag: e._tag, agentId: "agentId" in e ? e.agentId : undefined }))
    )
  )

  /** Activates the agent here unless it is live here already. */
  const here = (agentId: ReturnType<typeof toAgentId>) =>
    runtime.agent(agentId).pipe(
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

  const handle = (req: Request): Effect.Effect<unknown, unknown> => {
    const agentId = toAgentId(req.agentId ?? "")
    switch (req.op) {
      case "spawn":
        return Effect.asVoid(leased.spawnAgent(agentId, moduleId, { memoryLimit: 2 * MemoryBudget.MiB }))
      case "activate":
        return Effect.map(leased.activate(agentId), (info) => info.state)
      case "invoke":
        return Effect.andThen(here(agentId), runtime.invoke(agentId, req.fn ?? "get", req.args ?? []))
      case "migrate":
        return leased.migrate(agentId)
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
}).pipe(Effect.scoped, Effect.provide(HostLive))

const fiber = Effect.runFork(program)
for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => Effect.runFork(Fiber.interrupt(fiber)))
fiber.addObserver((exit) => {
  // interrupted by SIGINT/SIGTERM: a clean stop
  const clean = exit._tag === "Success" || Cause.hasInterruptsOnly(exit.cause)
  if (!clean) process.stderr.write(`host ${config.hostId} failed: ${String(exit.cause)}\n`)
  process.exit(clean ? 0 : 1)
})
