/**
 * Complete snapshots: rewrite a module so every piece of its mutable state is
 * reachable from the host through exports — linear memory 0 and every
 * mutable global (core spec §2.5.10 "Exports": exporting a global or memory
 * exposes the very same instance, so reading and writing the export reads and
 * writes the guest's state). A host then snapshots an instance by copying
 * the memory's pages and reading each global's `value`, and restores into a
 * fresh instance of the same rewritten module by writing them back.
 *
 * Added exports use the hidden names of `HiddenExports.ts`
 * (`agent-runtime:global:<index>`, `agent-runtime:memory`); a module that
 * already exports a name with the `agent-runtime:` prefix is refused, so an
 * added name never collides with the module's own.
 *
 * @since 0.1.0
 */
import { globalExportName, HIDDEN_EXPORT_PREFIX, isHiddenExport, MEMORY_EXPORT } from "./HiddenExports.js"
import { checkInput, checkOutput } from "./internal/RewriteGuard.js"
import { attempt, fail, succeed, type ReadResult } from "./ReadResult.js"
import type { GlobalType, ModuleInfo, ValueType } from "./Types.js"
import { WasmBinaryError } from "./WasmBinaryError.js"
import { ByteReader } from "./internal/ByteReader.js"
import { ByteWriter } from "./internal/ByteWriter.js"
import { spliceSections } from "./internal/SectionSplice.js"
import { SectionId } from "./internal/Sections.js"

/** A mutable global a snapshot can read and write through an export. */
export interface StateGlobal {
  /** Global index (imported globals first, spec §2.5.1 "Indices"). */
  readonly index: number
  /** Export name to read it through: the module's own, or `globalExportName(index)` when added. */
  readonly name: string
  /** `i32` / `f32` / `f64` read as JS numbers, `i64` as bigints. */
  readonly valueType: ValueType
  /** Whether the rewrite added this export (the module kept the global internal). */
  readonly added: boolean
  /** An imported global: its value lives in the host's `WebAssembly.Global`, re-exported here. */
  readonly imported: boolean
}

/**
 * A mutable global whose value a snapshot cannot hold: `v128` cannot be read
 * from JavaScript (`WebAssembly.Global.prototype.value` throws a `TypeError`
 * for v128, JS API §5 "Globals"), and reference values (`funcref`,
 * `externref`) are host objects with no byte representation. A snapshot of
 * such a module is incomplete: the caller decides whether to refuse it.
 */
export interface UnsnapshottableGlobal {
  readonly index: number
  readonly valueType: ValueType
  /** Its export name if the module exports it (no export is added for it). */
  readonly name: string | undefined
  readonly reason: "v128" | "reference"
}

/** The rewritten module and where its state can be read. */
export interface StateExport {
  readonly bytes: Uint8Array<ArrayBuffer>
  /** Every snapshottable mutable global, by global index. */
  readonly globals: ReadonlyArray<StateGlobal>
  /** Export name of memory 0 (the module's own or `MEMORY_EXPORT`); `undefined` when it has no memory. */
  readonly memoryExport: string | undefined
  /** Mutable globals that no snapshot can hold; empty means a snapshot is complete. */
  readonly unsnapshottable: ReadonlyArray<UnsnapshottableGlobal>
}

/** Options of `exportStateOf`. @internal */
export interface ExportStateOptions {
  /**
   * Hidden export names the module may already carry (added by an earlier
   * rewrite of this package, e.g. `FUEL_EXPORT`); any other hidden name is refused.
   */
  readonly allowHidden?: ReadonlyArray<string>
}

/**
 * Exports all mutable state of a module: every mutable global (defined or
 * imported) that it does not export yet, under `globalExportName(index)`,
 * and memory 0 (defined or imported) under `MEMORY_EXPORT` when it does not
 * export it yet. Mutable globals already exported keep their names (listed
 * in `globals`, `added: false`); immutable globals are constants and are
 * left alone. `v128`, `funcref` and `externref` mutable globals get no
 * export and are listed in `unsnapshottable`. The export section is
 * rebuilt (existing entries first, byte for byte, then the added ones) or
 * created; every other section is copied unchanged, so function, global and
 * memory indices do not move. A module with nothing to add comes back
 * unchanged (as a copy).
 *
 * Contract: the rewrite is never applied to a module that does not
 * validate (where a `WebAssembly` global exists, `WebAssembly.validate`
 * checks the input, and the output too).
 *
 * Fails with a `WasmBinaryError` when the module is malformed, invalid or
 * unsupported (anything `readModule` or `WebAssembly.validate` rejects), or
 * when it already exports a name starting with `HIDDEN_EXPORT_PREFIX` (`"module already exports the reserved name …"`, at
 * the export section).
 */
export const exportState = (bytes: Uint8Array): ReadResult<StateExport> => {
  const read = checkInput(bytes)
  if (!read.ok) return read
  return checkOutput(exportStateOf(bytes, read.value, {}), (s) => s.bytes)
}

/** `exportState` for a module already read by `readModule`. @internal */
export const exportStateOf = (
  bytes: Uint8Array,
  info: ModuleInfo,
  options: ExportStateOptions
): ReadResult<StateExport> => {
  const exportSection = info.sections.find((s) => s.id === SectionId.export)
  const allowed = new Set(options.allowHidden ?? [])
  const reserved = info.exports.find((e) => isHiddenExport(e.name) && !allowed.has(e.name))
  if (reserved !== undefined) {
    return fail(
      new WasmBinaryError(
        exportSection?.offset ?? 0,
        `module already exports the reserved name "${reserved.name}" (prefix "${HIDDEN_EXPORT_PREFIX}")`
      )
    )
  }

  const exportedGlobal = new Map<number, string>()
  let memoryExport: string | undefined
  for (const e of info.exports) {
    if (e.type.kind === "global" && !exportedGlobal.has(e.index)) exportedGlobal.set(e.index, e.name)
    if (e.type.kind === "memory" && e.index === 0) memoryExport ??= e.name
  }

  const space: Array<{ index: number; type: GlobalType; imported: boolean }> = []
  for (const i of info.imports) {
    if (i.type.kind === "global") space.push({ index: space.length, type: i.type, imported: true })
  }
  for (const g of info.globals) space.push({ index: g.index, type: g.type, imported: false })

  const globals: Array<StateGlobal> = []
  const unsnapshottable: Array<UnsnapshottableGlobal> = []
  const added: Array<{ name: string; kind: number; index: number }> = []
  for (const g of space) {
    if (!g.type.mutable) continue
    const existing = exportedGlobal.get(g.index)
    const t = g.type.valueType
    if (t === "v128" || t === "funcref" || t === "externref") {
      unsnapshottable.push({
        index: g.index,
        valueType: t,
        name: existing,
        reason: t === "v128" ? "v128" : "reference"
      })
      continue
    }
    if (existing !== undefined) {
      globals.push({ index: g.index, name: existing, valueType: t, added: false, imported: g.imported })
    } else {
      const name = globalExportName(g.index)
      added.push({ name, kind: 0x03, index: g.index })
      globals.push({ index: g.index, name, valueType: t, added: true, imported: g.imported })
    }
  }
  const hasMemory = info.memories.length > 0 || info.imports.some((i) => i.type.kind === "memory")
  if (hasMemory && memoryExport === undefined) {
    memoryExport = MEMORY_EXPORT
    added.push({ name: MEMORY_EXPORT, kind: 0x02, index: 0 })
  }

  if (added.length === 0) {
    return succeed({ bytes: new Uint8Array(bytes), globals, memoryExport, unsnapshottable })
  }
  let position = exportSection?.payloadOffset ?? 0
  return attempt(
    () => {
      let count = 0
      let entries: Uint8Array = new Uint8Array(0)
      if (exportSection !== undefined) {
        const r = new ByteReader(bytes, exportSection.payloadOffset, exportSection.payloadOffset + exportSection.size)
        count = r.count()
        position = r.offset
        entries = bytes.subarray(r.offset, exportSection.payloadOffset + exportSection.size)
      }
      const payload = new ByteWriter(entries.length + added.length * 32 + 8).u32(count + added.length).bytes(entries)
      for (const a of added) payload.name(a.name).u8(a.kind).u32(a.index)
      const out = spliceSections(bytes, new Map([[SectionId.export, payload.view()]]))
      return { bytes: out, globals, memoryExport, unsnapshottable }
    },
    () => position
  )
}
