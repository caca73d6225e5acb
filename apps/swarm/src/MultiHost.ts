/**
 * `pnpm start --hosts N` (`./dev start --hosts 3`): the swarm's workload over
 * several runtime hosts on one NATS server (issue 14 item 6). It starts a
 * local `nats-server -js` on a free port (a temporary store, removed at the
 * end), N host processes (`HostMain.ts`: native engine, modules / agent
 * states / events on NATS, one owner per agent through leases), spawns the
 * swarm's plan (`Plan.planWorkload`: 593 agents by default — counter, text,
 * lifecycle, leaky, flaky, trapper) round-robin across them and runs its
 * rounds: each round the agents `Rounds.roundWorkers` picks do their
 * `Tasks.task` (counters count and add, text agents process sentences
 * through linear memory, lifecycle agents bump, leaky agents leak, flaky
 * agents work, trappers compute and trap), every result checked as in the
 * embedded swarm (`Ledger`), each call sent to the host that holds the
 * agent. Mid-run (halfway through round `rounds / 2`) it kills one host
 * with SIGKILL; the calls for that host's agents then go through the
 * survivors, which activate them from their last snapshots once the dead
 * host's leases expire (`ttlMs`).
 *
 * Not run here (they are one runtime's supervisor steps, not an agent's
 * work): the pause / resume / manual-eviction rounds, memory-pressure
 * handling (a leaky agent leaks 32 KiB per task, 64 KiB in the leak rounds,
 * instead of aiming the pool at its thresholds) and health checks (so the
 * flaky agents and the health-breaking lifecycle agents are never evicted).
 *
 * The report (`MultiHostReport`) counts, from the run itself:
 * - `agentsMoved`: agents that ended on another host than they were spawned on;
 * - `acknowledgedCallsLost`: acknowledged state-changing calls whose state
 *   did not come back — the embedded swarm's ack-log comparison
 *   (`AckLog.compare`): after the run every agent's state is read where it
 *   lives now and must be at least the last value acknowledged for it
 *   (must be 0: every call's state is saved before the call returns);
 * - `acknowledgedEventsLost`: events the hosts saw acknowledged by JetStream
 *   (their own subscription delivers them back from the stream) that a
 *   durable consumer reading the whole stream afterwards does not get (must be 0);
 * - `duplicates`: stream deliveries of an `eventId` that consumer had seen
 *   already (it de-duplicates by `eventId`; the server drops re-publishes);
 * - `recoverMs`: from the SIGKILL to the last of the dead host's agents
 *   answering again on a survivor — each is asked through a survivor right
 *   after the kill, as Coordination would (at least the time its lease
 *   takes to expire: `ttlMs` after the last renewal);
 * - `byType`: agents, moved agents and acknowledged calls (lost) per type.
 *
 * Calls in flight on the killed host are neither acknowledged nor retried
 * (`callsInFlightAtKill`; the rest of that agent's task is dropped); one of
 * them may still have been applied and saved (`unacknowledgedApplied`
 * agents). Every child (nats-server, hosts) is taken down at the end and on
 * SIGINT/SIGTERM (then exit code 130).
 *
 * @since 0.1.0
 */
import { readAgent } from "@agent-runtime/agents"
import { type AgentRuntimeShape, type EventId, type WasmValue } from "@agent-runtime/domain"
import { Nats, NatsEventBus, NatsHost } from "@agent-runtime/nats"
import { natsServerBinary, type RunningNatsServer, startNatsServer } from "@agent-runtime/nats/server"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as readline from "node:readline"
import { fileURLToPath } from "node:url"
import { type AckComparison, type AckEntry, compare } from "./AckLog.js"
import { EventTally } from "./EventTally.js"
import type { HostConfig } from "./HostMain.js"
import { Ledger, type Run, type RunSettings } from "./Ledger.js"
import {
  agentTypes,
  type AgentType,
  leakRounds,
  planCounts,
  planWorkload,
  type SwarmAgent,
  toSwarmAgent
} from "./Plan.js"
import { roundWorkers } from "./Rounds.js"
import { task } from "./Tasks.js"

/** Settings of a multi-host run. */
export interface MultiHostOptions {
  /** Host processes (≥ 2: one is killed). */
  readonly hosts: number
  /** Agents of the swarm's plan (at least `Plan.MIN_AGENTS`). */
  readonly agents: number
  /** Rounds of the workload (at least `Plan.DEFAULT_ROUNDS`). */
  readonly rounds: number
  /** Seeds the plan and the workload, and picks the host that is killed (`seed % hosts`). */
  readonly seed: number
  /** Lease TTL, ms (default 2000). */
  readonly ttlMs?: number | undefined
  /** Progress lines (to stderr by the CLI); none when absent. */
  readonly log?: ((line: string) => void) | undefined
}

/** One agent type's share of a multi-host run. */
export interface MultiHostTypeCounts {
  readonly agents: number
  readonly onKilledHost: number
  readonly moved: number
  readonly acknowledgedCalls: number
  readonly acknowledgedCallsLost: number
}

/** What a multi-host run measured. */
export interface MultiHostReport {
  readonly mode: "hosts"
  readonly hosts: number
  readonly agents: number
  readonly rounds: number
  readonly seed: number
  /** The run's nats-server (stopped by the end of the run). */
  readonly natsUrl: string
  readonly killedHost: string
  /** Agents the killed host held when it died. */
  readonly agentsOnKilledHost: number
  readonly agentsMoved: number
  /** Acknowledged state-changing calls (counter increment/add, lifecycle bump, leaky leak, flaky work). */
  readonly acknowledgedCalls: number
  /** Acknowledged calls whose state did not come back (`AckLog.compare`; must be 0). */
  readonly acknowledgedCallsLost: number
  /** Acknowledged calls of agents whose state could not be read after the run (must be 0). */
  readonly acknowledgedCallsUnchecked: number
  /** The first agents whose state did not come back. */
  readonly lostAgents: AckComparison["lostAgents"]
  /** Calls (and memory reads/writes) sent to the killed host and never answered. */
  readonly callsInFlightAtKill: number
  /** Agents whose state is ahead of their last acknowledged value: a call in flight at the kill was applied and saved. */
  readonly unacknowledgedApplied: number
  /** Calls that failed for another reason than the kill or a trapper's own trap (must be 0). */
  readonly callsFailed: number
  /** Invocations of the tasks (the ledger's count; failed ones include the trappers' traps and the calls cut by the kill). */
  readonly invocations: { readonly total: number; readonly ok: number }
  /** Results checked against JavaScript (`Corpus.facts`, the expected states) and the wrong ones (must be 0). */
  readonly verification: { readonly checked: number; readonly mismatches: number }
  /** Wrong results and defects (must be 0), the first few described. */
  readonly crashes: number
  readonly crashDetails: ReadonlyArray<string>
  readonly acknowledgedEvents: number
  readonly acknowledgedEventsLost: number
  readonly duplicates: number
  /** ms from the SIGKILL until the last of the killed host's agents answered on a survivor. */
  readonly recoverMs: number
  readonly leaseTtlMs: number
  readonly byType: Readonly<Record<AgentType, MultiHostTypeCounts>>
  readonly durationMs: number
  /** Every check held: nothing acknowledged lost or unreadable, no failed call, no wrong result, every agent of the killed host back. */
  readonly ok: boolean
}

type Reply =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly error: { readonly _tag: string; readonly message: string; readonly owner?: string } }

interface Host {
  readonly hostId: string
  readonly child: ChildProcess
  readonly request: (op: string, params?: Record<string, unknown>) => Promise<Reply>
  readonly events: Array<string>
  readonly exited: Promise<void>
  /** False from the moment the run kills it (before its exit is observed). */
  readonly alive: () => boolean
  /** Kills it with SIGKILL. */
  readonly kill: () => void
}

const appDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

/** Tasks (and spawns, reads) in flight at once across the hosts. */
const CONCURRENCY = 64

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Every child of the run, for the final and the signal clean-up. */
const children = new Set<ChildProcess>()
const track = (child: ChildProcess) => {
  children.add(child)
  child.once("exit", () => children.delete(child))
  return child
}
/** Temporary nats-server stores of running runs, removed at the end and on SIGINT/SIGTERM. */
const storeDirs = new Set<string>()
const killAll = () => {
  for (const child of children) child.kill("SIGKILL")
  for (const dir of storeDirs) fs.rmSync(dir, { recursive: true, force: true })
}

const exitedPromise = (child: ChildProcess) =>
  new Promise<void>((resolve) =>
    child.exitCode !== null || child.signalCode !== null ? resolve() : child.once("exit", () => resolve())
  )

/** Stops a child: SIGTERM, SIGKILL after `graceMs`. */
const stop = async (child: ChildProcess, graceMs = 5_000) => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = exitedPromise(child)
  child.kill("SIGTERM")
  const timer = setTimeout(() => child.kill("SIGKILL"), graceMs)
  await exited
  clearTimeout(timer)
}

const startHost = (config: HostConfig): Promise<Host> => {
  const child = track(
    spawn(
      process.execPath,
      ["--conditions=@agent-runtime/source", "--import", "tsx", "src/HostMain.ts", JSON.stringify(config)],
      {
        cwd: appDir,
        stdio: ["pipe", "pipe", "pipe"]
      }
    )
  )
  let killed = false
  const alive = () => !killed && child.exitCode === null && child.signalCode === null
  let stderr = ""
  child.stderr?.on("data", (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4_000)))
  const gone: Reply = { ok: false, error: { _tag: "HostGone", message: `host ${config.hostId} exited` } }
  const pending = new Map<number, (reply: Reply) => void>()
  const exited = exitedPromise(child).then(() => {
    for (const [, settle] of pending) settle(gone)
    pending.clear()
  })
  const events: Array<string> = []
  let nextId = 0
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`host ${config.hostId} did not start within 120 s:\n${stderr}`)),
      120_000
    )
    void exited.then(() => reject(new Error(`host ${config.hostId} exited at start:\n${stderr}`)))
    readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      let msg: { id?: number; ready?: boolean; event?: string } & Reply
      try {
        msg = JSON.parse(line)
      } catch {
        return
      }
      if (msg.ready === true) {
        clearTimeout(timer)
        resolve({
          hostId: config.hostId,
          child,
          events,
          exited,
          alive,
          kill: () => {
            killed = true
            child.kill("SIGKILL")
          },
          request: (op, params = {}) =>
            new Promise<Reply>((settle) => {
              if (!alive()) return settle(gone)
              const id = ++nextId
              pending.set(id, settle)
              child.stdin!.write(JSON.stringify({ id, op, ...params }) + "\n")
            })
        })
      } else if (typeof msg.event === "string") {
        events.push(msg.event)
      } else if (typeof msg.id === "number") {
        pending.get(msg.id)?.(msg)
        pending.delete(msg.id)
      }
    })
  })
}

/** Runs `tasks` with at most `limit` at once. */
const pool = async <A>(items: ReadonlyArray<A>, limit: number, task: (a: A) => Promise<void>) => {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await task(items[next++]!)
    })
  )
}

/** Reads the run's whole event stream through a durable consumer, de-duplicating by `eventId`. */
const readEvents = (url: string, prefix: string) => {
  const names = NatsHost.names(prefix)
  return Effect.gen(function* () {
    const nats = yield* Nats.Nats
    const bus = yield* NatsEventBus.NatsEventBus
    const info = yield* Effect.promise(() => nats.manager.streams.info(names.stream))
    const deliveries = yield* bus.consume({
      durable: "swarm-report",
      deliver: "all",
      filterSubject: `${names.subjectPrefix}.>`
    })
    const distinct = new Set<EventId>()
    let duplicates = 0
    yield* Stream.runForEach(Stream.take(deliveries, info.state.messages), (d) =>
      Effect.gen(function* () {
        if (distinct.has(d.event.eventId)) duplicates++
        else distinct.add(d.event.eventId)
        yield* d.ack
      })
    )
    return { distinct: distinct as Set<string>, duplicates }
  }).pipe(
    Effect.scoped,
    Effect.provide(
      NatsEventBus.layer({ runtimeId: "swarm-report", stream: names.stream, subjectPrefix: names.subjectPrefix }).pipe(
        Layer.provideMerge(Nats.layer({ servers: url, name: "swarm-report" }))
      )
    ),
    Effect.timeout("120 seconds")
  )
}

/** An argument or result of an invocation on the hosts' line protocol: an i64 (`bigint`) as `{ "i64": "<decimal>" }`. */
export const toWire = (values: ReadonlyArray<WasmValue>): Array<unknown> =>
  values.map((v) => (typeof v === "bigint" ? { i64: v.toString() } : v))

/** The inverse of `toWire`. */
export const fromWire = (values: ReadonlyArray<unknown>): Array<WasmValue> =>
  values.map((v) =>
    typeof v === "object" && v !== null && "i64" in v ? BigInt((v as { readonly i64: string }).i64) : (v as WasmValue)
  )

/** A read-only call per type, to see an agent answer (the recovery probe). */
const probeOf: Readonly<Record<AgentType, readonly [string, ReadonlyArray<number>]>> = {
  counter: ["get", []],
  text: ["word_count", [0, 0]],
  lifecycle: ["state", []],
  leaky: ["leaked", []],
  flaky: ["health_checks", []],
  trapper: ["ok", []]
}

/**
 * The call that reads an agent's state after the run (the value its
 * acknowledged calls returned last, `AckLog.ts`): `flaky` has no read-only
 * getter, so it is read with one more `work()` (its count minus that call).
 * `text` and `trapper` agents keep no state between tasks.
 */
const stateOf: Readonly<Record<AgentType, { readonly fn: string; readonly minus: number } | undefined>> = {
  counter: { fn: "get", minus: 0 },
  text: undefined,
  lifecycle: { fn: "state", minus: 0 },
  leaky: { fn: "leaked", minus: 0 },
  flaky: { fn: "work", minus: 1 },
  trapper: undefined
}

/** KiB a leaky agent leaks per task: 32, and 64 in the workload's leak rounds (the embedded swarm's floor there). */
const leakKiBOf = (rounds: number, round: number) => (leakRounds(rounds).some((l) => l.round === round) ? 64 : 32)

/**
 * Runs the multi-host swarm and returns its report. Throws when nats-server
 * is not installed (the message says how to get it) or a host cannot start.
 */
export const runMultiHost = async (options: MultiHostOptions): Promise<MultiHostReport> => {
  const log = options.log ?? (() => {})
  const ttlMs = options.ttlMs ?? 2_000
  const binary = natsServerBinary()
  if (binary === undefined) {
    throw new Error(
      "--hosts needs nats-server (`nats-server` on the PATH or /usr/sbin/nats-server): `apt-get install -y nats-server` (Debian), or NATS_SERVER=/path"
    )
  }
  const started = Date.now()
  const workload = planWorkload({ agents: options.agents, seed: options.seed, rounds: options.rounds })
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), "swarm-nats-"))
  storeDirs.add(storeDir)
  const hosts: Array<Host> = []
  let nats: RunningNatsServer | undefined
  try {
    const server = await startNatsServer({ binary, storeDir })
    nats = server
    log(`nats-server -js on ${server.url}`)
    const names = "swarm"
    const capacity = workload.total // a survivor may end up holding every agent
    const ids = Array.from(
      { length: options.hosts },
      (_, i) => `host-${String.fromCharCode(97 + (i % 26))}${i >= 26 ? i : ""}`
    )
    // one host first: it creates the buckets and the stream the others then open
    hosts.push(await startHost({ url: server.url, hostId: ids[0]!, names, ttlMs, capacity }))
    hosts.push(
      ...(await Promise.all(
        ids.slice(1).map((hostId) => startHost({ url: server.url, hostId, names, ttlMs, capacity }))
      ))
    )
    const byId = new Map(hosts.map((h) => [h.hostId, h]))
    log(`${hosts.length} hosts ready: ${ids.join(", ")}`)

    const agents = workload.plan.map(toSwarmAgent)
    const agentOf = new Map(agents.map((a) => [a.id as string, a]))
    const indexOf = new Map(agents.map((a, i) => [a.id as string, i]))
    const spawnedOn = new Map<string, string>()
    const owner = new Map<string, string>()
    /** The acknowledged state-changing calls, in order (the ack log of `AckLog.ts`, kept in memory). */
    const acknowledged: Array<AckEntry> = []
    let callsFailed = 0
    let inFlightAtKill = 0
    const failures: Array<string> = []
    /** Agents whose host died under their current task: the rest of that task is not sent. */
    const broken = new Set<string>()

    const victim = byId.get(ids[workload.seed % ids.length]!)!
    const survivors = () => hosts.filter((h) => h.alive())

    /**
     * One request about `agentId` through its owner, following it when it
     * moved (`AgentAlreadyExists { owner }`) and waiting for a dead owner's
     * lease to expire. `HostGone`: the owner died with the call in flight
     * (not acknowledged: the client does not know whether it ran).
     */
    const send = async (agentId: string, op: string, params: Record<string, unknown>): Promise<Reply> => {
      const deadline = Date.now() + 60_000
      for (;;) {
        let target = byId.get(owner.get(agentId)!)!
        if (!target.alive()) {
          const live = survivors()
          target = live[indexOf.get(agentId)! % live.length]!
          owner.set(agentId, target.hostId)
        }
        const reply = await target.request(op, { agentId, ...params })
        if (reply.ok) return reply
        const { _tag, owner: holder } = reply.error
        if (_tag === "HostGone") {
          inFlightAtKill++
          broken.add(agentId)
          const agent = agentOf.get(agentId)!
          agent.known = false // the call may have been applied: its next result tells the state, as after a restore
          return reply
        }
        if (
          _tag === "AgentAlreadyExists" &&
          holder !== undefined &&
          holder !== target.hostId &&
          byId.get(holder)?.alive()
        ) {
          owner.set(agentId, holder)
          continue
        }
        if (_tag === "AgentAlreadyExists" && Date.now() < deadline) {
          await sleep(100) // held by the dead host until its lease expires
          continue
        }
        // a trapper's traps are its task (checked by `Tasks.trapperTask`); anything else is a failed call
        if (!(_tag === "Trap" && agentOf.get(agentId)!.type === "trapper")) {
          callsFailed++
          if (failures.length < 10)
            failures.push(`${agentId} ${op} on ${target.hostId}: ${_tag} ${reply.error.message}`)
        }
        return reply
      }
    }

    /** A request of a task as an effect: not sent once the agent's host died under the task (`broken`). */
    const remote = <A>(agentId: string, op: string, params: Record<string, unknown>, decode: (value: unknown) => A) =>
      Effect.flatMap(
        Effect.promise(() =>
          broken.has(agentId)
            ? Promise.resolve<Reply>({
                ok: false,
                error: { _tag: "HostGone", message: "the agent's host died during this task" }
              })
            : send(agentId, op, params)
        ),
        (reply) => (reply.ok ? Effect.succeed(decode(reply.value)) : Effect.fail(reply.error))
      )

    /**
     * What the swarm's tasks (`Tasks.ts`, through `Ledger.call` and
     * `attempt`) use of a runtime — `invoke`, `writeMemory`, `readMemory` —
     * each sent to the agent's current host. A task uses nothing else; it
     * reads only the `_tag` of a failure (the host's error, or `HostGone`).
     */
    const hostsRuntime = {
      invoke: (agentId: string, fn: string, args: ReadonlyArray<WasmValue> = []) =>
        remote(agentId, "invoke", { fn, args: toWire(args) }, (v) => fromWire(v as Array<unknown>)),
      writeMemory: (agentId: string, offset: number, bytes: Uint8Array) =>
        remote(agentId, "writeMemory", { offset, bytes: Buffer.from(bytes).toString("base64") }, () => undefined),
      readMemory: (agentId: string, offset: number, length: number) =>
        remote(agentId, "readMemory", { offset, length }, (v) => new Uint8Array(Buffer.from(v as string, "base64")))
    }
    const settings: RunSettings = {
      total: workload.total,
      seed: workload.seed,
      rounds: workload.rounds,
      startRound: 1,
      prng: workload.prng,
      plan: workload.plan,
      poolBytes: 0,
      tamper: new Set(),
      concurrency: CONCURRENCY,
      read: readAgent,
      progress: () => {},
      compiles: () => 0,
      ack: (agentId, value) => void acknowledged.push({ _tag: "Ack", agentId, value }),
      evicted: () => {},
      acknowledged: undefined,
      stored: undefined
    }
    const run: Run = {
      runtime: hostsRuntime as unknown as AgentRuntimeShape, // the tasks use only the three methods above
      settings,
      ledger: new Ledger(),
      tally: new EventTally(),
      startedAt: started
    }

    // spawn round-robin; the first agents of each type one at a time (each host compiles a module on its first spawn)
    const spawnOne = async (agent: SwarmAgent) => {
      const hostId = ids[indexOf.get(agent.id)! % ids.length]!
      const reply = await byId
        .get(hostId)!
        .request("spawn", { agentId: agent.id, type: agent.type, critical: agent.critical })
      if (!reply.ok) throw new Error(`spawn of ${agent.id} on ${hostId}: ${reply.error._tag} ${reply.error.message}`)
      agent.spawned = true
      spawnedOn.set(agent.id, hostId)
      owner.set(agent.id, hostId)
    }
    const firsts = agentTypes.flatMap((type) => agents.filter((a) => a.type === type).slice(0, ids.length))
    for (const agent of firsts) await spawnOne(agent)
    await pool(
      agents.filter((a) => !a.spawned),
      CONCURRENCY,
      spawnOne
    )
    const counts = planCounts(workload.total)
    log(
      `${agents.length} agents spawned across ${hosts.length} hosts (${agentTypes.map((t) => `${counts[t]} ${t}`).join(", ")})`
    )

    let killedAt: number | undefined
    let onVictim: ReadonlyArray<SwarmAgent> = []
    let recovery: Promise<number> | undefined
    const kill = (round: number) => {
      onVictim = agents.filter((a) => owner.get(a.id) === victim.hostId)
      victim.kill()
      killedAt = Date.now()
      log(`round ${round}: killed ${victim.hostId} (SIGKILL) holding ${onVictim.length} agents`)
      // as Coordination would: ask a survivor for each of the dead host's agents right away (they answer
      // once the dead host's leases expire); recovered when the last one answers
      const from = killedAt
      recovery = pool(onVictim, CONCURRENCY, async (a) => {
        const [fn, args] = probeOf[a.type]
        await send(a.id, "invoke", { fn, args })
      }).then(() => Date.now() - from)
    }

    // the rounds: the swarm's tasks (Tasks.ts) for the agents Rounds.roundWorkers picks, the kill halfway through the middle one
    const killRound = Math.max(1, Math.floor(workload.rounds / 2))
    for (let round = 1; round <= workload.rounds; round++) {
      const leakKiB = leakKiBOf(workload.rounds, round)
      const leaking = leakRounds(workload.rounds).some((l) => l.round === round)
      // built before any runs: a task draws its random choices from the run's PRNG when built
      const tasks = roundWorkers(workload.prng, agents, leaking).map((agent) => ({
        agent,
        work: task(run, agent, round, leakKiB)
      }))
      const before = { ok: run.ledger.invocations.ok, total: run.ledger.invocations.total }
      let dispatched = 0
      await Effect.runPromise(
        Effect.forEach(
          tasks,
          ({ agent, work }) =>
            Effect.suspend(() => {
              if (round === killRound && killedAt === undefined && ++dispatched > tasks.length / 2) kill(round)
              broken.delete(agent.id)
              return work
            }),
          { concurrency: CONCURRENCY, discard: true }
        )
      )
      const { ok, total } = run.ledger.invocations
      log(
        `round ${round}/${workload.rounds}: ${tasks.length} tasks, ${ok - before.ok} calls ok, ${total - ok - (before.total - before.ok)} failed`
      )
    }
    await victim.exited
    const recoverMs = recovery === undefined ? 0 : await recovery
    log(`the ${onVictim.length} agents of ${victim.hostId} answered on the survivors ${recoverMs} ms after the kill`)

    // the final state of every agent, read where it lives now, compared with the acknowledged calls (AckLog.compare)
    const answered = new Set<string>()
    let applied = 0
    const lastAcked = new Map(acknowledged.map((e) => [e.agentId, e._tag === "Ack" ? e.value : 0]))
    await pool(agents, CONCURRENCY, async (agent) => {
      const read = stateOf[agent.type]
      const [fn, args] = read === undefined ? probeOf[agent.type] : [read.fn, []]
      const reply = await send(agent.id, "invoke", { fn, args })
      if (!reply.ok) return
      answered.add(agent.id)
      if (read === undefined) return
      const value = Number((reply.value as Array<unknown>)[0]) - read.minus
      // ahead of its last acknowledged value: a call in flight at the kill was applied and saved
      if (value > (lastAcked.get(agent.id) ?? toSwarmAgent(agent).expected)) applied++
      agent.expected = value
      agent.known = true
    })
    const comparison = compare(acknowledged, agents, answered)
    const agentsMoved = agents.filter((a) => owner.get(a.id) !== spawnedOn.get(a.id)).length
    log(`${agentsMoved} agents moved; reading the event stream`)

    const acknowledgedEvents = hosts.flatMap((h) => h.events)
    const stream = await Effect.runPromise(readEvents(server.url, names))
    const eventsLost = acknowledgedEvents.filter((id) => !stream.distinct.has(id)).length
    for (const f of failures) log(`failed call: ${f}`)
    for (const c of run.ledger.crashDetails) log(`wrong: ${c}`)
    const byType = Object.fromEntries(
      agentTypes.map((type) => {
        const ofType = agents.filter((a) => a.type === type)
        const ofTypeIds = new Set<string>(ofType.map((a) => a.id))
        const c = compare(
          acknowledged.filter((e) => ofTypeIds.has(e.agentId)),
          ofType,
          answered
        )
        return [
          type,
          {
            agents: ofType.length,
            onKilledHost: onVictim.filter((a) => a.type === type).length,
            moved: ofType.filter((a) => owner.get(a.id) !== spawnedOn.get(a.id)).length,
            acknowledgedCalls: c.calls,
            acknowledgedCallsLost: c.lost
          }
        ]
      })
    ) as Record<AgentType, MultiHostTypeCounts>
    const { ledger } = run
    const report: MultiHostReport = {
      mode: "hosts",
      hosts: options.hosts,
      agents: workload.total,
      rounds: workload.rounds,
      seed: workload.seed,
      natsUrl: server.url,
      killedHost: victim.hostId,
      agentsOnKilledHost: onVictim.length,
      agentsMoved,
      acknowledgedCalls: comparison.calls,
      acknowledgedCallsLost: comparison.lost,
      acknowledgedCallsUnchecked: comparison.unchecked,
      lostAgents: comparison.lostAgents,
      callsInFlightAtKill: inFlightAtKill,
      unacknowledgedApplied: applied,
      callsFailed,
      invocations: { total: ledger.invocations.total, ok: ledger.invocations.ok },
      verification: ledger.verification,
      crashes: ledger.crashes,
      crashDetails: ledger.crashDetails,
      acknowledgedEvents: acknowledgedEvents.length,
      acknowledgedEventsLost: eventsLost,
      duplicates: stream.duplicates,
      recoverMs,
      leaseTtlMs: ttlMs,
      byType,
      durationMs: Date.now() - started,
      ok:
        comparison.lost === 0 &&
        comparison.unchecked === 0 &&
        eventsLost === 0 &&
        callsFailed === 0 &&
        ledger.crashes === 0 &&
        agentsMoved >= onVictim.length &&
        killedAt !== undefined
    }
    return report
  } finally {
    await Promise.all(hosts.map((h) => stop(h.child)))
    await Promise.all([...children].map((c) => stop(c)))
    await nats?.stop()
    fs.rmSync(storeDir, { recursive: true, force: true })
    storeDirs.delete(storeDir)
  }
}
/** The report as text. */
export const formatMultiHost = (r: MultiHostReport): string =>
  [
    `swarm over ${r.hosts} hosts on one nats-server: ${r.agents} agents, ${r.rounds} rounds, seed ${r.seed} — ${r.ok ? "OK" : "FAILED"}`,
    `  killed ${r.killedHost} (SIGKILL) mid-run holding ${r.agentsOnKilledHost} agents; lease TTL ${r.leaseTtlMs} ms`,
    `  agents moved              ${r.agentsMoved}`,
    `  acknowledged calls        ${r.acknowledgedCalls}, lost ${r.acknowledgedCallsLost}, unreadable ${r.acknowledgedCallsUnchecked}`,
    `  calls in flight at kill   ${r.callsInFlightAtKill} (applied though unacknowledged: ${r.unacknowledgedApplied})`,
    `  failed calls              ${r.callsFailed}`,
    `  invocations               ${r.invocations.total} (${r.invocations.ok} ok); results checked ${r.verification.checked}, wrong ${r.verification.mismatches}; crashes ${r.crashes}`,
    `  acknowledged events       ${r.acknowledgedEvents}, lost ${r.acknowledgedEventsLost}, duplicates ${r.duplicates}`,
    `  time to recover           ${r.recoverMs} ms`,
    `  by type                   agents / on killed host / moved / acknowledged calls (lost)`,
    ...agentTypes.map((t) => {
      const c = r.byType[t]
      return `    ${t.padEnd(24)}${c.agents} / ${c.onKilledHost} / ${c.moved} / ${c.acknowledgedCalls} (${c.acknowledgedCallsLost})`
    }),
    `  duration                  ${r.durationMs} ms`
  ].join("\n")

/**
 * The CLI's `--hosts` path: runs, prints the report (JSON with `json`),
 * returns the exit code (0 ok, 1 a check failed or the run could not start).
 * SIGINT/SIGTERM take every child down and exit with 130.
 */
export const runMultiHostCli = async (
  options: MultiHostOptions & { readonly json: boolean; readonly quiet: boolean }
): Promise<number> => {
  const onSignal = () => {
    killAll()
    process.exit(130)
  }
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  process.once("exit", killAll)
  const log =
    options.json || options.quiet ? undefined : (line: string) => void process.stderr.write(`swarm: ${line}\n`)
  try {
    const report = await runMultiHost({ ...options, log })
    process.stdout.write(`${options.json ? JSON.stringify(report, null, 2) : formatMultiHost(report)}\n`)
    return report.ok ? 0 : 1
  } catch (e) {
    process.stderr.write(`swarm: --hosts run failed: ${e instanceof Error ? e.message : String(e)}\n`)
    return 1
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
  }
}
