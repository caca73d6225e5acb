// Cross-origin isolation headers on the preview server, so engine-browser runs agents in module Web Workers.
import { defineConfig } from "vite"

const headers = { "Cross-Origin-Opener-Policy": "same-origin", "Cross-Origin-Embedder-Policy": "require-corp" }
export default defineConfig({
  preview: { headers },
  worker: { format: "es" },
  build: { target: "es2022", outDir: "dist", emptyOutDir: true }
})
