/**
 * The demo page's Vite config: cross-origin isolation headers (COOP/COEP, so
 * the engine runs agents in Web Workers over SharedArrayBuffer) on the dev
 * and preview servers; workspace packages resolved from source; the agents'
 * build directory readable by the dev server.
 */
import { defineConfig } from "vite"

export const isolationHeaders = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp"
}

export default defineConfig({
  resolve: { conditions: ["@agent-runtime/source", "browser", "module", "import", "default"] },
  server: { headers: isolationHeaders, fs: { allow: ["../.."] } },
  preview: { headers: isolationHeaders },
  worker: { format: "es" },
  build: { target: "es2022" }
})
