/**
 * Hosts may run different engines (issue 14 item 5; DESIGN.md "Snapshots"):
 * a snapshot taken on one engine resumes on any other. The wire format is
 * the domain's `SnapshotCodec` with a gzip payload — the bytes a host stores
 * in NATS KV (`@agent-runtime/nats`), SQLite or the file system.
 *
 * The proof is two cases per scenario, run on every engine of the matrix
 * (native, node, browser, edge inside workerd):
 *
 * 1. **restore**: the checked-in reference snapshot (`vectors/Snapshots.ts`,
 *    taken by engine-node and encoded with `SnapshotCodec`) is decoded,
 *    saved to this runtime's `InstanceRepository` and restored on this
 *    engine; the agent continues from the saved state (counter value held
 *    in an internal mutable global, memory pages and size).
 * 2. **produce**: this engine, driven through the same calls, takes a
 *    snapshot whose codec bytes equal the reference byte for byte (the
 *    wall-clock `takenAt` aside).
 *
 * Together: a snapshot taken on any engine X is the reference (2), and the
 * reference resumes on any engine Y (1) — every ordered pair of engines,
 * including pairs that never share a process (Chromium ↔ workerd). The live
 * node → native and native → node hand-over runs in
 * `packages/engine-node/test/CrossEngine.test.ts`.
 *
 * @since 0.1.0
 */
import {
  agentId,
  type InstanceSnapshot,
  InstanceRepository,
  SnapshotCodec,
  type WasmValue
} from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import type { AgentName } from "../Fixtures.js"
import { MiB, PAGE, type TestRuntime } from "../Harness.js"
import type { SuiteContext } from "./Context.js"
import { snapshotVectors } from "./vectors/Snapshots.js"

/** One call of a scenario: an export, its arguments, and (after a restore) the results it must give. */
export interface ScenarioCall {
  readonly fn: string
  readonly args: ReadonlyArray<WasmValue>
  readonly results?: ReadonlyArray<WasmValue>
}

/** An agent driven into a state, snapshotted, and checked after a restore. */
export interface CrossEngineScenario {
  /** The agent id the snapshot is taken under (and its key in `snapshotVectors`). */
  readonly id: string
  readonly agent: AgentName
  /** In bytes. */
  readonly memoryLimit: number
  /** The calls that produce the snapshotted state. */
  readonly before: ReadonlyArray<ScenarioCall>
  /** The calls after the restore, with the results that prove the state came back. */
  readonly after: ReadonlyArray<ScenarioCall>
}

/** The scenarios the reference vectors were taken from. */
export const crossEngineScenarios: ReadonlyArray<CrossEngineScenario> = [
  {
    // the count lives in an internal (unexported) mutable global
    id: "xengine-counter",
    agent: "counter",
    memoryLimit: MiB,
    before: [
      { fn: "add", args: [41] },
      { fn: "increment", args: [] }
    ],
    after: [
      { fn: "get", args: [], results: [42] },
      { fn: "increment", args: [], results: [43] }
    ]
  },
  {
    // 4 pages of memory, page 2 all zero (skipped), bytes written in pages 1 and 3
    id: "xengine-grower",
    agent: "grower",
    memoryLimit: MiB,
    before: [
      { fn: "grow", args: [3] },
      { fn: "poke", args: [PAGE + 5, 7] },
      { fn: "poke", args: [3 * PAGE + 9, 9] },
      { fn: "poke", args: [7, 200] }
    ],
    after: [
      { fn: "size", args: [], results: [4] },
      { fn: "peek", args: [7], results: [200] },
      { fn: "peek", args: [PAGE + 5], results: [7] },
      { fn: "peek", args: [3 * PAGE + 9], results: [9] },
      { fn: "peek", args: [2 * PAGE], results: [0] },
      { fn: "grow", args: [1], results: [-1] }
    ]
  }
]

// --- the stored form: SnapshotCodec bytes with a gzip payload, base64 in the source ---

const through = async (stream: CompressionStream | DecompressionStream, bytes: Uint8Array): Promise<Uint8Array> => {
  const out = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(stream)
  return new Uint8Array(await new Response(out).arrayBuffer())
}

/**
 * gzip (RFC 1952) through the Compression Streams API — global in Node ≥ 18,
 * Chromium and workerd; the same compression `@agent-runtime/nats` stores
 * snapshots with.
 */
export const gzip: SnapshotCodec.SnapshotCompression = {
  compress: (bytes) => through(new CompressionStream("gzip"), bytes),
  decompress: (bytes) => through(new DecompressionStream("gzip"), bytes)
}

const fromBase64 = (text: string): Uint8Array => Uint8Array.from(atob(text), (c) => c.charCodeAt(0))

/** Base64 of bytes (the form `vectors/Snapshots.ts` keeps them in). */
export const toBase64 = (bytes: Uint8Array): string => {
  let s = ""
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(s)
}

/** A snapshot with the wall-clock field fixed, so two engines' snapshots of the same history compare byte for byte. */
export const normalized = (snapshot: InstanceSnapshot): InstanceSnapshot => ({ ...snapshot, takenAt: 0 })

/** The stored vector bytes of a snapshot: `SnapshotCodec.encode` with a gzip payload, `takenAt` normalised. */
export const encodeVector = (snapshot: InstanceSnapshot) =>
  SnapshotCodec.encode(normalized(snapshot), { compression: gzip })

/** Decodes one reference vector (fails on a corrupt vector or, with `expectedModuleHash`, a vector of another build). */
export const decodeVector = (id: string, expectedModuleHash?: string) =>
  Effect.suspend(() => {
    const text = snapshotVectors.snapshots[id]
    if (text === undefined) return Effect.die(new Error(`no reference snapshot vector for ${id}`))
    return SnapshotCodec.decode(fromBase64(text), {
      compression: gzip,
      ...(expectedModuleHash === undefined ? {} : { expectedModuleHash })
    })
  })

/** Runs a scenario's `before` calls on a fresh agent and returns the runtime's snapshot of it. */
export const drive = (t: TestRuntime, s: CrossEngineScenario) =>
  Effect.gen(function* () {
    yield* t.spawn(s.id, s.agent, { memoryLimit: s.memoryLimit })
    for (const c of s.before) yield* t.call(s.id, c.fn, c.args)
    return yield* t.rt.snapshot(agentId(s.id))
  })

/** Runs a scenario's `after` calls and checks each result. */
export const checkAfter = (t: TestRuntime, s: CrossEngineScenario) =>
  Effect.gen(function* () {
    for (const c of s.after) {
      const results = yield* t.call(s.id, c.fn, c.args)
      if (c.results !== undefined) expect([c.fn, c.args, results]).toEqual([c.fn, c.args, c.results])
    }
  })

const stale = (s: CrossEngineScenario) =>
  `the reference snapshot of ${s.id} was taken from another build of "${s.agent}"; ` +
  `regenerate vectors/Snapshots.ts: UPDATE_SNAPSHOT_VECTORS=1 pnpm --filter @agent-runtime/engine-node test CrossEngine`

export const crossEngineCases = ({ run, caps, name }: SuiteContext) =>
  describe(`cross-engine snapshots: ${snapshotVectors.producedBy} → ${name} (capabilities.snapshots)`, () => {
    for (const s of crossEngineScenarios) {
      it.effect.skipIf(!caps.snapshots)(
        `${s.agent}: the reference snapshot taken on ${snapshotVectors.producedBy} (SnapshotCodec + gzip bytes) restores here and the agent continues`,
        () =>
          run((t) =>
            Effect.gen(function* () {
              const moduleId = yield* t.load(s.agent)
              const snap = yield* Effect.orDie(decodeVector(s.id))
              expect(snap.moduleId, stale(s)).toBe(moduleId)
              // the host that takes the agent over: the bytes arrive, land in its repository, and `restore` resumes them
              yield* (yield* InstanceRepository).saveState(agentId(s.id), snap)
              const info = yield* t.rt.restore(agentId(s.id))
              expect(info.state).toBe("Running")
              expect(info.budget.used).toBe(snap.state.memoryBytes)
              for (const p of snap.state.pages) {
                expect(yield* t.rt.readMemory(agentId(s.id), p.index * PAGE, PAGE)).toEqual(p.data)
              }
              yield* checkAfter(t, s)
            })
          )
      )

      it.effect.skipIf(!caps.snapshots)(
        `${s.agent}: a snapshot taken here after the same calls is the reference, byte for byte`,
        () =>
          run((t) =>
            Effect.gen(function* () {
              const mine = yield* drive(t, s)
              const reference = yield* Effect.orDie(decodeVector(s.id))
              expect(mine.moduleHash, stale(s)).toBe(reference.moduleHash)
              // timeoutMs, fuel and critical are the host's agent configuration (its settings' defaults), not engine state
              const config = { timeoutMs: reference.timeoutMs, fuel: reference.fuel, critical: reference.critical }
              // compared uncompressed: gzip output may differ between zlib builds, the codec bytes may not
              const ours = yield* Effect.orDie(SnapshotCodec.encode({ ...normalized(mine), ...config }))
              const theirs = yield* Effect.orDie(SnapshotCodec.encode(normalized(reference)))
              expect(ours.byteLength).toBe(theirs.byteLength)
              expect(ours).toEqual(theirs)
            })
          )
      )
    }
  })
