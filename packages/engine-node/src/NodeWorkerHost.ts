/**
 * engine-kit's `WorkerHost` port on Node `worker_threads`: what the Node
 * engine does differently from the browser's.
 *
 * - A worker runs `NodeWorker.js` beside this module (a build), else — from
 *   TypeScript sources (tests, `@agent-runtime/source`) — `NodeWorker.ts`
 *   and its workspace imports bundled once per process with esbuild and run
 *   as an eval worker; `workerUrl` overrides both.
 * - Workers are `unref`'d while idle, so a forgotten engine never keeps a
 *   process alive; during a request (`hold(true)`) and while terminating, the
 *   worker is `ref`'d so the process waits for it.
 * - A worker's `error` and `exit` events are its death; `terminate()`
 *   resolves once its thread has exited.
 * - Time: `performance.now()` (ms); timers: `setTimeout`. The thread count is
 *   the resource pool's `maxThreads` (`ResourcePoolConfig`), not the host's.
 *
 * @since 0.2.0
 */
import type { WorkerHost } from "@agent-runtime/engine-kit"
import { existsSync } from "node:fs"
import { createRequire } from "node:module"
import { fileURLToPath } from "node:url"
import { Worker } from "node:worker_threads"

/** Where the worker script is: a file (URL or path) or bundled source (`eval`). */
export interface WorkerEntry {
  readonly filename: string | URL
  readonly eval: boolean
}

/** The structural part of esbuild's API this file uses (source mode only). */
interface Esbuild {
  readonly buildSync: (options: Record<string, unknown>) => {
    readonly outputFiles: ReadonlyArray<{ readonly text: string }>
  }
}

let bundled: string | undefined

/** The default worker script (see the module doc). */
export const defaultEntry = (): WorkerEntry => {
  const js = new URL("./NodeWorker.js", import.meta.url)
  if (existsSync(js)) return { filename: js, eval: false }
  if (bundled === undefined) {
    const esbuild = createRequire(import.meta.url)("esbuild") as Esbuild
    bundled = esbuild.buildSync({
      entryPoints: [fileURLToPath(new URL("./NodeWorker.ts", import.meta.url))],
      bundle: true,
      format: "cjs",
      platform: "node",
      target: "node20",
      conditions: ["@agent-runtime/source"],
      minify: true,
      write: false,
      logLevel: "silent"
    }).outputFiles[0]!.text
  }
  return { filename: bundled, eval: true }
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** A `WorkerHost` on `worker_threads`; `workerUrl` is the worker script (default: `defaultEntry`). */
export const make = (workerUrl?: string | URL | undefined): WorkerHost => {
  const entry = workerUrl === undefined ? defaultEntry : (): WorkerEntry => ({ filename: workerUrl, eval: false })
  return {
    start: (events) => {
      const { filename, eval: isEval } = entry()
      const worker = new Worker(filename, { eval: isEval })
      worker.unref()
      worker.on("message", events.onMessage)
      worker.on("error", (e) => events.onDeath(`worker error: ${message(e)}`))
      worker.on("exit", (code) => events.onDeath(`worker exited with code ${code}`))
      return {
        post: (m) => worker.postMessage(m),
        terminate: () => {
          worker.ref() // keep the event loop alive until the worker has exited (workers are unref'd while idle)
          return worker.terminate().then(() => undefined)
        },
        hold: (busy) => (busy ? worker.ref() : worker.unref()),
        threadId: worker.threadId
      }
    },
    syncReceive: true,
    now: () => performance.now(),
    setTimer: (ms, f) => {
      const timer = setTimeout(f, ms)
      return () => clearTimeout(timer)
    }
  }
}
