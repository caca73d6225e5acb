import { agentId, InstanceRepository, RepositoryError } from "@agent-runtime/domain"
import { expectSnapshotEqual, Fixtures } from "@agent-runtime/repository-contract"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type KeyValueStore, KvInstanceRepository } from "../src/index.js"

describe("KvInstanceRepository", () => {
  it.effect("one key per agent under the prefix; i64 globals and page bytes survive exactly", () =>
    Effect.gen(function* () {
      const store = KvInstanceRepository.memoryStore()
      const repo = KvInstanceRepository.make(store, { prefix: "p:" })
      const s = Fixtures.snapshot("a1")
      const withI64 = {
        ...s,
        state: { ...s.state, globals: { ...s.state.globals, big: -(2n ** 63n), small: 2n ** 63n - 1n, f: 1.5 } }
      }
      yield* repo.saveState(withI64.agentId, withI64)
      expect([...store.entries.keys()]).toEqual(["p:a1"])
      const back = Option.getOrThrow(yield* repo.loadState(agentId("a1")))
      expectSnapshotEqual(back, withI64)
      expect(back.state.globals["big"]).toBe(-(2n ** 63n))
    })
  )

  it.effect("listSaved pages through the cursor; keys of other prefixes are not listed", () =>
    Effect.gen(function* () {
      const store = KvInstanceRepository.memoryStore(3)
      yield* Effect.promise(() => store.put("other:x", "{}"))
      const repo = KvInstanceRepository.make(store)
      for (let i = 0; i < 8; i++) yield* repo.saveState(agentId(`a${i}`), Fixtures.snapshot(`a${i}`))
      expect([...(yield* repo.listSaved)].sort()).toEqual(Array.from({ length: 8 }, (_, i) => `a${i}`))
    })
  )

  it.effect("a corrupt value and a failing store → RepositoryError, never a crash", () =>
    Effect.gen(function* () {
      const store = KvInstanceRepository.memoryStore()
      const repo = KvInstanceRepository.make(store)
      store.entries.set("agent-runtime:instance:bad", "{not json")
      store.entries.set(
        "agent-runtime:instance:worse",
        JSON.stringify({
          format: "agent-runtime/instance-snapshot",
          v: 1,
          snapshot: {},
          state: { memoryBytes: 0, pages: [{ index: 0, data: "@@@@" }], globals: {} }
        })
      )
      const e = yield* Effect.flip(repo.loadState(agentId("bad")))
      expect(e).toBeInstanceOf(RepositoryError)
      expect(e.message).toMatch(/corrupt: not JSON/)
      expect((yield* Effect.flip(repo.loadState(agentId("worse")))).message).toMatch(/page 0 is malformed/)
      const broken: KeyValueStore = {
        get: () => Promise.reject(new Error("KV unavailable")),
        put: () => Promise.reject(new Error("KV write limit")),
        delete: () => Promise.reject(new Error("nope")),
        list: () => Promise.reject(new Error("nope"))
      }
      const failing = KvInstanceRepository.make(broken)
      expect(yield* Effect.flip(failing.loadState(agentId("x")))).toMatchObject({
        _tag: "RepositoryError",
        operation: "loadState",
        reason: "KV unavailable"
      })
      expect(yield* Effect.flip(failing.saveState(agentId("x"), Fixtures.snapshot("x")))).toMatchObject({
        operation: "saveState"
      })
      expect(yield* Effect.flip(failing.listSaved)).toMatchObject({ operation: "listSaved" })
    })
  )

  it.effect("the layer provides the InstanceRepository port", () =>
    Effect.gen(function* () {
      const repo = yield* InstanceRepository
      expect(yield* repo.listSaved).toEqual([])
    }).pipe(Effect.provide(KvInstanceRepository.layer(KvInstanceRepository.memoryStore())))
  )
})
