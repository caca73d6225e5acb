/**
 * `@agent-runtime/bench`: tinybench suites measuring every engine against
 * raw WebAssembly (and the Extism peer) in the same run, as ratios. Run
 * with `pnpm bench`; the suites are exported for the smoke test.
 *
 * @since 0.1.0
 */
export * from "./Measure.js"
export * from "./Report.js"
export { type Suite, suites } from "./Suites.js"
export { withEngine } from "./BenchRuntime.js"
export * from "./Adapter.js"
export { loadSuite } from "./LoadSuite.js"
export { spawnSuite, SWARM } from "./SpawnSuite.js"
export { invokeSuite } from "./InvokeSuite.js"
export { workerSuite, findNodeEngine } from "./WorkerSuite.js"
export { peerSuite } from "./PeerSuite.js"
export { lifecycleSuite, PRESSURE_AGENTS } from "./LifecycleSuite.js"
export { scaleSuite, probe } from "./ScaleSuite.js"
export { extismPluginWat, extismPlugin } from "./ExtismPlugin.js"
export { browserSuite, chromiumPath } from "./BrowserSuite.js"
export { edgeSuite, workerdBinary } from "./EdgeSuite.js"
export { quantile, rowFromSamples } from "./Samples.js"
