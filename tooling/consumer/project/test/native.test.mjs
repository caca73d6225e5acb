// (d) The published conformance suite on engine-native, from this project's own vitest.
import { suite } from "@agent-runtime/conformance"
import { NativeEngine } from "@agent-runtime/engine-native"

suite("native (installed from tarballs)", NativeEngine.layer)
