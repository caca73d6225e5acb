/**
 * Benchmarking your own adapter: `pnpm bench -- --adapter ./my-engine.mjs`
 * loads a module that exports a `Layer` providing the domain's `WasmEngine`
 * (the same `engineLayer` the conformance suite's `suite(name, engineLayer)`
 * takes) and runs the runtime suites on it instead of the native engine,
 * with the raw WebAssembly baselines measured in the same run.
 *
 * Which export is the engine: `--adapter-export=<name>` names it; otherwise
 * the module's `default` export, its `layer` export, or its only named
 * export that is a `Layer` or an object with a `layer` field that is one
 * (`export const MyEngine = { layer }`). A module with none, or with several
 * and no `--adapter-export`, is refused with an `AdapterError` naming what it
 * found. The chosen layer is built once before any suite runs to check that
 * it provides `WasmEngine` (its `platform` and `capabilities` go into the
 * report).
 *
 * The adapter module resolves its own imports (`effect`,
 * `@agent-runtime/domain`, …) from its own folder: they must be the same
 * copies this package uses (installed next to `@agent-runtime/bench`, or in
 * this workspace), or the runtime does not find the engine the layer provides.
 *
 * @since 0.1.0
 */
import { type EngineCapabilities, type RuntimePlatform, WasmEngine } from "@agent-runtime/domain"
import { isAbsolute, resolve as resolvePath } from "node:path"
import { pathToFileURL } from "node:url"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Context from "effect/Context"

/** The engine the runtime suites run on, instead of the native engine. */
export interface EngineUnderTest {
  /** How the report names it: the export's name and the module's path as given (`MyEngine (./my-engine.mjs)`). */
  readonly name: string
  /** The absolute path of the adapter module. */
  readonly path: string
  /** The layer providing `WasmEngine`. */
  readonly layer: Layer.Layer<WasmEngine>
  /** What the engine reports about itself (read when the layer was checked). */
  readonly platform: RuntimePlatform
  readonly capabilities: EngineCapabilities
  /** The module's exports, as loaded (e.g. for a counter the adapter keeps). */
  readonly exports: Readonly<Record<string, unknown>>
}

/** The adapter module could not be loaded, or exports no usable `WasmEngine` layer. */
export class AdapterError extends Error {
  override readonly name = "AdapterError"
}

const layerOf = (value: unknown): Layer.Layer<WasmEngine> | undefined => {
  if (Layer.isLayer(value)) return value as Layer.Layer<WasmEngine>
  if (typeof value === "object" && value !== null && "layer" in value && Layer.isLayer(value.layer)) {
    return value.layer as Layer.Layer<WasmEngine>
  }
  return undefined
}

/** Picks the engine export of a module's namespace (see the module doc for the order). */
export const findEngineExport = (
  exports: Readonly<Record<string, unknown>>,
  exportName?: string
): { readonly exportName: string; readonly layer: Layer.Layer<WasmEngine> } => {
  if (exportName !== undefined) {
    const layer = layerOf(exports[exportName])
    if (layer === undefined) {
      throw new AdapterError(`export "${exportName}" is neither a Layer nor an object with a "layer" Layer`)
    }
    return { exportName, layer }
  }
  for (const name of ["default", "layer"]) {
    const layer = layerOf(exports[name])
    if (layer !== undefined) return { exportName: name, layer }
  }
  const found = Object.keys(exports).flatMap((name) => {
    const layer = layerOf(exports[name])
    return layer === undefined ? [] : [{ exportName: name, layer }]
  })
  const [only] = found
  if (only !== undefined && found.length === 1) return only
  throw new AdapterError(
    found.length === 0
      ? `no export is a Layer or an object with a "layer" Layer (exports: ${Object.keys(exports).join(", ") || "none"})`
      : `several exports are engine layers (${found.map((f) => f.exportName).join(", ")}): pick one with --adapter-export=<name>`
  )
}

/**
 * Imports the adapter module at `path` (relative to `cwd`: where the user
 * ran the command), picks its engine export and checks that the layer
 * provides `WasmEngine`. Rejects with `AdapterError`.
 */
export const loadAdapter = async (
  path: string,
  options: { readonly cwd?: string; readonly exportName?: string | undefined } = {}
): Promise<EngineUnderTest> => {
  const absolute = isAbsolute(path) ? path : resolvePath(options.cwd ?? process.cwd(), path)
  let exports: Record<string, unknown>
  try {
    exports = (await import(pathToFileURL(absolute).href)) as Record<string, unknown>
  } catch (e) {
    throw new AdapterError(`cannot import ${absolute}: ${e instanceof Error ? e.message : String(e)}`)
  }
  const found = (() => {
    try {
      return findEngineExport(exports, options.exportName)
    } catch (e) {
      throw e instanceof AdapterError ? new AdapterError(`${absolute}: ${e.message}`) : e
    }
  })()
  const engine = await Effect.runPromise(
    Effect.scoped(Effect.map(Layer.build(found.layer), (context) => Context.getOption(context, WasmEngine)))
  ).catch((e: unknown) => {
    throw new AdapterError(
      `${absolute}: building export "${found.exportName}" failed: ${e instanceof Error ? e.message : String(e)}`
    )
  })
  if (engine._tag === "None") {
    throw new AdapterError(`${absolute}: export "${found.exportName}" is a Layer that does not provide WasmEngine`)
  }
  return {
    name: found.exportName === "default" ? path : `${found.exportName} (${path})`,
    path: absolute,
    layer: found.layer,
    platform: engine.value.platform,
    capabilities: engine.value.capabilities,
    exports
  }
}
