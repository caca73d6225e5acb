/**
 * Hosts may run different engines (issue 14 item 5): one agent handed over
 * live between a runtime on engine-node and a runtime on engine-native, in
 * both directions, through the bytes a host stores (`SnapshotCodec` + gzip,
 * as `@agent-runtime/nats` keeps them in KV) — the state continues (the
 * counter's internal mutable global, memory pages and size).
 *
 * Also keeps the conformance suite's reference vectors
 * (`@agent-runtime/conformance` `cases/vectors/Snapshots.ts`) honest: they
 * are what engine-node produces; `UPDATE_SNAPSHOT_VECTORS=1` rewrites them.
 */
import { type AgentName, readAgent } from "@agent-runtime/agents"
import { crossEngineScenarios, decodeVector, encodeVector, toBase64 } from "@agent-runtime/conformance"
import {
  AgentRuntime,
  AgentRuntimes,
  agentId,
  InstanceRepository,
  makeMetadata,
  SnapshotCodec,
  type WasmEngine
} from "@agent-runtime/domain"
import { NativeEngine } from "@agent-runtime/engine-native"
import * as Signing from "@agent-runtime/signing"
import { testOnlyTrustStore } from "@agent-runtime/signing/test-keys"
import { describe, expect, it } from "@effect/vitest"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { writeFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { NodeEngine } from "../src/index.js"

const MiB = 1_048_576
const PAGE = 65_536

/** A runtime ("host") on one engine, built in the test's scope, with its repository. */
const host = (name: string, engine: Layer.Layer<WasmEngine>) =>
  Effect.gen(function* () {
    const context = yield* Layer.build(
      AgentRuntimes.layerMemory({ id: `xengine-${name}` }).pipe(
        Layer.provide(Layer.mergeAll(engine, Signing.layer({ trustStore: testOnlyTrustStore() })))
      )
    )
    const rt = Context.get(context, AgentRuntime)
    const repo = Context.get(context, InstanceRepository)
    /** Loads a fixture agent; its id and module hash (lowercase hex SHA-256). */
    const load = (name: AgentName) =>
      Effect.gen(function* () {
        const id = yield* rt.loadModule(readAgent(name), makeMetadata({ name, version: "1.0.0" }))
        return { id, hash: (yield* rt.getModule(id)).hash }
      })
    /** The stored bytes of the agent's snapshot (as a host saves it for another host). */
    const handOff = (id: string) => Effect.flatMap(rt.snapshot(agentId(id)), (s) => encodeVector(s))
    /** Takes the agent over from stored bytes: decode (module hash checked), save, restore. */
    const takeOver = (id: string, bytes: Uint8Array, hash: string) =>
      Effect.gen(function* () {
        const snap = yield* SnapshotCodec.decode(bytes, { expectedModuleHash: hash, compression: gzipOf() })
        yield* repo.saveState(agentId(id), snap)
        return yield* rt.restore(agentId(id))
      })
    return { rt, load, handOff, takeOver }
  })

// the codec's gzip, as the conformance vectors use it (Compression Streams, global in Node ≥ 18)
const gzipOf = (): SnapshotCodec.SnapshotCompression => {
  const through = async (stream: CompressionStream | DecompressionStream, bytes: Uint8Array) =>
    new Uint8Array(
      await new Response(new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream)).arrayBuffer()
    )
  return {
    compress: (b) => through(new CompressionStream("gzip"), b),
    decompress: (b) => through(new DecompressionStream("gzip"), b)
  }
}

const call = (rt: AgentRuntime["Service"], id: string, fn: string, args: ReadonlyArray<number> = []) =>
  rt.invoke(agentId(id), fn, args)

describe("a snapshot moves between hosts on different engines", () => {
  it.live(
    "counter: node → native → node, the count (an internal mutable global) continues",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const nodeA = yield* host("node-a", NodeEngine.layer)
          const native = yield* host("native", NativeEngine.layer)
          const nodeB = yield* host("node-b", NodeEngine.layer)
          const { hash, id: moduleId } = yield* nodeA.load("counter")
          yield* nodeA.rt.spawnAgent(agentId("c"), moduleId, { memoryLimit: MiB })
          expect(yield* call(nodeA.rt, "c", "add", [41])).toEqual([41])
          const fromNode = yield* nodeA.handOff("c")

          yield* native.load("counter")
          const onNative = yield* native.takeOver("c", fromNode, hash)
          expect(onNative.state).toBe("Running")
          expect(yield* call(native.rt, "c", "get")).toEqual([41])
          expect(yield* call(native.rt, "c", "increment")).toEqual([42])
          const fromNative = yield* native.handOff("c")

          yield* nodeB.load("counter")
          yield* nodeB.takeOver("c", fromNative, hash)
          expect(yield* call(nodeB.rt, "c", "get")).toEqual([42])
          expect(yield* call(nodeB.rt, "c", "add", [8])).toEqual([50])
        })
      ),
    60_000
  )

  it.live(
    "grower: native → node → native, memory size and bytes continue (zero pages stay skipped)",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const nativeA = yield* host("native-a", NativeEngine.layer)
          const node = yield* host("node", NodeEngine.layer)
          const nativeB = yield* host("native-b", NativeEngine.layer)
          const { hash, id: moduleId } = yield* nativeA.load("grower")
          yield* nativeA.rt.spawnAgent(agentId("g"), moduleId, { memoryLimit: MiB })
          expect(yield* call(nativeA.rt, "g", "grow", [2])).toEqual([1])
          yield* call(nativeA.rt, "g", "poke", [PAGE + 3, 11])
          const fromNative = yield* nativeA.handOff("g")
          expect(
            (yield* SnapshotCodec.decode(fromNative, { compression: gzipOf() })).state.pages.map((p) => p.index)
          ).toEqual([1])

          yield* node.load("grower")
          const onNode = yield* node.takeOver("g", fromNative, hash)
          expect(onNode.budget.used).toBe(3 * PAGE)
          expect(yield* call(node.rt, "g", "peek", [PAGE + 3])).toEqual([11])
          expect(yield* call(node.rt, "g", "grow", [1])).toEqual([3])
          yield* call(node.rt, "g", "poke", [3 * PAGE + 1, 22])
          const fromNode = yield* node.handOff("g")

          yield* nativeB.load("grower")
          const back = yield* nativeB.takeOver("g", fromNode, hash)
          expect(back.budget.used).toBe(4 * PAGE)
          expect(yield* call(nativeB.rt, "g", "size")).toEqual([4])
          expect(yield* call(nativeB.rt, "g", "peek", [PAGE + 3])).toEqual([11])
          expect(yield* call(nativeB.rt, "g", "peek", [3 * PAGE + 1])).toEqual([22])
          expect(yield* call(nativeB.rt, "g", "peek", [2 * PAGE])).toEqual([0])
        })
      ),
    60_000
  )
})

describe("the conformance suite's reference snapshots are engine-node's", () => {
  it.live(
    "each scenario driven on engine-node gives the checked-in vector (UPDATE_SNAPSHOT_VECTORS=1 rewrites it)",
    () =>
      Effect.scoped(
        Effect.gen(function* () {
          const node = yield* host("vectors", NodeEngine.layer)
          const fresh: Record<string, string> = {}
          for (const s of crossEngineScenarios) {
            const { id: moduleId } = yield* node.load(s.agent)
            yield* node.rt.spawnAgent(agentId(s.id), moduleId, { memoryLimit: s.memoryLimit })
            for (const c of s.before) yield* node.rt.invoke(agentId(s.id), c.fn, c.args)
            fresh[s.id] = toBase64(yield* node.handOff(s.id))
          }
          if (process.env["UPDATE_SNAPSHOT_VECTORS"] === "1") {
            const file = fileURLToPath(new URL("../../conformance/src/cases/vectors/Snapshots.ts", import.meta.url))
            writeFileSync(file, vectorSource(fresh))
            return
          }
          for (const s of crossEngineScenarios) {
            const checkedIn = yield* decodeVector(s.id)
            const mine = yield* SnapshotCodec.decode(
              Uint8Array.from(atob(fresh[s.id]!), (c) => c.charCodeAt(0)),
              { compression: gzipOf() }
            )
            expect(yield* SnapshotCodec.encode(mine)).toEqual(yield* SnapshotCodec.encode(checkedIn))
          }
        })
      ),
    60_000
  )
})

const vectorSource = (snapshots: Record<string, string>) =>
  `/**
 * Reference snapshots (generated — do not edit): \`SnapshotCodec\` bytes with a
 * gzip payload, base64, one per \`crossEngineScenarios\` entry, \`takenAt\` = 0.
 * Regenerate: UPDATE_SNAPSHOT_VECTORS=1 pnpm --filter @agent-runtime/engine-node test CrossEngine
 */
export const snapshotVectors: { readonly producedBy: string; readonly snapshots: Readonly<Record<string, string>> } = {
  producedBy: "node",
  snapshots: {
${Object.entries(snapshots)
  .map(([k, v]) => `    ${JSON.stringify(k)}:\n      ${JSON.stringify(v)}`)
  .join(",\n")}
  }
}
`
