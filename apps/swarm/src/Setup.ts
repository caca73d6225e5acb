/**
 * A run's first phases, before the rounds: **load** the signed fixture
 * module of every agent type (then load it again: a compile-cache hit; a
 * tampered module is refused with `InvalidSignature` and its type skipped),
 * **spawn** the planned agents — or, resumed, **take over** the agents the
 * runtime restored — and **probe** the invocation contract once (arguments
 * checked against the export's signature, unknown exports refused).
 *
 * @since 0.1.0
 */
import { manifestEntry } from "@agent-runtime/agents"
import { type AgentConfigShape, makeMetadata, type ModuleId, type WasmValue } from "@agent-runtime/domain"
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import { bump, typeOf } from "./EventTally.js"
import { attempt, call, i32, note, type Run } from "./Ledger.js"
import { type AgentType, agentTypes, isAgentType, memoryOf, MiB, type SwarmAgent, toSwarmAgent } from "./Plan.js"
import type { RefusedModule } from "./Report.js"
import { flipOneByte } from "./Tamper.js"

/** The modules a run loaded. */
export interface LoadedModules {
  /** The agent types whose module was loaded (or refused) — a resumed run loads every type. */
  readonly types: ReadonlyArray<AgentType>
  readonly moduleIds: ReadonlyMap<AgentType, ModuleId>
  readonly refused: ReadonlyArray<RefusedModule>
  /** Second loads of a loaded module (each a cache hit). */
  readonly reloads: number
}

/** The agents a run works on. */
export interface Population {
  /** Spawned agents (resumed: the restored ones taken over), in plan (or id) order. */
  readonly spawned: ReadonlyArray<SwarmAgent>
  /** Planned agents of refused modules, not spawned. */
  readonly skipped: number
  /** Spawned (or taken over) agents per type. */
  readonly byType: Readonly<Record<string, number>>
  /** Pool usage (bytes) right after the spawn (or the restore). */
  readonly usedAfterSpawn: number
}

const resuming = (run: Run) => run.settings.stored?.resume === true

/** Loads every planned type's module twice (a resumed run: every type, its restored agents' modules came back from the repository). */
export const loadModules = Effect.fn("Swarm.loadModules")(function* (run: Run) {
  const { settings, runtime, ledger } = run
  const types = resuming(run) ? agentTypes : agentTypes.filter((t) => settings.plan.some((a) => a.type === t))
  settings.progress({ _tag: "Phase", name: "loading modules", total: types.length * 2 })
  const moduleIds = new Map<AgentType, ModuleId>()
  const refused: Array<RefusedModule> = []
  let reloads = 0
  for (const [index, type] of types.entries()) {
    const { version } = manifestEntry(type)
    const signed = settings.read(type)
    const bytes = settings.tamper.has(type) ? flipOneByte(signed).bytes : signed
    const metadata = makeMetadata({ name: type, version })
    const loaded = yield* Effect.exit(runtime.loadModule(bytes, metadata))
    if (Exit.isSuccess(loaded)) {
      moduleIds.set(type, loaded.value)
      // the same bytes again: verified, then found in the compile cache (no second compile)
      const again = yield* attempt(run, `reload ${type}`, runtime.loadModule(bytes, metadata))
      if (Option.isSome(again.value)) reloads++
    } else {
      const error = Cause.findErrorOption(loaded.cause)
      if (Option.isNone(error)) ledger.crash(`load ${type}: ${Cause.pretty(loaded.cause)}`)
      else refused.push({ name: type, reason: error.value._tag, message: error.value.message })
    }
    settings.progress({ _tag: "Advance", done: (index + 1) * 2 })
  }
  // Loading verifies and validates a module; the engine compiles the variant an agent needs (memory
  // cap = its budget) when the first agent of that module is spawned — or, resumed, restored.
  yield* note(
    run,
    `loaded ${moduleIds.size} modules (validated; ` +
      (resuming(run) ? "the restored agents compiled theirs when restored" : "agents compile at first spawn") +
      `; ${reloads} re-loads)` +
      (refused.length > 0 ? `; refused ${refused.map((m) => `${m.name} (${m.reason})`).join(", ")}` : "")
  )
  const result: LoadedModules = { types, moduleIds, refused, reloads }
  return result
})

/** Spawns the planned agents of the loaded types (resumed: takes over the restored agents instead). */
export const populate = Effect.fn("Swarm.populate")(function* (run: Run, modules: LoadedModules) {
  const { settings, runtime, ledger } = run
  const agents: Array<SwarmAgent> = settings.plan.filter((a) => modules.moduleIds.has(a.type)).map(toSwarmAgent)
  const skipped = settings.plan.length - agents.length
  if (resuming(run)) agents.push(...(yield* takeOver(run)))
  const fresh = agents.filter((a) => !a.spawned)
  if (!resuming(run)) settings.progress({ _tag: "Phase", name: "spawning agents", total: fresh.length })
  let spawnedCount = 0
  const spawnOne = (agent: SwarmAgent) =>
    Effect.gen(function* () {
      const memory = memoryOf(agent.type)
      const config: AgentConfigShape = {
        memoryLimit: memory.limit,
        memoryReservation: memory.reservation,
        critical: agent.critical
      }
      const r = yield* attempt(
        run,
        `spawn ${agent.id}`,
        runtime.spawnAgent(agent.id, modules.moduleIds.get(agent.type)!, config)
      )
      if (Option.isSome(r.value)) {
        agent.spawned = true
        if (agent.type === "flaky") yield* call(run, agent, "configure", [agent.flakyAfter])
      } else bump(ledger.spawnFailed, r.tag ?? "Defect")
      settings.progress({ _tag: "Advance", done: ++spawnedCount })
    })
  // The first agent of each type alone, then the rest concurrently: the runtime compiles the
  // variant of a module an agent needs (memory cap = its budget) on its first spawn, and
  // concurrent first spawns would each miss the compile cache and compile it again.
  const firsts = modules.types.flatMap((t) => fresh.find((a) => a.type === t) ?? [])
  yield* Effect.forEach(firsts, spawnOne, { discard: true })
  yield* Effect.forEach(
    fresh.filter((a) => !firsts.includes(a)),
    spawnOne,
    { concurrency: settings.concurrency, discard: true }
  )
  const spawned = agents.filter((a) => a.spawned)
  const byType: Record<string, number> = {}
  for (const a of spawned) bump(byType, a.type)
  const afterSpawn = yield* runtime.stats
  // The pool's peak usage: sampled after spawn and after every round's work (before pressure handling
  // frees memory), and from every `MemoryPressure` event (`tally.peakUsed`) — so a run without pressure
  // events (a resumed one, typically) still reports its real peak.
  ledger.samplePeak(afterSpawn.memory.used)
  yield* note(
    run,
    `${resuming(run) ? "working on the restored" : "spawned"} ${spawned.length} agents; ` +
      `pool ${(afterSpawn.memory.used / MiB).toFixed(0)} of ${(settings.poolBytes / MiB).toFixed(0)} MiB used`
  )
  const population: Population = { spawned, skipped, byType, usedAfterSpawn: afterSpawn.memory.used }
  return population
})

/** The getter that reads a type's state without changing it (flaky and the stateless types have none). */
export const stateGetter = (type: string): string | undefined =>
  type === "counter" ? "get" : type === "lifecycle" ? "state" : type === "leaky" ? "leaked" : undefined

/**
 * The agents restored from the repositories, as the workload's agents
 * (sorted by id). A counter's count, a lifecycle agent's state and a leaky
 * agent's leaked KiB are read now (paused agents are not: they refuse), so
 * their first calls are checked against what came back; a flaky agent's
 * count is learned from its first `work`.
 */
export const takeOver = (run: Run): Effect.Effect<Array<SwarmAgent>> =>
  Effect.gen(function* () {
    const infos = [...(yield* run.runtime.agents)].sort((a, b) =>
      a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0
    )
    const taken = infos.flatMap((info): Array<SwarmAgent> => {
      const type = typeOf(info.agentId)
      if (!isAgentType(type)) return []
      return [
        {
          id: info.agentId,
          type,
          critical: info.state === "Critical",
          flakyAfter: 0,
          breaksHealth: false,
          spawned: true,
          paused: info.state === "Paused",
          expected: 0,
          known: false
        }
      ]
    })
    yield* Effect.forEach(
      taken.filter((a) => !a.paused && stateGetter(a.type) !== undefined),
      (agent) =>
        Effect.map(call(run, agent, stateGetter(agent.type)!), (c) => {
          const n = i32(c)
          if (n !== undefined) {
            agent.expected = n
            agent.known = true
          }
        }),
      { concurrency: run.settings.concurrency, discard: true }
    )
    return taken
  })

/** Contract probes on one non-critical agent: a string for an i32 is `SignatureMismatch`, an unknown export `FunctionNotFound`. */
export const probeContracts = Effect.fn("Swarm.probeContracts")(function* (
  run: Run,
  spawned: ReadonlyArray<SwarmAgent>
) {
  const { ledger } = run
  const probe = spawned.find((a) => a.type === "counter" && !a.critical) ?? spawned.find((a) => !a.critical)
  if (probe === undefined) return
  const bad = yield* call(run, probe, probe.type === "counter" ? "add" : "_health_check", [
    "abc" as unknown as WasmValue
  ])
  if (probe.type === "counter")
    ledger.check(!bad.ok && bad.tag === "SignatureMismatch", () => `${probe.id}.add("abc") → ${JSON.stringify(bad)}`)
  const missing = yield* call(run, probe, "no_such_export")
  ledger.check(
    !missing.ok && missing.tag === "FunctionNotFound",
    () => `${probe.id}.no_such_export → ${JSON.stringify(missing)}`
  )
})
