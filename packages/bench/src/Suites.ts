/**
 * Every suite, in run order, by name (`--suite=<name>` picks some).
 *
 * @since 0.1.0
 */
import { browserSuite } from "./BrowserSuite.js"
import { edgeSuite } from "./EdgeSuite.js"
import { invokeSuite } from "./InvokeSuite.js"
import { lifecycleSuite } from "./LifecycleSuite.js"
import { loadSuite } from "./LoadSuite.js"
import type { RunOptions, SuiteResult } from "./Measure.js"
import { peerSuite } from "./PeerSuite.js"
import { scaleSuite } from "./ScaleSuite.js"
import { serverSuite } from "./ServerSuite.js"
import { spawnSuite } from "./SpawnSuite.js"
import { workerSuite } from "./WorkerSuite.js"

export const suites: ReadonlyArray<{ readonly name: string; readonly run: (options: RunOptions) => Promise<SuiteResult> }> = [
  { name: "load", run: loadSuite },
  { name: "spawn", run: spawnSuite },
  { name: "invoke", run: invokeSuite },
  { name: "worker", run: workerSuite },
  { name: "peer", run: peerSuite },
  { name: "lifecycle", run: lifecycleSuite },
  { name: "scale", run: scaleSuite },
  { name: "browser", run: browserSuite },
  { name: "edge", run: edgeSuite },
  { name: "server", run: serverSuite }
]
