/**
 * `persistence.snapshotAfterCalls` on the native engine (issue 13 item 7):
 * with `dirtyPages: true` the engine declares the dirty-page barrier for
 * runtimes that snapshot after calls (`capabilities.dirtyPages:
 * "snapshotAfterCalls"`; off by default), so each save's
 * snapshot copies only the pages the call stored to and hands the others
 * back as the previous save's own objects; every save still holds exactly
 * the agent's memory; an idle agent's call takes the synchronous path and
 * returns only once its state is saved, concurrent calls included. A
 * runtime that does not snapshot after calls compiles no barrier: its
 * snapshots are fresh copies.
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
import { NativeEngine } from "../src/index.js"

const PAGE = 65_536

/** A runtime on the native engine whose instance repository records every save. */
const recording = (snapshotAfterCalls: boolean, dirtyPages = true) => {
  const base = InstanceRepositories.makeMemory()
  const saves: Array<InstanceSnapshot> = []
  const repository: InstanceRepositories.InstanceRepositoryShape = {
    ...base,
    saveState: (id, snapshot) =>
      Effect.andThen(
        base.saveState(id, snapshot),
        Effect.sync(() => void saves.push(snapshot))
      )
  }
  const layer = AgentRuntimes.layer({ id: "rt-saves", persistence: { snapshotAfterCalls } }).pipe(
    Layer.provide(
      Layer.mergeAll(
        NativeEngine.layerWith({ dirtyPages }),
        Signing.layer({ trustStore: testOnlyTrustStore() }),
        ModuleRepositories.layerMemory,
        Layer.succeed(InstanceRepository, repository),
        MetricsRepositories.layerMemory,
        EventBuses.layerMemory,
        ExecutionAuthorizers.layerAllowAll
      )
    )
  )
  return { saves, layer }
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
  it("with dirtyPages the engine asks for the barrier only for runtimes that snapshot after calls; by default never", () => {
    const on = NativeEngine.make({ dirtyPages: true }).capabilities
    expect(on.dirtyPages).toBe("snapshotAfterCalls")
    expect(usesDirtyPages(on, true)).toBe(true)
    expect(usesDirtyPages(on, false)).toBe(false)
    expect(NativeEngine.make().capabilities.dirtyPages).toBeUndefined()
    expect(usesDirtyPages(NativeEngine.capabilities, true)).toBe(false)
  })

  it.effect(
    "every acknowledged call is saved whole; pages the call did not store to are the last save's objects",
    () => {
      const { saves, layer } = recording(true)
      return Effect.gen(function* () {
        const runtime = yield* spawn("leaky", "l")
        const id = agentId("l")
        const last = () => saves.filter((s) => s.agentId === id).at(-1)!
        const calls: ReadonlyArray<readonly [string, ReadonlyArray<number>]> = [
          ["leak", [1]],
          ["leak", [100]], // grows memory: new pages
          ["leaked", []], // stores nothing
          ["leak", [3]],
          ["calls_made", []],
          ["leak", [200]],
          ["pages", []]
        ]
        let before: InstanceSnapshot | undefined
        for (const [fn, args] of calls) {
          const count = (yield* runtime.agent(id)).invocationCount
          yield* runtime.invoke(id, fn, args)
          // acknowledged = saved: the last save is this call's state
          const saved = last()
          expect(saved.invocationCount).toBe(count + 1)
          const memory = yield* runtime.readMemory(id, 0, saved.state.memoryBytes)
          expect(Buffer.compare(Buffer.from(memoryOf(saved)), Buffer.from(memory))).toBe(0)
          if (before !== undefined && (fn === "leaked" || fn === "calls_made" || fn === "pages")) {
            // a call that stores nothing: the same page objects as the save before it
            expect(saved.state.pages.length).toBe(before.state.pages.length)
            for (const [j, p] of saved.state.pages.entries()) expect(p.data).toBe(before.state.pages[j]!.data)
          }
          if (fn === "leak" && before !== undefined && before.state.pages.length > 2) {
            // a leak writes new pages (and the allocator's header page); the pages of earlier leaks keep their
            // objects (memory.fill marks every page: they are compared and kept, being equal)
            const old = new Map(before!.state.pages.map((p) => [p.index, p.data]))
            const kept = saved.state.pages.filter((p) => old.get(p.index) === p.data).length
            expect(kept).toBeGreaterThan(0)
          }
          before = saved
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

  it.effect("a trap makes the next save scan every page; a host write is saved too", () => {
    const { saves, layer } = recording(true)
    return Effect.gen(function* () {
      const runtime = yield* spawn("leaky", "t")
      const id = agentId("t")
      yield* runtime.invoke(id, "leak", [10])
      const trapped = yield* Effect.flip(runtime.invoke(id, "leak", [1 << 20])) // over the allocator's limit: traps
      expect(trapped._tag).toBe("Trap")
      yield* runtime.writeMemory(id, 3 * 1024, new Uint8Array([1, 2, 3]))
      yield* runtime.invoke(id, "leaked", [])
      const saved = saves.filter((s) => s.agentId === id).at(-1)!
      const memory = yield* runtime.readMemory(id, 0, saved.state.memoryBytes)
      expect(Buffer.compare(Buffer.from(memoryOf(saved)), Buffer.from(memory))).toBe(0)
      expect([...memory.subarray(3 * 1024, 3 * 1024 + 3)]).toEqual([1, 2, 3])
    }).pipe(Effect.provide(layer))
  })

  it.effect(
    "without snapshotAfterCalls, or by default, no barrier is compiled in: each snapshot is a fresh copy",
    () => {
      const off = recording(false)
      const byDefault = recording(true, false)
      const on = recording(true)
      const twice = Effect.gen(function* () {
        const runtime = yield* spawn("leaky", "s")
        yield* runtime.invoke(agentId("s"), "leak", [2])
        const a = yield* runtime.snapshot(agentId("s"))
        const b = yield* runtime.snapshot(agentId("s"))
        expect(a.state.pages.length).toBeGreaterThan(0)
        return a.state.pages.every((p, k) => b.state.pages[k]!.data === p.data)
      })
      return Effect.gen(function* () {
        expect(yield* Effect.provide(twice, off.layer)).toBe(false)
        expect(yield* Effect.provide(twice, byDefault.layer)).toBe(false)
        expect(yield* Effect.provide(twice, on.layer)).toBe(true)
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
