/**
 * Suite `edge`: `@agent-runtime/engine-edge` measured inside real workerd
 * (the npm `workerd` binary) against a raw instance of the same bundled
 * variant in the same isolate and run.
 *
 * Build (into a temporary directory): the signed `no-memory` agent is
 * bundled with `agent-runtime bundle` (`@agent-runtime/cli`, verified
 * against the TEST-ONLY trust store), this package's `edge/worker.ts` is
 * bundled by esbuild into one ES module, and a `config.capnp` lists it with
 * the bundle's `wasm` and `data` modules (the way apps/edge-worker builds
 * its Worker). workerd then serves it on 127.0.0.1 and a free port.
 *
 * Timing: workerd freezes the clocks a Worker sees while it computes, so
 * the driver times `GET /bench?op=…&n=…` (n calls inside the Worker) and
 * subtracts the median of empty requests (`op=none`) measured in the same
 * run; a sample is that difference divided by n (ms per call). A sample the
 * subtraction makes negative (noise larger than the work) is counted in a
 * note and reported as 0.
 *
 * Without the workerd binary or the built fixture agents the suite returns
 * no rows and a note (skipped, not failed).
 *
 * @since 0.1.0
 */
import { agentPath } from "@agent-runtime/agents"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { createRequire } from "node:module"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { quantile, rowFromSamples } from "./Samples.js"
import { type Row, type RunOptions, size, type SuiteResult } from "./Measure.js"

const SUITE = "edge"
const pkg = fileURLToPath(new URL("../", import.meta.url))
const repoRoot = fileURLToPath(new URL("../../../", import.meta.url))
const TRUST = join(repoRoot, "packages/signing/test-keys/test-only-ed25519.json")
/** The workerd compatibility date the bench Worker is written for. */
export const COMPATIBILITY_DATE = "2026-01-01"

/** The npm `workerd` package's binary, or `undefined` when it is not installed. */
export const workerdBinary = (): string | undefined => {
  try {
    const bin = join(
      dirname(createRequire(join(pkg, "package.json")).resolve("workerd/package.json")),
      "bin",
      "workerd"
    )
    return existsSync(bin) ? bin : undefined
  } catch {
    return undefined
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port"))
      )
    })
  })

/** Bundles the agent and the Worker into `dir` and writes its `config.capnp`. */
const buildWorker = async (dir: string): Promise<void> => {
  const config = join(dir, "bundle.json")
  writeFileSync(
    config,
    JSON.stringify(
      {
        modules: [{ name: "no-memory", version: "1.0.0", file: agentPath("no-memory") }],
        agents: [{ type: "no-memory", module: "no-memory", memoryLimit: 1_048_576 }],
        includeOriginal: true,
        trust: [TRUST]
      },
      null,
      2
    )
  )
  const { main } = await import("@agent-runtime/cli")
  const log: Array<string> = []
  const code = await main(["bundle", config, "--out", dir], {
    out: (l) => log.push(l),
    err: (l) => log.push(l),
    cwd: dir
  })
  if (code !== 0) throw new Error(`agent-runtime bundle failed with exit code ${code}:\n${log.join("\n")}`)
  const { build } = await import("esbuild")
  await build({
    entryPoints: [fileURLToPath(new URL("./edge/worker.ts", import.meta.url))],
    outfile: join(dir, "worker.js"),
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    conditions: ["@agent-runtime/source", "workerd", "worker", "browser", "import", "default"],
    mainFields: ["module", "main"],
    external: ["*.wasm", "*.bin", "node:*"],
    alias: { "agent-runtime:bundle": join(dir, "bundle.js") },
    logLevel: "warning",
    legalComments: "none"
  })
  const files = (sub: string) =>
    existsSync(join(dir, sub))
      ? readdirSync(join(dir, sub))
          .sort()
          .map((f) => `${sub}/${f}`)
      : []
  const modules = [
    `(name = "worker.js", esModule = embed "worker.js")`,
    ...files("wasm").map((f) => `(name = "${f}", wasm = embed "${f}")`),
    ...files("modules").map((f) => `(name = "${f}", data = embed "${f}")`)
  ]
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "bench", worker = .worker) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "bench") ],
);

const worker :Workerd.Worker = (
  modules = [
    ${modules.join(",\n    ")}
  ],
  compatibilityDate = "${COMPATIBILITY_DATE}",
);
`
  )
}

/** Starts workerd on `dir/config.capnp` and waits until `/bench?op=none` answers 200. */
const startWorkerd = async (binary: string, dir: string) => {
  const port = await freePort()
  const child: ChildProcess = spawn(
    binary,
    ["serve", join(dir, "config.capnp"), "--socket-addr", `http=127.0.0.1:${port}`],
    {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"]
    }
  )
  let output = ""
  child.stdout?.on("data", (d) => (output += String(d)))
  child.stderr?.on("data", (d) => (output += String(d)))
  const url = `http://127.0.0.1:${port}`
  const stop = () =>
    new Promise<void>((done) => {
      if (child.exitCode !== null || child.signalCode !== null) return done()
      child.once("exit", () => done())
      child.kill("SIGTERM")
      setTimeout(() => child.kill("SIGKILL"), 2000).unref()
    })
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`workerd exited with ${child.exitCode}:\n${output}`)
    try {
      const r = await fetch(`${url}/bench?op=none&n=0`, { signal: AbortSignal.timeout(2000) })
      if (r.status === 200) break
      if (r.status >= 500) {
        await stop()
        throw new Error(`the bench Worker failed to start: ${await r.text()}\n${output}`)
      }
    } catch (e) {
      if (e instanceof Error && e.message.startsWith("the bench Worker")) throw e
    }
    if (Date.now() > deadline) {
      await stop()
      throw new Error(`workerd did not answer within 20 s:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, stop }
}

/** One request; returns its wall time in ms. Throws on a non-200 answer or a wrong result. */
const timed = async (url: string, op: string, n: number): Promise<number> => {
  const start = performance.now()
  const r = await fetch(`${url}/bench?op=${op}&n=${n}`)
  const body = (await r.json()) as { result?: number; error?: string }
  const elapsed = performance.now() - start
  if (r.status !== 200) throw new Error(`workerd /bench?op=${op}: HTTP ${r.status}: ${body.error ?? ""}`)
  if (op !== "none" && n > 0 && body.result !== 20 + ((n - 1) & 1))
    throw new Error(`workerd /bench?op=${op}: wrong result ${String(body.result)}`)
  return elapsed
}

export const edgeSuite = async (options: RunOptions): Promise<SuiteResult> => {
  const binary = workerdBinary()
  if (binary === undefined)
    return { suite: SUITE, rows: [], notes: ["skipped: the npm workerd binary is not installed"] }
  if (!existsSync(agentPath("no-memory"))) {
    return {
      suite: SUITE,
      rows: [],
      notes: ["skipped: the fixture agents are not built (pnpm --filter @agent-runtime/agents fixtures)"]
    }
  }
  const dir = mkdtempSync(join(tmpdir(), "agent-runtime-bench-edge-"))
  const notes: Array<string> = []
  try {
    await buildWorker(dir)
    const workerd = await startWorkerd(binary, dir)
    try {
      const samples = size(options, 30, 10, 2)
      const ops = [
        {
          op: "raw",
          name: "raw direct export call in workerd: add(i32,i32)",
          n: size(options, 20_000_000, 5_000_000, 20_000)
        },
        {
          op: "invoke",
          name: "runtime.invoke in workerd (engine-edge): add(i32,i32)",
          n: size(options, 20_000, 5_000, 100)
        }
      ] as const
      for (const o of ops) await timed(workerd.url, o.op, o.n) // warm-up (JIT tiers, the runtime's first calls)
      const empty: Array<number> = []
      const perOp: Record<string, Array<number>> = { raw: [], invoke: [] }
      const raw: Record<string, Array<number>> = { raw: [], invoke: [] }
      for (let i = 0; i < samples; i++) {
        empty.push(await timed(workerd.url, "none", 0))
        for (const o of ops) raw[o.op]!.push(await timed(workerd.url, o.op, o.n))
      }
      const overhead = quantile(empty, 0.5)
      const rows: Array<Row> = [
        rowFromSamples({
          suite: SUITE,
          name: "HTTP round trip to workerd, empty request (subtracted)",
          samples: empty,
          batch: 1
        })
      ]
      for (const o of ops) {
        let clamped = 0
        for (const t of raw[o.op]!) {
          const d = t - overhead
          if (d < 0) clamped++
          perOp[o.op]!.push(Math.max(0, d) / o.n)
        }
        if (clamped > 0)
          notes.push(`${o.name}: ${clamped} of ${samples} samples were below the empty request's median and count as 0`)
        rows.push(
          rowFromSamples({
            suite: SUITE,
            name: o.name,
            samples: perOp[o.op]!,
            batch: o.n,
            ...(o.op === "invoke"
              ? {
                  baseline: ops[0].name,
                  target: { text: "≤ 1 µs median", met: (_r: number, median: number) => median <= 0.001 }
                }
              : {})
          })
        )
      }
      notes.push(
        `npm workerd (${binary}): timed from Node per request of n calls, minus the median empty request (${overhead.toFixed(2)} ms)`
      )
      return { suite: SUITE, rows, notes }
    } finally {
      await workerd.stop()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
