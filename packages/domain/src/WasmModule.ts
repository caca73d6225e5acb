/**
 * `WasmModule` (spec "Entities / WASMModule"): a loaded, verified module.
 *
 * Exports and imports carry their full types, read from the binary by
 * `@agent-runtime/wasm-binary` (DESIGN.md: `WebAssembly.Module.exports()` has
 * no types). Memory sizes are in pages of 64 KiB.
 *
 * @since 0.1.0
 */
import type { ExportDesc, FuncType, ImportDesc, MemoryType, ModuleInfo } from "@agent-runtime/wasm-binary"
import type { ModuleHash, ModuleId } from "./Ids.js"
import { PAGE_BYTES } from "./MemoryBudget.js"
import type { ModuleMetadata } from "./ModuleMetadata.js"

export interface WasmModule {
  readonly id: ModuleId
  /** SHA-256 hex of the bytes without the signature section. */
  readonly hash: ModuleHash
  /** The module bytes as loaded (signature section included). */
  readonly bytes: Uint8Array
  readonly info: ModuleInfo
  readonly exports: ReadonlyArray<ExportDesc>
  readonly imports: ReadonlyArray<ImportDesc>
  /** Initial pages (64 KiB) of the module's memory (defined or imported); 0 without memory. */
  readonly memoryPages: number
  readonly metadata: ModuleMetadata
  /** Key id of the signer, `undefined` for an unsigned module admitted in development mode. */
  readonly signedBy: string | undefined
  /** ms since the Unix epoch. */
  readonly loadedAt: number
  /** Function exports by name, for O(1) signature checks on every invoke. */
  readonly functions: ReadonlyMap<string, FuncType>
}

/** The module id for a hash and metadata: `name@version#<first 12 hex of the hash>`. */
export const makeId = (hash: ModuleHash, metadata: ModuleMetadata): ModuleId =>
  `${metadata.name}@${metadata.version}#${hash.slice(0, 12)}` as ModuleId

/** The first memory of a module, defined or imported. */
export const memoryType = (info: ModuleInfo): MemoryType | undefined => {
  for (const i of info.imports) if (i.type.kind === "memory") return i.type
  return info.memories[0]
}

/** Builds the entity from a verified, decoded module. */
export const make = (input: {
  readonly id: ModuleId
  readonly hash: ModuleHash
  readonly bytes: Uint8Array
  readonly info: ModuleInfo
  readonly metadata: ModuleMetadata
  readonly signedBy: string | undefined
  readonly loadedAt: number
}): WasmModule => {
  const functions = new Map<string, FuncType>()
  for (const e of input.info.exports) {
    if (e.type.kind === "function") functions.set(e.name, { params: e.type.params, results: e.type.results })
  }
  return {
    ...input,
    exports: input.info.exports,
    imports: input.info.imports,
    memoryPages: memoryType(input.info)?.minPages ?? 0,
    functions
  }
}

/** Whether the module exports anything of this name (spec `has_export`). */
export const hasExport = (module: WasmModule, name: string): boolean => module.exports.some((e) => e.name === name)

/** The function type of an exported function (spec `get_function_signature`). */
export const functionSignature = (module: WasmModule, name: string): FuncType | undefined => module.functions.get(name)

/** Bytes the module needs: its code plus its initial memory (spec `estimated_memory`). */
export const estimatedMemory = (module: WasmModule): number => module.bytes.byteLength + module.memoryPages * PAGE_BYTES
