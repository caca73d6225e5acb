/**
 * Every suite, in run order, by name (`--suite=<name>` picks some).
 * `adapter: true` marks the suites that build their runtimes with the
 * default engine (`BenchRuntime.defaultEngine`), so `--adapter` runs them on
 * the user's engine; the others measure engines of their own (workers, the
 * Extism peer, Chromium, workerd, a child process per scale probe, the
 * server) and are refused with `--adapter`.
 *
 * @since 0.1.0
 */
import { browserSuite } from "./BrowserSuite.js"
import { edgeSuite } from "./EdgeSuite.js"
import { invokeSuite } from "./InvokeSuite.js"
import { lifecycleSuite } from "./LifecycleSuite.js"
import { loadSuite } from "./LoadSuite.js"
import { multiHostScaleSuite } from "./MultiHostScaleSuite.js"
import type { RunOptions, SuiteResult } from "./Measure.js"
import { peerSuite } from "./PeerSuite.js"
import { scaleSuite } from "./ScaleSuite.js"
import { serverSuite } from "./ServerSuite.js"
import { spawnSuite } from "./SpawnSuite.js"
import { swarmSuite } from "./SwarmSuite.js"
import { workerSuite } from "./WorkerSuite.js"

/** One suite: its name, how to run it, and whether it runs on the engine given with `--adapter`. */
export interface Suite {
  readonly name: string
  readonly run: (options: RunOptions) => Promise<SuiteResult>
  readonly adapter: boolean
}

export const suites: ReadonlyArray<Suite> = [
  { name: "load", run: loadSuite, adapter: true },
  { name: "spawn", run: spawnSuite, adapter: true },
  { name: "invoke", run: invokeSuite, adapter: true },
  { name: "worker", run: workerSuite, adapter: false },
  { name: "peer", run: peerSuite, adapter: false },
  { name: "lifecycle", run: lifecycleSuite, adapter: true },
  { name: "scale", run: scaleSuite, adapter: false },
  { name: "multihost", run: multiHostScaleSuite, adapter: false },
  { name: "browser", run: browserSuite, adapter: false },
  { name: "edge", run: edgeSuite, adapter: false },
  { name: "server", run: serverSuite, adapter: false },
  { name: "swarm", run: swarmSuite, adapter: false }
]
