/**
 * Typed view of a WebAssembly module's interface, as read from its binary.
 *
 * Names follow the WebAssembly core specification (§2 Structure, §5 Binary format):
 * value types, function types, limits, memory/table/global types, imports, exports.
 * Memory sizes are in pages (1 page = 64 KiB = 65 536 bytes).
 *
 * @since 0.1.0
 */

/** Bytes in one WebAssembly page (WebAssembly spec §2.3.8 "Memory Types"). */
export const PAGE_SIZE = 65_536

/** Number types (spec §2.3.1). */
export type NumType = "i32" | "i64" | "f32" | "f64"
/** Reference types (spec §2.3.3) known to Node 20 / V8. */
export type RefType = "funcref" | "externref"
/** Value types (spec §2.3.4): number, vector (`v128`) or reference types. */
export type ValueType = NumType | "v128" | RefType

/** A function type `[params] -> [results]` (spec §2.3.5). */
export interface FuncType {
  readonly params: ReadonlyArray<ValueType>
  readonly results: ReadonlyArray<ValueType>
}

/** A linear memory type (spec §2.3.8): sizes in pages of 64 KiB. */
export interface MemoryType {
  readonly minPages: number
  /** `undefined` when the module declares no maximum. */
  readonly maxPages: number | undefined
  /** Threads proposal: `shared` memories need a maximum. */
  readonly shared: boolean
  /** memory64 proposal (index type i64). */
  readonly memory64: boolean
}

/** A table type (spec §2.3.9): element count limits. */
export interface TableType {
  readonly elementType: RefType
  readonly min: number
  readonly max: number | undefined
}

/** A global type (spec §2.3.10). */
export interface GlobalType {
  readonly valueType: ValueType
  readonly mutable: boolean
}

/** An exception tag type (exception-handling proposal): its parameters. */
export interface TagType {
  readonly params: ReadonlyArray<ValueType>
}

/** The type of an import or export (spec §2.3.11 "External Types"). */
export type ExternType =
  | { readonly kind: "function"; readonly params: ReadonlyArray<ValueType>; readonly results: ReadonlyArray<ValueType> }
  | ({ readonly kind: "memory" } & MemoryType)
  | ({ readonly kind: "table" } & TableType)
  | ({ readonly kind: "global" } & GlobalType)
  | ({ readonly kind: "tag" } & TagType)

/** An export (spec §2.5.10): its name, the index in its index space, and its full type. */
export interface ExportDesc {
  readonly name: string
  readonly index: number
  readonly type: ExternType
}

/** An import (spec §2.5.11): module name, field name and full type. */
export interface ImportDesc {
  readonly module: string
  readonly name: string
  readonly type: ExternType
}

/** A global defined by the module (not imported). `index` is its global index. */
export interface GlobalDesc {
  readonly index: number
  readonly type: GlobalType
  /** Byte range of the constant initializer expression (inside the module bytes). */
  readonly initOffset: number
  readonly initSize: number
}

/** Where a section sits in the module bytes (all offsets in bytes from the module start). */
export interface SectionInfo {
  /** Section id (spec §5.5.2): 0 custom, 1 type … 12 data count, 13 tag. */
  readonly id: number
  /** Offset of the section id byte. */
  readonly offset: number
  /** Offset of the first payload byte (after the size LEB128). */
  readonly payloadOffset: number
  /** Payload size in bytes. */
  readonly size: number
  /** For custom sections: the section name. */
  readonly name?: string
}

/** A custom section (spec §5.5.3): name plus payload byte range. */
export interface CustomSection {
  readonly name: string
  /** Offset of the section id byte (0x00). */
  readonly offset: number
  /** Total section length in bytes, id byte and size included. */
  readonly length: number
  /** Offset and length of the payload after the name. */
  readonly dataOffset: number
  readonly dataLength: number
}

/** Everything `readModule` learns about a module. */
export interface ModuleInfo {
  readonly types: ReadonlyArray<FuncType>
  readonly imports: ReadonlyArray<ImportDesc>
  readonly exports: ReadonlyArray<ExportDesc>
  /** Type index of every function defined by the module (function section order). */
  readonly functions: ReadonlyArray<number>
  readonly tables: ReadonlyArray<TableType>
  /** Memories defined by the module (imported memories are in `imports`). */
  readonly memories: ReadonlyArray<MemoryType>
  readonly globals: ReadonlyArray<GlobalDesc>
  readonly tags: ReadonlyArray<TagType>
  /** Function index of the start function (spec §2.5.9), if any. */
  readonly start: number | undefined
  readonly dataCount: number | undefined
  readonly sections: ReadonlyArray<SectionInfo>
  readonly customSections: ReadonlyArray<CustomSection>
}
