/**
 * The conformance suite in real Chromium (DESIGN.md "Platforms": every engine
 * passes the same suite in its real runtime): the same case list as on Node,
 * the real signed agents fetched from `packages/agents/build/`, once per
 * call path and once in-page (the mode a page without COOP/COEP gets).
 */
import { suite } from "@agent-runtime/conformance"
import * as Layer from "effect/Layer"
import { BrowserEngine } from "../src/index.js"
import { browserFixtures } from "./fixtures.js"

suite("browser", BrowserEngine.layer, { fixtures: browserFixtures })
suite("browser (postMessage channel)", Layer.orDie(BrowserEngine.layerWith({ channel: "message" })), {
  fixtures: browserFixtures
})
suite("browser (in-page)", Layer.orDie(BrowserEngine.layerWith({ mode: "inPage" })), { fixtures: browserFixtures })
