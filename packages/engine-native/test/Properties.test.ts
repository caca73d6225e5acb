/**
 * Property tests (issue 12) on the native engine: fast-check model-based runs
 * of random load / spawn / invoke / pause / resume / evict / pressure /
 * health / passivate / snapshot / restore sequences, checking the spec's five
 * invariants and the pool's accounting after every step (see
 * `@agent-runtime/conformance/properties`). Prints the seed and the count;
 * `PROPERTY_SEED=<seed>` reproduces a run.
 */
import { properties } from "@agent-runtime/conformance/properties"
import { NativeEngine } from "../src/index.js"

properties("native", NativeEngine.layer, { operations: 8_000, timeBudgetMs: 70_000 })
