/**
 * Real WebAssembly modules, as shipped inside exact-pinned npm packages, for
 * tests (readers, engines, conformance), benchmarks and the CLI. Covers the
 * common toolchains: AssemblyScript (`as-sha256`, with and without SIMD),
 * Emscripten (`sqlite3`, `zstd`, the dynamically linked `web-tree-sitter`)
 * and Rust/wasm-bindgen (`brotli`).
 *
 * Node only: files are read with `node:fs` from this package's own
 * `node_modules` (pnpm links each dependency there).
 *
 * @since 0.1.0
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/** One reference module: which npm package ships it and where. */
export interface ReferenceModule {
  /** Short stable name used by tests and benchmarks, e.g. `"as-sha256"`. */
  readonly name: string
  /** The npm package that ships the `.wasm` file. */
  readonly packageName: string
  /** The exact version this package pins. */
  readonly version: string
  /** Path of the `.wasm` file inside the package. */
  readonly relativePath: string
  /** Toolchain that produced it. */
  readonly toolchain: "assemblyscript" | "emscripten" | "wasm-bindgen"
  /** Absolute path of the file on disk. */
  readonly path: () => string
  /** The module's bytes (a fresh copy on every call). */
  readonly read: () => Uint8Array<ArrayBuffer>
}

const here = dirname(fileURLToPath(import.meta.url))
const packageRoot = join(here, "..")
const require = createRequire(join(packageRoot, "package.json"))

/** Directory of an installed dependency, even when its `exports` hide `package.json`. */
const packageDir = (packageName: string): string => {
  const linked = join(packageRoot, "node_modules", packageName)
  try {
    readFileSync(join(linked, "package.json"))
    return linked
  } catch {
    return dirname(require.resolve(`${packageName}/package.json`))
  }
}

const make = (
  name: string,
  packageName: string,
  version: string,
  relativePath: string,
  toolchain: ReferenceModule["toolchain"]
): ReferenceModule => {
  const path = (): string => join(packageDir(packageName), relativePath)
  return {
    name,
    packageName,
    version,
    relativePath,
    toolchain,
    path,
    read: () => new Uint8Array(readFileSync(path()))
  }
}

/** Every reference module, smallest first. Versions match `package.json` exactly. */
export const referenceModules: ReadonlyArray<ReferenceModule> = [
  make("as-sha256", "@chainsafe/as-sha256", "1.2.5", "build/optimized.wasm", "assemblyscript"),
  make("as-sha256-simd", "@chainsafe/as-sha256", "1.2.5", "build/optimized.simd.wasm", "assemblyscript"),
  make("web-tree-sitter", "web-tree-sitter", "0.27.2", "web-tree-sitter.wasm", "emscripten"),
  make("zstd", "@bokuweb/zstd-wasm", "0.0.27", "dist/common/zstd.wasm", "emscripten"),
  make("sqlite3", "@sqlite.org/sqlite-wasm", "3.54.1-build1", "dist/sqlite3.wasm", "emscripten"),
  make("brotli", "brotli-wasm", "3.0.1", "pkg.node/brotli_wasm_bg.wasm", "wasm-bindgen")
]

/** The reference module called `name`; throws if there is none (a test setup error). */
export const getReferenceModule = (name: string): ReferenceModule => {
  const found = referenceModules.find((m) => m.name === name)
  if (found === undefined) {
    throw new Error(`unknown reference module "${name}" (known: ${referenceModules.map((m) => m.name).join(", ")})`)
  }
  return found
}

/** The bytes of the reference module called `name`; throws if there is none. */
export const readReferenceModule = (name: string): Uint8Array<ArrayBuffer> => getReferenceModule(name).read()
