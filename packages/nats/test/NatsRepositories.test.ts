/**
 * What the contract does not cover: snapshots over the server's max payload
 * (through the Object Store), corrupt or tampered stored bytes refused with
 * a typed error, and a second host (its own connection) reading what the
 * first one saved.
 */
import { expectSnapshotEqual, Fixtures } from "@agent-runtime/repository-contract"
import { InstanceRepository, ModuleRepository, type InstanceSnapshot } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import { Kvm } from "@nats-io/kv"
import { Objm } from "@nats-io/obj"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { afterAll, beforeAll } from "vitest"
import { Nats, NatsInstanceRepository, NatsModuleRepository } from "../src/index.js"
import { connection, names } from "./support/layers.js"
import { startNatsServer, type RunningNatsServer } from "./support/NatsServer.js"

let server: RunningNatsServer
beforeAll(async () => {
  server = await startNatsServer()
})
afterAll(() => server?.dispose())

type Names = ReturnType<typeof names>

/** One host: its own connection, the repositories on the shared buckets, and the raw connection. */
const host = (n: Names, name: string) =>
  Effect.gen(function* () {
    const nats = yield* Layer.build(connection(server.url, name))
    const repos = yield* Layer.build(
      Layer.mergeAll(
        NatsInstanceRepository.layer({ bucket: n.instances, objectStore: n.snapshots }),
        NatsModuleRepository.layer({ bucket: n.modules, objectStore: n.modules })
      ).pipe(Layer.provide(Layer.succeedContext(nats)))
    )
    const raw = Context.get(nats, Nats.Nats)
    return {
      instances: Context.get(repos, InstanceRepository),
      modules: Context.get(repos, ModuleRepository),
      kv: (bucket: string) => Effect.promise(() => new Kvm(raw.jetstream).open(bucket)),
      store: (bucket: string) => Effect.promise(() => new Objm(raw.jetstream).open(bucket)),
      maxPayload: raw.maxPayload
    }
  })

/** A snapshot whose 40 pages of seeded random bytes (2.5 MiB) do not compress below the 1 MiB max payload. */
const large = (id: string): InstanceSnapshot =>
  Fixtures.snapshot(id, { seed: 21, pages: Array.from({ length: 40 }, (_, i) => i) })
const keyOf = (id: string) => "k" + Buffer.from(id, "utf8").toString("base64url")
const magic = (bytes: Uint8Array) => new TextDecoder().decode(bytes.subarray(0, 4))

describe("NatsInstanceRepository", () => {
  it.effect(
    "a snapshot over the server's max payload goes through the Object Store (KV holds a pointer) and comes back on another host",
    () =>
      Effect.gen(function* () {
        const n = names()
        const a = yield* host(n, "host-a")
        const b = yield* host(n, "host-b")
        expect(a.maxPayload).toBe(1024 * 1024)
        const s = large("big")
        yield* a.instances.saveState(s.agentId, s)
        const kv = yield* a.kv(n.instances)
        const entry = yield* Effect.promise(() => kv.get(keyOf("big")))
        expect(magic(entry!.value)).toBe("ARSP")
        const store = yield* a.store(n.snapshots)
        const objects = yield* Effect.promise(() => store.list())
        expect(objects.length).toBe(1)
        expect(objects[0]!.size).toBeGreaterThan(a.maxPayload)
        expectSnapshotEqual(Option.getOrThrow(yield* b.instances.loadState(s.agentId)), s)
        // a small snapshot replaces it inline and the object goes
        const small = Fixtures.snapshot("big", { seed: 2, pages: [0] })
        yield* b.instances.saveState(small.agentId, small)
        expect(magic((yield* Effect.promise(() => kv.get(keyOf("big"))))!.value)).toBe("ARSN")
        expect((yield* Effect.promise(() => store.list())).length).toBe(0)
        expectSnapshotEqual(Option.getOrThrow(yield* a.instances.loadState(s.agentId)), small)
        // and deleting a large one removes its object
        yield* a.instances.saveState(s.agentId, s)
        yield* a.instances.deleteState(s.agentId)
        expect((yield* Effect.promise(() => store.list())).length).toBe(0)
        expect(yield* b.instances.loadState(s.agentId)).toEqual(Option.none())
      }).pipe(Effect.scoped),
    60_000
  )

  it.effect(
    "a corrupted snapshot in KV (flipped byte, garbage, tampered object) fails loadState with RepositoryError SnapshotCorrupt",
    () =>
      Effect.gen(function* () {
        const n = names()
        const a = yield* host(n, "host-a")
        const kv = yield* a.kv(n.instances)
        const s = Fixtures.snapshot("victim", { seed: 3, pages: [0, 2] })
        yield* a.instances.saveState(s.agentId, s)
        const stored = (yield* Effect.promise(() => kv.get(keyOf("victim"))))!.value.slice()
        stored[stored.length - 10]! ^= 0xff
        yield* Effect.promise(() => kv.put(keyOf("victim"), stored))
        const flipped = yield* Effect.flip(a.instances.loadState(s.agentId))
        expect(flipped._tag).toBe("RepositoryError")
        expect(flipped.reason).toMatch(/^SnapshotCorrupt: /)
        yield* Effect.promise(() => kv.put(keyOf("victim"), new TextEncoder().encode("not a snapshot")))
        expect((yield* Effect.flip(a.instances.loadState(s.agentId))).reason).toMatch(/^SnapshotCorrupt: .*bad magic/)
        // a large one whose object was replaced by other bytes
        const big = large("victim")
        yield* a.instances.saveState(big.agentId, big)
        const pointer = JSON.parse(
          new TextDecoder().decode((yield* Effect.promise(() => kv.get(keyOf("victim"))))!.value.subarray(4))
        )
        const store = yield* a.store(n.snapshots)
        yield* Effect.promise(() => store.putBlob({ name: pointer.object }, new Uint8Array(pointer.size)))
        expect((yield* Effect.flip(a.instances.loadState(s.agentId))).reason).toMatch(/^SnapshotCorrupt: .*SHA-256/)
        // the agent's listing and deletion still work
        expect(yield* a.instances.listSaved).toEqual(["victim"])
        yield* a.instances.deleteState(s.agentId)
        expect(yield* a.instances.loadState(s.agentId)).toEqual(Option.none())
      }).pipe(Effect.scoped),
    60_000
  )
})

describe("NatsModuleRepository", () => {
  it.effect(
    "a host that never saw a module loads it from the Object Store; a tampered object is refused before it is returned",
    () =>
      Effect.gen(function* () {
        const n = names()
        const a = yield* host(n, "host-a")
        const b = yield* host(n, "host-b")
        const m = Fixtures.module("shared", Fixtures.seeded(30).bytes(2 * 1024 * 1024))
        yield* a.modules.save(m)
        const loaded = yield* b.modules.load(m.id)
        expect(Buffer.compare(loaded.bytes, m.bytes)).toBe(0)
        expect(loaded.hash).toBe(m.hash)
        expect(yield* b.modules.findByHash(m.hash)).toEqual(Option.some(m.id))
        const store = yield* a.store(n.modules)
        const objects = yield* Effect.promise(() => store.list())
        expect(objects.map((o) => o.name)).toEqual([`${m.hash}/${m.hash}`])
        const tampered = m.bytes.slice()
        tampered[1000]! ^= 1
        yield* Effect.promise(() => store.putBlob({ name: objects[0]!.name }, tampered))
        const refused = yield* Effect.flip(b.modules.load(m.id))
        expect(refused._tag).toBe("RepositoryError")
        expect(refused._tag === "RepositoryError" && refused.reason).toMatch(/^refused: .*SHA-256/)
      }).pipe(Effect.scoped),
    60_000
  )
})
