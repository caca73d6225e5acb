/**
 * Property tests (issue 12) on the Node engine (worker threads, the
 * SharedArrayBuffer call path): the same fast-check model as the native run
 * (`@agent-runtime/conformance/properties`), fewer operations because every
 * spawn starts a worker instance. Prints the seed and the count;
 * `PROPERTY_SEED=<seed>` reproduces a run.
 */
import { properties } from "@agent-runtime/conformance/properties"
import { NodeEngine } from "../src/index.js"

properties("node", NodeEngine.layer, { operations: 4_000, timeBudgetMs: 60_000 })
