/**
 * The scale probe, run in its own process by the scale suite (a process that
 * ran out of address space is not one to keep measuring in):
 *
 *   node [--disable-wasm-trap-handler] --expose-gc --conditions=@agent-runtime/source \
 *     bin/tsx.mjs src/ScaleChild.ts <raw|runtime> <cap> <timeLimitMs>
 *
 * Creates live 1-page agents — raw `new WebAssembly.Instance`s, or agents
 * spawned through `AgentRuntime.spawnAgent` (1 MiB limit, 64 KiB reserved,
 * on a pool big enough for the cap) — until the first failure, the cap or
 * the time limit, and prints a progress line per chunk of 500 and, at the
 * end, one JSON line (`ScaleReport`): how many were
 * live, what stopped it, and the process's RSS / V8 heap / external memory
 * before and after (after a full GC), in bytes.
 *
 * @since 0.1.0
 */
import { agentId, makeMetadata } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import { benchSettings, makeRuntime, MiB, PAGE } from "./BenchRuntime.js"
import { assemble, callsWat } from "./Modules.js"

/** What one probe found. Memory in bytes, time in ms. */
export interface ScaleReport {
  readonly mode: "raw" | "runtime"
  readonly trapHandler: boolean
  readonly live: number
  readonly stoppedBy: "cap" | "time" | "error" | "crash"
  readonly error?: string | undefined
  readonly elapsedMs: number
  /** ms per agent of the first and of the last chunk of 500 (how the cost grows with the live count). */
  readonly firstChunkMsPerAgent: number
  readonly lastChunkMsPerAgent: number
  readonly before: { readonly rss: number; readonly heapUsed: number; readonly external: number }
  readonly after: { readonly rss: number; readonly heapUsed: number; readonly external: number }
}

const memory = () => {
  ;(globalThis as { gc?: () => void }).gc?.()
  const m = process.memoryUsage()
  return { rss: m.rss, heapUsed: m.heapUsed, external: m.external }
}

const describe = (e: unknown): string =>
  e !== null && typeof e === "object" && "_tag" in e
    ? `${String((e as { _tag: unknown })._tag)}: ${JSON.stringify(e)}`
    : e instanceof Error
      ? `${e.name}: ${e.message}`
      : String(e)

const main = async () => {
  const [mode, capText, limitText] = process.argv.slice(2)
  if (mode !== "raw" && mode !== "runtime") throw new Error(`mode must be raw or runtime, got ${mode}`)
  const cap = Number(capText ?? 100_000)
  const limitMs = Number(limitText ?? 60_000)
  const trapHandler = !process.execArgv.some(
    (a) => a === "--no-wasm-trap-handler" || a === "--disable-wasm-trap-handler"
  )
  const bytes = await assemble(callsWat(1))
  const compiled = await WebAssembly.compile(bytes as Uint8Array<ArrayBuffer>)
  const bench =
    mode === "runtime"
      ? await makeRuntime(benchSettings({ pool: { totalMemory: (cap + 16) * MiB }, autoPressure: false }))
      : undefined
  const moduleId =
    bench === undefined
      ? undefined
      : await bench.run(bench.runtime.loadModule(bytes, makeMetadata({ name: "scale", version: "1.0.0" })))
  const keep: Array<WebAssembly.Instance> = []
  const before = memory()
  const start = performance.now()
  let live = 0
  let stoppedBy: ScaleReport["stoppedBy"] = "cap"
  let error: string | undefined
  const chunk = 500
  let firstChunkMsPerAgent = 0
  let lastChunkMsPerAgent = 0
  while (live < cap) {
    if (performance.now() - start > limitMs) {
      stoppedBy = "time"
      break
    }
    const n = Math.min(chunk, cap - live)
    const chunkStart = performance.now()
    const liveBefore = live
    try {
      if (bench === undefined || moduleId === undefined) {
        for (let i = 0; i < n; i++) {
          keep.push(new WebAssembly.Instance(compiled, {}))
          live++
        }
      } else {
        const { runtime } = bench
        const first = live
        await bench.run(
          Effect.gen(function* () {
            for (let i = 0; i < n; i++) {
              yield* runtime.spawnAgent(agentId(`s${first + i}`), moduleId, {
                memoryLimit: MiB,
                memoryReservation: PAGE
              })
              live++
            }
          })
        )
      }
    } catch (e) {
      stoppedBy = "error"
      error = describe(e).slice(0, 400)
      break
    }
    const perAgent = (performance.now() - chunkStart) / Math.max(1, live - liveBefore)
    if (liveBefore === 0) firstChunkMsPerAgent = perAgent
    lastChunkMsPerAgent = perAgent
    // progress, so a probe whose process dies (V8 aborts on some mmap failures) still tells how far it got
    process.stdout.write(
      `${JSON.stringify({ progress: live, elapsedMs: performance.now() - start, firstChunkMsPerAgent, lastChunkMsPerAgent })}\n`
    )
  }
  const elapsedMs = performance.now() - start
  const after = memory()
  const report: ScaleReport = {
    mode,
    trapHandler,
    live,
    stoppedBy,
    error,
    elapsedMs,
    firstChunkMsPerAgent,
    lastChunkMsPerAgent,
    before,
    after
  }
  process.stdout.write(`${JSON.stringify(report)}\n`)
  process.exit(0)
}

main().catch((e) => {
  process.stderr.write(`${describe(e)}\n`)
  process.exit(1)
})
