/**
 * Saves after calls as deltas, end to end (issue 13 item 7): the native
 * engine with the dirty-page write barrier (`NativeEngine.make({ dirtyPages:
 * true })`, `WasmInstance.snapshotChanges`) saving through the SQLite
 * repository's `savePages`, against the same workload on an engine without
 * the barrier (every save a whole snapshot, `saveState`). Real agents
 * (counter, leaky — memory.fill and growth —, text — host writes —,
 * trapper — traps), a seeded random workload, one call at a time on both
 * runtimes: what each file holds is byte for byte the same (memory, globals,
 * invocation counts), the delta path was really taken, and a new runtime
 * restored from the delta file (`restoreOnStart`) has every agent's memory
 * and globals exactly as the whole-save file holds them.
 */
import { readAgent } from "@agent-runtime/agents"
import {
  AgentRuntime,
  type AgentRuntimes,
  agentId,
  AgentRuntimes as Runtimes,
  EventBuses,
  ExecutionAuthorizers,
  type InstanceRepositories,
  InstanceRepository,
  type InstanceSnapshot,
  makeMetadata,
  MemoryBudget,
  type WasmValue
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import { SqliteRepositories } from "@agent-runtime/repository-sqlite"
import { layer as verifierLayer } from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { prng } from "@agent-runtime/test-support/mutate"

/** Counts the delta saves the repository applied (the port's `savePages` answering `true`). */
const counting = (counter: { deltas: number; refused: number }) =>
  Layer.effect(
    InstanceRepository,
    Effect.map(
      InstanceRepository.use((repo) => Effect.succeed(repo)),
      (repo): InstanceRepositories.InstanceRepositoryShape => {
        const savePages = repo.savePages
        return {
          ...repo,
          savePages:
            savePages === undefined
              ? undefined
              : (id, c) =>
                  Effect.tap(savePages(id, c), (ok) =>
                    Effect.sync(() => {
                      if (ok) counter.deltas++
                      else counter.refused++
                    })
                  )
        }
      }
    )
  )

const runtimeLayer = (
  path: string,
  dirtyPages: boolean,
  counter: { deltas: number; refused: number },
  restoreOnStart = false
) => {
  const repositories = SqliteRepositories.layer({ path })
  return Runtimes.layer({ id: `rt-${dirtyPages}`, persistence: { snapshotAfterCalls: true, restoreOnStart } }).pipe(
    Layer.provide(
      Layer.mergeAll(
        NativeEngine.layerWith({ dirtyPages }),
        verifierLayer({ trustStore: testOnlyTrustStore() }),
        Layer.merge(repositories, Layer.provide(counting(counter), repositories)), // the counting one wins
        EventBuses.layerMemory,
        ExecutionAuthorizers.layerAllowAll
      )
    )
  )
}

const comparable = (s: InstanceSnapshot["state"]) => ({
  memoryBytes: s.memoryBytes,
  globals: s.globals,
  pages: s.pages.map((p) => [
    p.index,
    Buffer.from(p.data.buffer, p.data.byteOffset, p.data.byteLength).toString("base64")
  ])
})

const AGENTS = ["counter", "leaky", "text", "trapper"] as const

describe("delta saves after calls (native barrier + SQLite savePages)", () => {
  it.live(
    "a random workload leaves the same saved state as whole saves; a restore brings every agent back byte for byte",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const dir = mkdtempSync(join(tmpdir(), "delta-saves-"))
          yield* Effect.addFinalizer(() => Effect.sync(() => rmSync(dir, { recursive: true, force: true })))
          const deltaFile = join(dir, "delta.sqlite")
          const wholeFile = join(dir, "whole.sqlite")
          const withDelta = { deltas: 0, refused: 0 }
          const withWhole = { deltas: 0, refused: 0 }
          const ids: Array<string> = []
          yield* Effect.scoped(
            Effect.gen(function* () {
              const delta = (yield* Layer.build(runtimeLayer(deltaFile, true, withDelta))).mapUnsafe.get(
                AgentRuntime.key
              ) as AgentRuntimes.AgentRuntimeShape
              const whole = (yield* Layer.build(runtimeLayer(wholeFile, false, withWhole))).mapUnsafe.get(
                AgentRuntime.key
              ) as AgentRuntimes.AgentRuntimeShape
              const both = <A, E>(f: (rt: AgentRuntimes.AgentRuntimeShape) => Effect.Effect<A, E>) =>
                Effect.gen(function* () {
                  const a = yield* Effect.exit(f(delta))
                  const b = yield* Effect.exit(f(whole))
                  expect(a._tag).toBe(b._tag)
                  return a._tag === "Success" ? a.value : undefined
                })
              const modules = new Map<string, string>()
              for (const name of AGENTS) {
                const metadata = makeMetadata({ name, version: "1.0.0" })
                modules.set(name, String(yield* both((rt) => rt.loadModule(readAgent(name), metadata))))
              }
              for (const name of AGENTS) {
                for (let k = 0; k < 3; k++) {
                  const id = `${name}-${k}`
                  ids.push(id)
                  yield* both((rt) =>
                    rt.spawnAgent(agentId(id), modules.get(name) as never, { memoryLimit: 8 * MemoryBudget.MiB })
                  )
                }
              }
              const next = prng(1337).int
              const call = (id: string, fn: string, args: ReadonlyArray<WasmValue>) =>
                both((rt) => rt.invoke(agentId(id), fn, args))
              for (let step = 0; step < 400; step++) {
                const id = ids[next(ids.length)]!
                const kind = id.slice(0, id.lastIndexOf("-"))
                switch (kind) {
                  case "counter":
                    yield* next(2) === 0 ? call(id, "increment", []) : call(id, "add", [next(1000)])
                    break
                  case "leaky":
                    yield* next(3) === 0 ? call(id, "calls_made", []) : call(id, "leak", [1 + next(48)])
                    break
                  case "text": {
                    const text = new TextEncoder().encode(`the quick brown fox ${next(1e6)} jumps ${step}`)
                    const ptr = yield* call(id, "alloc", [text.length])
                    if (ptr === undefined) break
                    yield* both((rt) => rt.writeMemory(agentId(id), ptr[0] as number, text))
                    yield* call(id, next(2) === 0 ? "word_count" : "checksum", [ptr[0]!, text.length])
                    yield* call(id, "dealloc", [ptr[0]!, text.length])
                    break
                  }
                  case "trapper":
                    if (next(4) === 0) yield* call(id, "divide", [1, 0])
                    else yield* call(id, "divide", [next(100), 1 + next(9)])
                    break
                }
              }
            })
          )
          // the delta path was taken for most saves (a whole save for each agent's first, and after traps / host writes)
          expect(withDelta.deltas).toBeGreaterThan(200)
          expect(withWhole.deltas + withWhole.refused).toBe(0) // no barrier: no changes reported, whole saves only
          // both files hold the same state, read through fresh connections
          const load = (path: string) =>
            Effect.scoped(
              Effect.gen(function* () {
                const repo = (yield* Layer.build(SqliteRepositories.layer({ path }))).mapUnsafe.get(
                  InstanceRepository.key
                ) as InstanceRepository["Service"]
                const out = new Map<string, InstanceSnapshot>()
                for (const id of ids) out.set(id, Option.getOrThrow(yield* repo.loadState(agentId(id))))
                return out
              })
            )
          const a = yield* load(deltaFile)
          const b = yield* load(wholeFile)
          for (const id of ids) {
            expect(comparable(a.get(id)!.state), id).toEqual(comparable(b.get(id)!.state))
            expect(a.get(id)!.invocationCount).toBe(b.get(id)!.invocationCount)
          }
          expect([...a.values()].reduce((n, s) => n + s.state.pages.length, 0)).toBeGreaterThan(ids.length)
          // a new runtime on the delta file brings every agent back with exactly that memory
          yield* Effect.scoped(
            Effect.gen(function* () {
              const restored = (yield* Layer.build(runtimeLayer(deltaFile, true, withDelta, true))).mapUnsafe.get(
                AgentRuntime.key
              ) as AgentRuntimes.AgentRuntimeShape
              for (const id of ids) {
                const s = yield* restored.snapshot(agentId(id))
                expect(comparable(s.state), id).toEqual(comparable(b.get(id)!.state))
              }
            })
          )
        })
      ),
    120_000
  )
})
