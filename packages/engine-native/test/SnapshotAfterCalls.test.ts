/**
 * `persistence.snapshotAfterCalls` on the native engine (issue 13 item 7):
 * the engine declares the dirty-page barrier for runtimes that snapshot
 * after calls (`capabilities.dirtyPages: "snapshotAfterCalls"`, on by
 * default, `dirtyPages: false` turns it off) and reports what each call
 * changed (`WasmInstance.snapshotChanges`), so a repository with `savePages`
 * gets deltas — here a reference one applying them to its last whole state
 * — and every save still holds exactly the agent's memory; a call that
 * stores nothing lists no page; an idle agent's call takes the synchronous
 * path and returns only once its state is saved, concurrent calls included;
 * a trap or a host write makes the next save whole. A runtime that does not
 * snapshot after calls compiles no barrier; snapshots are fresh copies.
 */
import { readAgent } from "@agent-runtime/agents"
import { crossEngineScenarios, decodeVector } from "@agent-runtime/conformance"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  EventBuses,
  ExecutionAuthorizers,
  type InstanceSnapshot,
  InstanceRepositories,
  InstanceRepository,
  makeMetadata,
  MemoryBudget,
  MetricsRepositories,
  ModuleRepositories,
  SnapshotCodec,
  usesDirtyPages
} from "@agent-runtime/domain"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { NativeEngine } from "../src/index.js"

const PAGE = 65_536

/** What a save was: whole (`saveState`) or a delta (`savePages`: its listed pages, its zeroed ones). */
type Save = { readonly kind: "whole" } | { readonly kind: "delta"; readonly listed: ReadonlyArray<number> }

/**
 * A runtime on the native engine whose instance repository records every
 * save as the whole state it leaves (`saves`) and what kind it was
 * (`kinds`). Its `savePages` is a reference delta store: the listed pages
 * (copied: they are live views) and the zeroed ones applied to the last
 * whole state.
 */
const recording = (snapshotAfterCalls: boolean, dirtyPages?: boolean) => {
  const base = InstanceRepositories.makeMemory()
  const saves: Array<InstanceSnapshot> = []
  const kinds: Array<Save> = []
  const repository: InstanceRepositories.InstanceRepositoryShape = {
    ...base,
    saveState: (id, snapshot) =>
      Effect.andThen(
        base.saveState(id, snapshot),
        Effect.sync(() => {
          saves.push(snapshot)
          kinds.push({ kind: "whole" })
        })
      ),
    savePages: (id, changes) =>
      Effect.gen(function* () {
        const previous = yield* base.loadState(id)
        if (Option.isNone(previous)) return false
        const pages = new Map(previous.value.state.pages.map((p) => [p.index, p.data]))
        for (const p of changes.snapshot.state.pages) pages.set(p.index, p.data.slice())
        for (const index of changes.zeroed) pages.delete(index)
        const whole: InstanceSnapshot = {
          ...changes.snapshot,
          state: {
            ...changes.snapshot.state,
            pages: [...pages.entries()].sort((a, b) => a[0] - b[0]).map(([index, data]) => ({ index, data }))
          }
        }
        yield* base.saveState(id, whole)
        saves.push(whole)
        kinds.push({
          kind: "delta",
          listed: [...changes.snapshot.state.pages.map((p) => p.index), ...changes.zeroed].sort((a, b) => a - b)
        })
        return true
      })
  }
  const engine = dirtyPages === undefined ? NativeEngine.layer : NativeEngine.layerWith({ dirtyPages })
  const layer = AgentRuntimes.layer({ id: "rt-saves", persistence: { snapshotAfterCalls } }).pipe(
    Layer.provide(
      Layer.mergeAll(
        engine,
        Signing.layer({ trustStore: testOnlyTrustStore() }),
        ModuleRepositories.layerMemory,
        Layer.succeed(InstanceRepository, repository),
        MetricsRepositories.layerMemory,
        EventBuses.layerMemory,
        ExecutionAuthorizers.layerAllowAll
      )
    )
  )
  return { saves, kinds, layer }
}

const spawn = (name: string, id: string, memoryLimit = 16 * MemoryBudget.MiB) =>
  Effect.gen(function* () {
    const runtime = yield* AgentRuntime
    const m = yield* runtime.loadModule(readAgent(name), makeMetadata({ name, version: "1.0.0" }))
    yield* runtime.spawnAgent(agentId(id), m, { memoryLimit })
    return runtime
  })

/** The agent's whole linear memory as its snapshot's pages describe it. */
const memoryOf = (snapshot: InstanceSnapshot): Uint8Array => {
  const bytes = new Uint8Array(snapshot.state.memoryBytes)
  for (const p of snapshot.state.pages) bytes.set(p.data, p.index * PAGE)
  return bytes
}

describe("snapshotAfterCalls on the native engine", () => {
  it("the engine asks for the barrier only for runtimes that snapshot after calls (by default); dirtyPages: false never", () => {
    for (const on of [NativeEngine.make().capabilities, NativeEngine.make({ dirtyPages: true }).capabilities]) {
      expect(on.dirtyPages).toBe("snapshotAfterCalls")
      expect(usesDirtyPages(on, true)).toBe(true)
      expect(usesDirtyPages(on, false)).toBe(false)
    }
    expect(NativeEngine.make({ dirtyPages: false }).capabilities.dirtyPages).toBeUndefined()
    expect(usesDirtyPages(NativeEngine.make({ dirtyPages: false }).capabilities, true)).toBe(false)
  })

  it.effect(
    "every acknowledged call is saved (a delta after the first); a call that stores nothing lists no page",
    () => {
      const { saves, kinds, layer } = recording(true)
      return Effect.gen(function* () {
        const runtime = yield* spawn("leaky", "l")
        const id = agentId("l")
        const last = () => saves.filter((s) => s.agentId === id).at(-1)!
        const calls: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
          ["leak", [1]],
          ["leak", [600]], // grows memory: about ten new pages
          ["leaked", []], // stores nothing
          ["leak", [3]],
          ["calls_made", []],
          ["leak", [200]],
          ["pages", []]
        ]
        for (const [k, [fn, args]] of calls.entries()) {
          const count = (yield* runtime.agent(id)).invocationCount
          yield* runtime.invoke(id, fn, args)
          // acknowledged = saved: the last save is this call's state
          const saved = last()
          expect(saved.invocationCount).toBe(count + 1)
          const memory = yield* runtime.readMemory(id, 0, saved.state.memoryBytes)
          expect(Buffer.compare(Buffer.from(memoryOf(saved)), Buffer.from(memory))).toBe(0)
          const kind = kinds.at(-1)!
          if (k === 0)
            expect(kind.kind).toBe("whole") // the engine's first report: no base yet
          else expect(kind.kind).toBe("delta")
          if (kind.kind === "delta" && fn !== "leak") expect(kind.listed).toEqual([]) // stored nothing
          if (kind.kind === "delta" && fn === "leak") {
            // a leak lists the pages it filled (and the allocator's), not every page: memory.fill marks its range
            expect(kind.listed.length).toBeGreaterThan(0)
            // 3 KiB: its page or two and the allocator's, each with the page after (spills), not all of them
            if (args[0]! <= 3) expect(kind.listed.length).toBeLessThanOrEqual(5)
            if (args[0]! <= 3) expect(saved.state.memoryBytes / PAGE).toBeGreaterThan(8)
          }
        }
      }).pipe(Effect.provide(layer))
    }
  )

  it.effect("concurrent calls on one idle agent: each returns once a save holding it completed", () => {
    const { saves, layer } = recording(true)
    return Effect.gen(function* () {
      const runtime = yield* spawn("counter", "c")
      const id = agentId("c")
      const start = (yield* runtime.agent(id)).invocationCount
      let completed = 0
      const results = yield* Effect.forEach(
        Array.from({ length: 24 }, (_, k) => k),
        () =>
          Effect.tap(runtime.invoke(id, "increment", []), () =>
            Effect.sync(() => {
              completed++
              // this call's save (and every earlier one) completed before it returned
              const saved = saves.filter((s) => s.agentId === id).at(-1)!
              expect(saved.invocationCount).toBeGreaterThanOrEqual(start + completed)
            })
          ),
        { concurrency: "unbounded" }
      )
      expect(results.map(([n]) => n).sort((a, b) => (a as number) - (b as number))).toEqual(
        Array.from({ length: 24 }, (_, k) => k + 1)
      )
      const final = saves.filter((s) => s.agentId === id).at(-1)!
      expect(final.invocationCount).toBe(start + 24)
      expect(Object.values(final.state.globals)).toContain(24)
    }).pipe(Effect.provide(layer))
  })

  it.effect("a trap or a host write makes the next save whole; a host write is saved too", () => {
    const { saves, kinds, layer } = recording(true)
    return Effect.gen(function* () {
      const runtime = yield* spawn("leaky", "t")
      const id = agentId("t")
      yield* runtime.invoke(id, "leak", [10])
      yield* runtime.invoke(id, "leak", [10])
      expect(kinds.map((k) => k.kind)).toEqual(["whole", "delta"])
      const trapped = yield* Effect.flip(runtime.invoke(id, "leak", [1 << 20])) // over the allocator's limit: traps
      expect(trapped._tag).toBe("Trap")
      yield* runtime.invoke(id, "leak", [1])
      expect(kinds.at(-1)!.kind).toBe("whole") // the trap: the engine could not vouch for its marks
      yield* runtime.writeMemory(id, 3 * 1024, new Uint8Array([1, 2, 3]))
      expect(kinds.at(-1)!.kind).toBe("whole") // saved after the write, whole (the barrier does not see it)
      yield* runtime.invoke(id, "leaked", [])
      expect(kinds.at(-1)!.kind).toBe("delta")
      const saved = saves.filter((s) => s.agentId === id).at(-1)!
      const memory = yield* runtime.readMemory(id, 0, saved.state.memoryBytes)
      expect(Buffer.compare(Buffer.from(memoryOf(saved)), Buffer.from(memory))).toBe(0)
      expect([...memory.subarray(3 * 1024, 3 * 1024 + 3)]).toEqual([1, 2, 3])
    }).pipe(Effect.provide(layer))
  })

  it.effect(
    "a snapshot copies every page whatever the settings; deltas only with the barrier and a delta store",
    () => {
      const off = recording(false)
      const noBarrier = recording(true, false)
      const on = recording(true)
      const twice = Effect.gen(function* () {
        const runtime = yield* spawn("leaky", "s")
        yield* runtime.invoke(agentId("s"), "leak", [2])
        yield* runtime.invoke(agentId("s"), "leak", [2])
        const a = yield* runtime.snapshot(agentId("s"))
        const b = yield* runtime.snapshot(agentId("s"))
        expect(a.state.pages.length).toBeGreaterThan(0)
        return a.state.pages.some((p, k) => b.state.pages[k]!.data === p.data)
      })
      return Effect.gen(function* () {
        expect(yield* Effect.provide(twice, off.layer)).toBe(false)
        expect(yield* Effect.provide(twice, noBarrier.layer)).toBe(false)
        expect(yield* Effect.provide(twice, on.layer)).toBe(false)
        expect(off.kinds.map((k) => k.kind)).toEqual(["whole", "whole"]) // the two explicit snapshots
        expect(noBarrier.kinds.every((k) => k.kind === "whole")).toBe(true)
        expect(on.kinds.map((k) => k.kind)).toEqual(["whole", "delta", "whole", "whole"])
      })
    }
  )

  for (const scenario of crossEngineScenarios) {
    it.effect(
      `${scenario.agent}: the save after the last call is the cross-engine reference snapshot, byte for byte`,
      () => {
        const { saves, layer } = recording(true)
        return Effect.gen(function* () {
          const runtime = yield* spawn(scenario.agent, scenario.id, scenario.memoryLimit)
          for (const c of scenario.before) yield* runtime.invoke(agentId(scenario.id), c.fn, c.args)
          const reference = yield* Effect.orDie(decodeVector(scenario.id))
          const config = { timeoutMs: reference.timeoutMs, fuel: reference.fuel, critical: reference.critical }
          const saved = saves.filter((x) => x.agentId === scenario.id).at(-1)!
          // the same as `normalized` of the conformance: the wall-clock field aside, and the host's agent config
          const ours = yield* Effect.orDie(SnapshotCodec.encode({ ...saved, takenAt: 0, ...config }))
          const theirs = yield* Effect.orDie(SnapshotCodec.encode({ ...reference, takenAt: 0 }))
          expect(ours).toEqual(theirs)
        }).pipe(Effect.provide(layer))
      }
    )
  }
})
