/**
 * `pnpm start --hosts N` (`./dev start --hosts 3`): the swarm over several
 * runtime hosts on one NATS server (issue 14 item 6). It starts a local
 * `nats-server -js` on a free port (a temporary store, removed at the end),
 * N host processes (`HostMain.ts`: native engine, modules / agent states /
 * events on NATS, one owner per agent through leases), spawns the agents
 * round-robin across them and runs `rounds` rounds of one state-changing
 * call (`increment` of a counter agent) per agent. Mid-run (halfway through
 * round `rounds / 2`) it kills one host with SIGKILL; the calls for that
 * host's agents then go through the survivors, which activate them from
 * their last snapshots once the dead host's leases expire (`ttlMs`).
 *
 * The report (`MultiHostReport`) counts, from the run itself:
 * - `agentsMoved`: agents that ended on another host than they were spawned on;
 * - `acknowledgedCallsLost`: Σ over agents of acknowledged increments missing
 *   from the agent's final value (must be 0: every call's state is saved
 *   before the call returns);
 * - `acknowledgedEventsLost`: events the hosts saw acknowledged by JetStream
 *   (their own subscription delivers them back from the stream) that a
 *   durable consumer reading the whole stream afterwards does not get (must be 0);
 * - `duplicates`: stream deliveries of an `eventId` that consumer had seen
 *   already (it de-duplicates by `eventId`; the server drops re-publishes);
 * - `recoverMs`: from the SIGKILL to the last of the dead host's agents
 *   answering again on a survivor — each is asked through a survivor right
 *   after the kill, as Coordination would (at least the time its lease
 *   takes to expire: `ttlMs` after the last renewal).
 *
 * Calls in flight on the killed host are neither acknowledged nor retried
 * (`callsInFlightAtKill`); one of them may still have been applied and
 * saved (`unacknowledgedApplied`). Every child (nats-server, hosts) is
 * taken down at the end and on SIGINT/SIGTERM (then exit code 130).
 *
 * @since 0.1.0
 */
import { type EventId } from "@agent-runtime/domain"
import { Nats, NatsEventBus } from "@agent-runtime/nats"
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
import type { HostConfig } from "./HostMain.js"

/** Settings of a multi-host run. */
export interface MultiHostOptions {
  /** Host processes (≥ 2: one is killed). */
  readonly hosts: number
  readonly agents: number
  readonly rounds: number
  /** Picks the host that is killed (`seed % hosts`). */
  readonly seed: number
  /** Lease TTL, ms (default 2000). */
  readonly ttlMs?: number | undefined
  /** Progress lines (to stderr by the CLI); none when absent. */
  readonly log?: ((line: string) => void) | undefined
}

/** What a multi-host run measured. */
export interface MultiHostReport {
  readonly mode: "hosts"
  readonly hosts: number
  readonly agents: number
  readonly rounds: number
  /** The run's nats-server (stopped by the end of the run). */
  readonly natsUrl: string
  readonly killedHost: string
  /** Agents the killed host held when it died. */
  readonly agentsOnKilledHost: number
  readonly agentsMoved: number
  readonly acknowledgedCalls: number
  readonly acknowledgedCallsLost: number
  readonly callsInFlightAtKill: number
  readonly unacknowledgedApplied: number
  /** Calls that failed for another reason than the kill (must be 0). */
  readonly callsFailed: number
  readonly acknowledgedEvents: number
  readonly acknowledgedEventsLost: number
  readonly duplicates: number
  /** ms from the SIGKILL until the last of the killed host's agents answered on a survivor. */
  readonly recoverMs: number
  readonly leaseTtlMs: number
  readonly durationMs: number
  /** Every check held: nothing acknowledged lost, no failed call, every agent of the killed host back. */
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
const readEvents = (url: string, names: string) =>
  Effect.gen(function*() {
    const nats = yield* Nats.Nats
    const bus = yield* NatsEventBus.NatsEventBus
    const info = yield* Effect.promise(() => nats.manager.streams.info(`${names}_EVENTS`))
    const deliveries = yield* bus.consume({ durable: "swarm-report", deliver: "all", filterSubject: `${names}.>` })
    const distinct = new Set<EventId>()
    let duplicates = 0
    yield* Stream.runForEach(Stream.take(deliveries, info.state.messages), (d) =>
      Effect.gen(function*() {
        if (distinct.has(d.event.eventId)) duplicates++
        else distinct.add(d.event.eventId)
        yield* d.ack
      })
    )
    return { distinct: distinct as Set<string>, duplicates }
  }).pipe(
    Effect.scoped,
    Effect.provide(
      NatsEventBus.layer({ runtimeId: "swarm-report", stream: `${names}_EVENTS`, subjectPrefix: names }).pipe(
        Layer.provideMerge(Nats.layer({ servers: url, name: "swarm-report" }))
      )
    ),
    Effect.timeout("120 seconds")
  )

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
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), "swarm-nats-"))
  storeDirs.add(storeDir)
  const hosts: Array<Host> = []
  let nats: RunningNatsServer | undefined
  try {
    const server = await startNatsServer({ binary, storeDir })
    nats = server
    log(`nats-server -js on ${server.url}`)
    const names = "swarm"
    const capacity = options.agents // a survivor may end up holding every agent
    const ids = Array.from(
      { length: options.hosts },
      (_, i) => `host-${String.fromCharCode(97 + (i % 26))}${i >= 26 ? i : ""}`
    )
    // one host first: it creates the buckets and the stream the others then open
    hosts.push(await startHost({ url: server.url, hostId: ids[0]!, names, ttlMs, capacity }))
    hosts.push(
      ...(await Promise.all(ids.slice(1).map((hostId) => startHost({ url: server.url, hostId, names, ttlMs, capacity }))))
    )
    const byId = new Map(hosts.map((h) => [h.hostId, h]))
    log(`${hosts.length} hosts ready: ${ids.join(", ")}`)

    const agents = Array.from({ length: options.agents }, (_, i) => `agent-${String(i).padStart(5, "0")}`)
    const indexOf = new Map(agents.map((a, i) => [a, i]))
    const spawnedOn = new Map<string, string>()
    const owner = new Map<string, string>()
    const acked = new Map<string, number>()
    let callsFailed = 0
    const failures: Array<string> = []
    await pool(agents, 64, async (agentId) => {
      const hostId = ids[indexOf.get(agentId)! % ids.length]!
      const reply = await byId.get(hostId)!.request("spawn", { agentId })
      if (!reply.ok) throw new Error(`spawn of ${agentId} on ${hostId}: ${reply.error._tag} ${reply.error.message}`)
      spawnedOn.set(agentId, hostId)
      owner.set(agentId, hostId)
      acked.set(agentId, 0)
    })
    log(`${agents.length} agents spawned across ${hosts.length} hosts`)

    const victim = byId.get(ids[options.seed % ids.length]!)!
    const survivors = () => hosts.filter((h) => h.alive())
    let killedAt: number | undefined
    let onVictim: ReadonlyArray<string> = []
    let inFlightAtKill = 0
    let recovery: Promise<number> | undefined

    /** One call of `fn` on the agent through its owner, following it when it moved; undefined when not acknowledged. */
    const call = async (agentId: string, fn: string): Promise<ReadonlyArray<number> | undefined> => {
      const deadline = Date.now() + 60_000
      for (;;) {
        let target = byId.get(owner.get(agentId)!)!
        if (!target.alive()) {
          const live = survivors()
          target = live[indexOf.get(agentId)! % live.length]!
          owner.set(agentId, target.hostId)
        }
        const reply = await target.request("invoke", { agentId, fn })
        if (reply.ok) {
          return reply.value as ReadonlyArray<number>
        }
        if (reply.error._tag === "HostGone") {
          inFlightAtKill++
          return undefined // not acknowledged: the client does not know whether it ran
        }
        const holder = reply.error.owner
        if (
          reply.error._tag === "AgentAlreadyExists" &&
          holder !== undefined &&
          holder !== target.hostId &&
          byId.get(holder)?.alive()
        ) {
          owner.set(agentId, holder)
          continue
        }
        if (reply.error._tag === "AgentAlreadyExists" && Date.now() < deadline) {
          await sleep(100) // held by the dead host until its lease expires
          continue
        }
        callsFailed++
        if (failures.length < 10)
          failures.push(`${agentId} on ${target.hostId}: ${reply.error._tag} ${reply.error.message}`)
        return undefined
      }
    }

    const killRound = Math.floor(options.rounds / 2)
    for (let round = 0; round < options.rounds; round++) {
      let dispatched = 0
      await pool(agents, 64, async (agentId) => {
        if (round === killRound && killedAt === undefined && ++dispatched > agents.length / 2) {
          onVictim = agents.filter((a) => owner.get(a) === victim.hostId)
          victim.kill()
          killedAt = Date.now()
          log(`round ${round + 1}: killed ${victim.hostId} (SIGKILL) holding ${onVictim.length} agents`)
          // as Coordination would: ask a survivor for each of the dead host's agents right away (they answer
          // once the dead host's leases expire); recovered when the last one answers
          const from = killedAt
          recovery = pool(onVictim, 64, async (a) => void (await call(a, "get"))).then(() => Date.now() - from)
        }
        const result = await call(agentId, "increment")
        if (result !== undefined) acked.set(agentId, acked.get(agentId)! + 1)
      })
      log(`round ${round + 1}/${options.rounds} done`)
    }
    await victim.exited
    const recoverMs = recovery === undefined ? 0 : await recovery
    log(`the ${onVictim.length} agents of ${victim.hostId} answered on the survivors ${recoverMs} ms after the kill`)

    // the final state of every agent, read where it lives now
    let lost = 0
    let applied = 0
    await pool(agents, 64, async (agentId) => {
      const value = (await call(agentId, "get"))?.[0]
      if (value === undefined) return
      const want = acked.get(agentId)!
      if (value < want) lost += want - value
      else applied += value - want
    })
    const agentsMoved = agents.filter((a) => owner.get(a) !== spawnedOn.get(a)).length
    log(`${agentsMoved} agents moved; reading the event stream`)

    const acknowledgedEvents = hosts.flatMap((h) => h.events)
    const stream = await Effect.runPromise(readEvents(server.url, names))
    const eventsLost = acknowledgedEvents.filter((id) => !stream.distinct.has(id)).length
    for (const f of failures) log(`failed call: ${f}`)
    const report: MultiHostReport = {
      mode: "hosts",
      hosts: options.hosts,
      agents: options.agents,
      rounds: options.rounds,
      natsUrl: server.url,
      killedHost: victim.hostId,
      agentsOnKilledHost: onVictim.length,
      agentsMoved,
      acknowledgedCalls: [...acked.values()].reduce((a, b) => a + b, 0),
      acknowledgedCallsLost: lost,
      callsInFlightAtKill: inFlightAtKill,
      unacknowledgedApplied: applied,
      callsFailed,
      acknowledgedEvents: acknowledgedEvents.length,
      acknowledgedEventsLost: eventsLost,
      duplicates: stream.duplicates,
      recoverMs,
      leaseTtlMs: ttlMs,
      durationMs: Date.now() - started,
      ok:
        lost === 0 && eventsLost === 0 && callsFailed === 0 && agentsMoved >= onVictim.length && killedAt !== undefined
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
    `swarm over ${r.hosts} hosts on one nats-server: ${r.agents} agents, ${r.rounds} rounds — ${r.ok ? "OK" : "FAILED"}`,
    `  killed ${r.killedHost} (SIGKILL) mid-run holding ${r.agentsOnKilledHost} agents; lease TTL ${r.leaseTtlMs} ms`,
    `  agents moved              ${r.agentsMoved}`,
    `  acknowledged calls        ${r.acknowledgedCalls}, lost ${r.acknowledgedCallsLost}`,
    `  calls in flight at kill   ${r.callsInFlightAtKill} (applied though unacknowledged: ${r.unacknowledgedApplied})`,
    `  failed calls              ${r.callsFailed}`,
    `  acknowledged events       ${r.acknowledgedEvents}, lost ${r.acknowledgedEventsLost}, duplicates ${r.duplicates}`,
    `  time to recover           ${r.recoverMs} ms`,
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
