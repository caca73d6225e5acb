/**
 * The model of the property tests (`../Properties.ts`): what a runtime must
 * hold after any sequence of load / spawn / invoke / pause / resume / evict /
 * pressure / health / passivate / snapshot / restore, and the fast-check
 * commands that drive a real `AgentRuntime` and the model side by side.
 *
 * The model is exact where behaviour is specified (counter agents: their
 * value, state and reservation; error tags of refused operations) and
 * reconciles from the runtime, through its events, where the runtime
 * chooses (which agents pressure, health or GC removed or passivated; the
 * state a trapping guest is left in). After every step `checkStep` checks
 * the spec's five invariants and the pool's accounting.
 *
 * @internal
 */
import {
  type AgentConfigShape,
  type AgentInfo,
  agentId,
  type AgentRuntimeShape,
  type EngineCapabilities,
  InstanceState,
  makeMetadata,
  type ModuleId,
  type RuntimeEvent,
  type RuntimeStats,
  type WasmValue
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import type { AgentName } from "../Fixtures.js"

/** 1 MiB in bytes. */
const MiB = 1_048_576

/** The fixture agents the property tests spawn. `counter` is modelled exactly. */
export type Kind = "counter" | "trapper" | "lifecycle" | "flaky"
export const kinds: ReadonlyArray<Kind> = ["counter", "counter", "counter", "trapper", "lifecycle", "flaky"]

/** The pool of agent ids commands pick from (small, so ids collide). */
export const ids: ReadonlyArray<string> = ["a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7"]

/** One agent as the model knows it. `value` is a counter's value (`undefined` for other kinds). */
export interface ModelAgent {
  readonly kind: Kind
  value: number | undefined
  state: InstanceState | "Passivated"
  readonly reserved: number
  /** Values the agent had when its state was saved (snapshot, passivation, eviction): a restore must bring back one of them. */
  readonly saved: Set<number>
  /** The state it was passivated in (a passivated agent comes back in it). */
  passivatedFrom?: InstanceState | undefined
}

/** The model: agents by id (live or passivated), agents removed (kept for restore), totals. */
export interface Model {
  readonly agents: Map<string, ModelAgent>
  readonly gone: Map<string, ModelAgent>
  modules: number
}

/** The system under test and what the harness records about it. */
export interface Real {
  readonly rt: AgentRuntimeShape
  readonly caps: EngineCapabilities
  readonly totalMemory: number
  readonly failureThreshold: number
  readonly modules: Map<AgentName, ModuleId>
  readonly bytes: (name: AgentName) => Promise<Uint8Array>
  /** Every event received so far. */
  readonly events: Array<RuntimeEvent>
  /** Index into `events` already reconciled. */
  seen: number
  /** Operations run (all runs), for the printed count. */
  readonly counter: { ops: number }
  /** Runs an effect to its typed result; a defect (untyped failure) rejects. */
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<Outcome<A>>
  /** Lets the runtime's event fibers run. */
  readonly settle: () => Promise<void>
}

/** A typed outcome: the value, or the failure's `_tag`. */
export type Outcome<A> =
  | { readonly ok: true; readonly value: A }
  | { readonly ok: false; readonly tag: string; readonly error: unknown }

export const outcome = <A, E>(effect: Effect.Effect<A, E>): Effect.Effect<Outcome<A>> =>
  Effect.map(Effect.result(effect), (r): Outcome<A> => {
    if (r._tag === "Success") return { ok: true, value: r.success }
    const e = r.failure as unknown
    const tag =
      typeof e === "object" && e !== null && typeof (e as { _tag?: unknown })._tag === "string"
        ? (e as { _tag: string })._tag
        : "untyped"
    return { ok: false, tag, error: e }
  })

/** An invariant broken: the message names the step and what was expected. */
export class InvariantBroken extends Error {}

const fail = (step: string, what: string): never => {
  throw new InvariantBroken(`${step}: ${what}`)
}

const expectTag = <A>(step: string, o: Outcome<A>, tags: ReadonlyArray<string>): void => {
  if (o.ok) fail(step, `expected a failure tagged ${tags.join(" | ")}, got success`)
  else if (!tags.includes(o.tag))
    fail(
      step,
      `expected ${tags.join(" | ")}, got ${o.tag}: ${String((o.error as { message?: unknown }).message ?? o.error)}`
    )
}

const typed = <A>(step: string, o: Outcome<A>): void => {
  if (!o.ok && o.tag === "untyped") fail(step, `untyped failure ${String(o.error)}`)
}

const liveIn = (m: Model): Array<[string, ModelAgent]> => [...m.agents].filter(([, a]) => a.state !== "Passivated")

const configOf = (real: Real, limitMiB: number): AgentConfigShape => ({
  memoryLimit: limitMiB * MiB,
  ...(real.caps.fuel ? { fuel: 50_000_000 } : {}),
  ...(real.caps.preemptiveTimeout ? { timeoutMs: 5_000 } : {})
})

const agentEventId = (e: RuntimeEvent): string | undefined => ("agentId" in e ? String(e.agentId) : undefined)

/**
 * Reconciles the model with the runtime after a step and checks the
 * invariants. `mayRemove`: the step may evict or passivate agents the model
 * did not name (pressure, health, GC, a trap policy); `mayAdd`: it may bring
 * agents back (restore, rehydration).
 */
export const checkStep = async (
  step: string,
  m: Model,
  real: Real,
  options: { readonly mayRemove?: boolean; readonly mayAdd?: boolean } = {}
): Promise<void> => {
  real.counter.ops++
  await real.settle()
  const infos = await real.run(real.rt.agents)
  const stats = await real.run(real.rt.stats)
  if (!infos.ok || !stats.ok) return fail(step, "agents / stats failed")
  const fresh = real.events.slice(real.seen)
  real.seen = real.events.length
  const byId = new Map<string, AgentInfo>()
  for (const info of infos.value) {
    // Invariant 4: one instance per agent id.
    if (byId.has(info.agentId)) fail(step, `two instances of ${info.agentId}`)
    byId.set(info.agentId, info)
    // Legal states only.
    if (!InstanceState.literals.includes(info.state)) fail(step, `illegal state ${info.state} of ${info.agentId}`)
  }
  const lastEvent = new Map<string, RuntimeEvent["_tag"]>()
  for (const e of fresh) {
    const id = agentEventId(e)
    if (id !== undefined && ["AgentSpawned", "AgentEvicted", "AgentPassivated", "AgentActivated"].includes(e._tag))
      lastEvent.set(id, e._tag)
  }
  // Agents that went away: the model allows it, and an event says why.
  for (const [id, a] of [...m.agents]) {
    if (a.state === "Passivated" || byId.has(id)) continue
    const why = lastEvent.get(id)
    if (!options.mayRemove) fail(step, `${id} vanished (last event ${why ?? "none"})`)
    if (why === "AgentPassivated") {
      a.passivatedFrom = a.state
      a.state = "Passivated"
      if (a.value !== undefined) a.saved.add(a.value)
    } else if (why === "AgentEvicted") {
      m.agents.delete(id)
      m.gone.set(id, a)
    } else fail(step, `${id} is gone without an AgentEvicted or AgentPassivated event`)
  }
  // Agents that came back (restore, rehydration): an event says so.
  for (const [id, info] of byId) {
    const a = m.agents.get(id)
    if (a !== undefined && a.state !== "Passivated") continue
    const why = lastEvent.get(id)
    if (why !== "AgentSpawned" && why !== "AgentActivated")
      fail(step, `${id} appeared without AgentSpawned / AgentActivated (last ${why ?? "none"})`)
    if (a === undefined && !options.mayAdd) fail(step, `${id} appeared`)
    if (a !== undefined) a.state = info.state
  }
  // Evictions and passivations the events report happened to agents the model had (events consistent).
  for (const e of fresh) {
    if (
      e._tag === "AgentEvicted" &&
      byId.has(String(e.agentId)) &&
      lastEvent.get(String(e.agentId)) === "AgentEvicted"
    ) {
      fail(step, `AgentEvicted for ${e.agentId}, which is still live`)
    }
  }
  for (const [id, a] of m.agents) {
    const info = byId.get(id)
    if (info === undefined) continue
    if (a.kind === "counter" && a.state !== info.state)
      fail(step, `${id}: model state ${a.state}, runtime ${info.state}`)
    a.state = info.state
    if (info.budget.limit !== a.reserved) fail(step, `${id}: budget ${info.budget.limit}, reserved ${a.reserved}`)
  }
  // Invariant 1 and the pool's accounting.
  const mem = stats.value.memory
  const reserved = liveIn(m).reduce((s, [, a]) => s + a.reserved, 0)
  if (mem.reserved !== reserved) fail(step, `pool reserved ${mem.reserved} bytes, Σ reservations ${reserved}`)
  if (mem.used > mem.total) fail(step, `pool used ${mem.used} > total ${mem.total}`)
  if (mem.used < mem.reserved) fail(step, `pool used ${mem.used} < reserved ${mem.reserved}`)
  if (mem.available !== Math.max(0, mem.total - mem.used)) fail(step, `available ${mem.available} ≠ total - used`)
  if (stats.value.agents !== byId.size) fail(step, `stats.agents ${stats.value.agents}, agents listed ${byId.size}`)
  const passivated = [...m.agents.values()].filter((a) => a.state === "Passivated").length
  if (stats.value.passivated !== passivated)
    fail(step, `stats.passivated ${stats.value.passivated}, model ${passivated}`)
  checkStates(step, stats.value, byId)
  // Invariant 5: only verified modules count.
  if (stats.value.modules !== m.modules) fail(step, `${stats.value.modules} modules loaded, model ${m.modules}`)
}

const checkStates = (step: string, stats: RuntimeStats, byId: ReadonlyMap<string, AgentInfo>): void => {
  const counts = new Map<string, number>()
  for (const info of byId.values()) counts.set(info.state, (counts.get(info.state) ?? 0) + 1)
  for (const [state, n] of Object.entries(stats.agentsByState)) {
    if ((counts.get(state) ?? 0) !== n) fail(step, `agentsByState.${state} = ${n}, listed ${counts.get(state) ?? 0}`)
  }
}

/** Loads a fixture's module (once); counts it in the model. */
export const ensureModule = async (m: Model, real: Real, name: AgentName): Promise<ModuleId> => {
  const known = real.modules.get(name)
  if (known !== undefined) return known
  const bytes = await real.bytes(name)
  const o = await real.run(real.rt.loadModule(bytes, makeMetadata({ name, version: "1.0.0" })))
  if (!o.ok) return fail(`load ${name}`, `a signed fixture was refused: ${o.tag}`)
  real.modules.set(name, o.value)
  m.modules++
  return o.value
}

export const spawn = async (m: Model, real: Real, id: string, kind: Kind, limitMiB: number): Promise<void> => {
  const step = `spawn ${id} ${kind} ${limitMiB} MiB`
  const moduleId = await ensureModule(m, real, kind)
  const o = await real.run(real.rt.spawnAgent(agentId(id), moduleId, configOf(real, limitMiB)))
  const exists = m.agents.has(id)
  const reserved = liveIn(m).reduce((s, [, a]) => s + a.reserved, 0)
  if (exists) expectTag(step, o, ["AgentAlreadyExists"])
  else if (reserved + limitMiB * MiB > real.totalMemory) expectTag(step, o, ["InsufficientMemory"])
  else if (!o.ok) fail(step, `refused with ${o.tag}`)
  if (o.ok) {
    m.agents.set(id, {
      kind,
      value: kind === "counter" ? 0 : undefined,
      state: o.value.state,
      reserved: limitMiB * MiB,
      saved: new Set()
    })
    m.gone.delete(id)
  }
  await checkStep(step, m, real)
}

/** The call of one kind's export, with the expected result for counters. */
const callOf = (kind: Kind, n: number): readonly [string, ReadonlyArray<WasmValue>] => {
  switch (kind) {
    case "counter":
      return n % 3 === 0 ? ["get", []] : ["add", [n]]
    case "trapper":
      return n % 2 === 0 ? ["divide", [n, 0]] : ["ok", []]
    case "lifecycle":
      return n % 2 === 0 ? ["bump", []] : ["state", []]
    case "flaky":
      return ["work", []]
  }
}

export const invoke = async (m: Model, real: Real, id: string, n: number): Promise<void> => {
  const a = m.agents.get(id)
  const [fn, args] = callOf(a?.kind ?? "counter", n)
  const step = `invoke ${id} ${fn}(${args.join(", ")})`
  const o = await real.run(real.rt.invoke(agentId(id), fn, args))
  typed(step, o)
  if (a === undefined) expectTag(step, o, ["AgentNotFound"])
  else if (a.kind === "counter") {
    if (a.state === "Paused") expectTag(step, o, ["AgentNotRunning"])
    else if (a.state === "Passivated" && a.passivatedFrom === "Paused")
      expectTag(step, o, ["AgentNotRunning", "InsufficientMemory"])
    else if (a.state === "Passivated" && !o.ok) expectTag(step, o, ["InsufficientMemory"])
    else if (!o.ok) fail(step, `a counter call failed: ${o.tag}`)
    else {
      // the value is unknown only after a restore into a paused instance: learn it from this call
      const expected = a.value === undefined ? Number(o.value[0]) : fn === "get" ? a.value : a.value + n
      if (o.value[0] !== expected)
        fail(step, `Invariant 2: counter ${id} returned ${String(o.value[0])}, model ${String(expected)}`)
      a.value = expected
    }
  }
  // A non-counter's failure may make the runtime restart, fail or evict it (trap policy).
  await checkStep(step, m, real, { mayRemove: a?.kind !== "counter", mayAdd: false })
}

export const lifecycle = async (m: Model, real: Real, id: string, action: "pause" | "resume"): Promise<void> => {
  const step = `${action} ${id}`
  const a = m.agents.get(id)
  const o = await real.run(action === "pause" ? real.rt.pause(agentId(id)) : real.rt.resume(agentId(id)))
  typed(step, o)
  const from = action === "pause" ? "Running" : "Paused"
  if (a === undefined) expectTag(step, o, ["AgentNotFound"])
  else if (a.state === from && !o.ok) fail(step, `refused from ${from}: ${o.tag}`)
  else if (a.state !== from && a.state !== "Passivated" && o.ok) fail(step, `accepted from ${a.state}`)
  if (o.ok && a !== undefined && a.state !== "Passivated") a.state = action === "pause" ? "Paused" : "Running"
  await checkStep(step, m, real, { mayRemove: false })
}

export const evict = async (m: Model, real: Real, id: string): Promise<void> => {
  const step = `evict ${id}`
  const a = m.agents.get(id)
  const o = await real.run(real.rt.evictAgent(agentId(id), "Manual"))
  typed(step, o)
  if (a === undefined) expectTag(step, o, ["AgentNotFound"])
  else if (a.state !== "Passivated" && !o.ok) fail(step, `refused: ${o.tag}`)
  if (a !== undefined && (o.ok || a.state === "Passivated")) {
    if (a.value !== undefined) a.saved.add(a.value)
    if (a.state === "Passivated") {
      // an evicted passivated agent leaves the passivated set (or the evict was refused: it stays)
      const stats = await real.run(real.rt.stats)
      const still =
        stats.ok && stats.value.passivated === [...m.agents.values()].filter((x) => x.state === "Passivated").length
      if (!still) {
        m.agents.delete(id)
        m.gone.set(id, a)
      }
    } else {
      m.agents.delete(id)
      m.gone.set(id, a)
    }
  }
  await checkStep(step, m, real, { mayRemove: true })
}

export const pressure = async (m: Model, real: Real): Promise<void> => {
  const o = await real.run(real.rt.handleMemoryPressure)
  typed("pressure", o)
  await checkStep("pressure", m, real, { mayRemove: true })
}

export const health = async (m: Model, real: Real): Promise<void> => {
  const o = await real.run(real.rt.checkHealth)
  typed("health", o)
  await checkStep("health", m, real, { mayRemove: true })
  // Invariant 3: no unhealthy agent past the failure threshold stays.
  const infos = await real.run(real.rt.agents)
  for (const info of infos.ok ? infos.value : []) {
    if (info.health === "Unhealthy" && info.consecutiveFailures > real.failureThreshold) {
      fail(
        "health",
        `Invariant 3: ${info.agentId} is Unhealthy after ${info.consecutiveFailures} failures and still ${info.state}`
      )
    }
  }
}

export const passivate = async (m: Model, real: Real): Promise<void> => {
  await real.run(Effect.sleep(3))
  const o = await real.run(real.rt.runGc)
  typed("passivate (gc)", o)
  await checkStep("passivate (gc)", m, real, { mayRemove: true })
}

export const snapshot = async (m: Model, real: Real, id: string): Promise<void> => {
  const step = `snapshot ${id}`
  const a = m.agents.get(id)
  const o = await real.run(real.rt.snapshot(agentId(id)))
  typed(step, o)
  if (a === undefined) expectTag(step, o, ["AgentNotFound"])
  if (o.ok && a?.value !== undefined) a.saved.add(a.value)
  await checkStep(step, m, real, { mayRemove: a?.kind !== "counter" })
}

/**
 * `restore` brings back the last saved state: into a new instance when the
 * agent is gone or passivated, into the live instance otherwise (a rollback).
 * A counter must come back with one of the values it had when saved.
 */
export const restore = async (m: Model, real: Real, id: string): Promise<void> => {
  const step = `restore ${id}`
  const before = m.agents.get(id) ?? m.gone.get(id)
  const o = await real.run(real.rt.restore(agentId(id)))
  typed(step, o)
  if (before === undefined) expectTag(step, o, ["AgentNotFound"])
  if (o.ok && before !== undefined) {
    const a: ModelAgent = m.agents.get(id) ?? {
      ...before,
      reserved: o.value.budget.limit,
      saved: new Set(before.saved)
    }
    a.state = o.value.state
    m.agents.set(id, a)
    m.gone.delete(id)
    if (a.kind === "counter") {
      const v = await real.run(real.rt.invoke(agentId(id), "get", []))
      if (v.ok) {
        const value = Number(v.value[0])
        if (a.saved.size > 0 && !a.saved.has(value))
          fail(step, `restored value ${value}, saved values [${[...a.saved].join(", ")}]`)
        a.value = value
      } else if (a.state === "Running") fail(step, `get after restore failed: ${v.tag}`)
      else a.value = undefined
    }
  }
  await checkStep(step, m, real, { mayRemove: false, mayAdd: true })
}

/** Invariant 5: a tampered signed module is refused and nothing is registered. */
export const loadTampered = async (m: Model, real: Real, at: number): Promise<void> => {
  const bytes = new Uint8Array(await real.bytes("counter"))
  const i = at % bytes.length
  bytes[i] = (bytes[i] as number) ^ 0x01
  const o = await real.run(real.rt.loadModule(bytes, makeMetadata({ name: "counter", version: "1.0.0" })))
  typed(`load tampered counter (byte ${i})`, o)
  if (o.ok) fail(`load tampered counter (byte ${i})`, "Invariant 5: a tampered module was loaded")
  await checkStep(`load tampered counter (byte ${i})`, m, real)
}
