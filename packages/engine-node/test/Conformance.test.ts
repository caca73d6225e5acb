/**
 * The conformance suite on the Node engine (DESIGN.md "Platforms": every
 * engine passes the same suite in its real runtime), once per call path.
 */
import { suite } from "@agent-runtime/conformance"
import { NodeEngine } from "../src/index.js"

suite("node", NodeEngine.layer)
suite("node (postMessage channel)", NodeEngine.layerWith({ channel: "message" }))
