/** The generated bundle module (`agent-runtime bundle` writes `bundle.js`; esbuild aliases it). */
declare module "agent-runtime:bundle" {
  import type { BundleContents, BundleManifest } from "@agent-runtime/engine-edge/bundle"
  export const manifest: BundleManifest
  export const bundle: BundleContents
}
