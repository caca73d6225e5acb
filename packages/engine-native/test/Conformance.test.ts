/**
 * The platform-neutral conformance suite (`@agent-runtime/conformance`) on the
 * native engine: real signed agents, real ed25519 verification, the
 * in-memory ports, `TestClock`.
 */
import { suite } from "@agent-runtime/conformance"
import { NativeEngine } from "../src/index.js"

suite("native", NativeEngine.layer)
