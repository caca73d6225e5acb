/**
 * Reads a WebAssembly module's binary (core spec §5 "Binary Format") into a
 * typed `ModuleInfo`: function types, imports and exports with their full
 * types, tables, memories (in pages of 64 KiB), globals with the byte range
 * of their initializer, tags, start function, data count, and where every
 * section sits. Besides decoding, it performs the structural checks a
 * decoder can (section order, counts, index ranges, limits, constant
 * expressions, local counts); it does not validate instruction sequences in
 * function bodies.
 *
 * Function bodies are decoded instruction by instruction (opcodes, the
 * LEB128 forms of immediates, block nesting; no allocation per
 * instruction); `local.*` and `global.*` indices are checked against the
 * function's locals and the module's globals, and `memory.init` /
 * `data.drop` need a data count section (§5.5.15).
 *
 * Accepts everything Node 20's V8 (11.3) ships: MVP, sign extension,
 * saturating float-to-int, bulk memory, reference types, multi-value, SIMD
 * (`v128`), threads (shared memories), tail calls, legacy exception handling
 * (tag section 13). Refuses, as `kind: "unsupported"` naming the feature,
 * what V8 11.3 cannot run: memory64 (and table64) limits, extended constant
 * expressions (both decodable on request, see `ReadOptions`), GC and typed
 * function references (types, value types, opcodes), the final exception
 * handling encoding (`exnref`, `try_table`, `throw_ref`), relaxed SIMD and
 * multiple memories.
 *
 * @since 0.1.0
 */
import { attempt, type ReadResult } from "./ReadResult.js"
import type {
  CustomSection,
  ExportDesc,
  ExternType,
  FuncType,
  GlobalDesc,
  GlobalType,
  ImportDesc,
  MemoryType,
  ModuleInfo,
  RefType,
  SectionInfo,
  TableType,
  TagType,
  ValueType
} from "./Types.js"
import { decodeInstruction, Immediates, opensBlock, unsupportedType, unsupportedValueType } from "./Instructions.js"
import { Imm, SINGLE_IMM } from "./internal/Opcodes.js"

const IMM_NONE: number = Imm.none
const IMM_INDEX: number = Imm.index
const IMM_I32: number = Imm.i32
const IMM_LABEL: number = Imm.label
const IMM_MEMARG: number = Imm.memarg
const IMM_BLOCK_TYPE: number = Imm.blockType

/** A one-byte block type: empty (0x40) or a value type Node 20 knows. */
const isShortBlockType = (b: number): boolean => b === 0x40 || (b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f
import { ByteReader } from "./internal/ByteReader.js"
import { nextSection, readPreamble, sectionName, sectionRank, SectionId, sectionReader } from "./internal/Sections.js"

/** Locals (parameters included) one function may declare; V8's limit (`kV8MaxWasmFunctionLocals`). */
export const MAX_FUNCTION_LOCALS = 50_000
/** Largest 32-bit memory, in pages (4 GiB). */
export const MAX_MEMORY32_PAGES = 65_536
/** Largest 64-bit memory, in pages (2^48, memory64 proposal). */
export const MAX_MEMORY64_PAGES = 2 ** 48

const VALUE_TYPES: Readonly<Record<number, ValueType>> = {
  0x7f: "i32",
  0x7e: "i64",
  0x7d: "f32",
  0x7c: "f64",
  0x7b: "v128",
  0x70: "funcref",
  0x6f: "externref"
}

const EXTERN_KINDS = ["function", "table", "memory", "global", "tag"] as const
type ExternKind = (typeof EXTERN_KINDS)[number]

/**
 * Decoding options of `readModule`: features Node 20 cannot run that the
 * reader can still decode, for tools that inspect such modules. Default:
 * refused as `kind: "unsupported"`.
 */
export interface ReadOptions {
  /** Decode memory64 limits (flag bit 2, u64 sizes; `MemoryType.memory64`). */
  readonly memory64?: boolean
  /** Decode extended constant expressions (`i32/i64.add/sub/mul`). */
  readonly extendedConst?: boolean
  /**
   * Decode function bodies (default `true`). `false` reads only the code
   * section's framing (body count and sizes) and skips every body — for
   * callers that let the engine's own validation (`WebAssembly.validate` /
   * `compile`) check bodies, such as the runtime's `loadModule`; such a
   * caller runs the default reader again when the engine refuses the
   * module, to report the byte offset. `ModuleInfo` is the same either way.
   */
  readonly bodies?: boolean
}

/** Fails on byte `b` at `at`: unsupported when it is a GC / exnref type, else malformed with `reason`. */
const badType = (r: ByteReader, b: number, at: number, reason: string): never => {
  r.offset = at
  if (unsupportedValueType(b) !== undefined) unsupportedType(r, b)
  return r.fail(reason, at)
}

/** A value type (§5.3.4). */
const valueType = (r: ByteReader): ValueType => {
  const at = r.offset
  const b = r.u8()
  const t = VALUE_TYPES[b]
  if (t === undefined) badType(r, b, at, "malformed value type")
  return t as ValueType
}

/** A reference type (§5.3.3). */
const refType = (r: ByteReader): RefType => {
  const at = r.offset
  const b = r.u8()
  if (b === 0x70) return "funcref"
  if (b === 0x6f) return "externref"
  return badType(r, b, at, "malformed reference type")
}

/** A function type (§5.3.6): `0x60 vec(valtype) vec(valtype)`. */
const funcType = (r: ByteReader): FuncType => {
  const at = r.offset
  const form = r.u8()
  // rec (0x4e), sub (0x50), sub final (0x4f), struct (0x5f), array (0x5e): GC proposal
  if (form === 0x4e || form === 0x4f || form === 0x50 || form === 0x5e || form === 0x5f) {
    r.unsupported("gc", `composite type form 0x${form.toString(16)}`, at)
  }
  if (form !== 0x60) r.fail(`malformed function type form 0x${form.toString(16).padStart(2, "0")}`, at)
  const params = r.vec(valueType)
  const results = r.vec(valueType)
  return { params, results }
}

/** Table limits (§5.3.7): flags 0x00 (min) or 0x01 (min, max), u32 element counts. */
const tableType = (r: ByteReader): TableType => {
  const elementType = refType(r)
  const at = r.offset
  const flags = r.u8()
  if (flags === 0x04 || flags === 0x05) r.unsupported("memory64", "64-bit table limits", at)
  if (flags > 0x01) r.fail("malformed limits flags", at)
  const min = r.u32()
  const maxAt = r.offset
  const max = flags === 0x01 ? r.u32() : undefined
  if (max !== undefined && min > max) r.invalid("size minimum must not be greater than maximum", maxAt)
  return { elementType, min, max }
}

/**
 * Memory limits (§5.3.8 plus the threads and memory64 proposals): flags bit 0
 * has-maximum, bit 1 shared, bit 2 64-bit index; sizes in pages.
 */
const memoryType = (r: ByteReader, options: ReadOptions): MemoryType => {
  const at = r.offset
  const flags = r.u8()
  if (flags > 0x07) r.fail("malformed limits flags", at)
  const hasMax = (flags & 0x01) !== 0
  const shared = (flags & 0x02) !== 0
  const memory64 = (flags & 0x04) !== 0
  if (memory64 && options.memory64 !== true) r.unsupported("memory64", "64-bit memory limits", at)
  const pages = (): number => {
    const pagesAt = r.offset
    if (memory64) {
      const v = r.u64()
      if (v > BigInt(MAX_MEMORY64_PAGES)) r.invalid("memory size must be at most 2^48 pages", pagesAt)
      return Number(v)
    }
    const v = r.u32()
    if (v > MAX_MEMORY32_PAGES) r.invalid("memory size must be at most 65536 pages (4GiB)", pagesAt)
    return v
  }
  const minPages = pages()
  const maxAt = r.offset
  const maxPages = hasMax ? pages() : undefined
  if (maxPages !== undefined && minPages > maxPages) r.invalid("size minimum must not be greater than maximum", maxAt)
  if (shared && maxPages === undefined) r.invalid("shared memory must have maximum", at)
  return { minPages, maxPages, shared, memory64 }
}

/** A global type (§5.3.10): value type + mutability byte. */
const globalType = (r: ByteReader): GlobalType => {
  const valueType_ = valueType(r)
  const at = r.offset
  const m = r.u8()
  if (m > 0x01) r.fail("malformed mutability", at)
  return { valueType: valueType_, mutable: m === 0x01 }
}

/** Mutable, growing state of one read; see `readModule`. */
class ModuleDecoder {
  readonly types: Array<FuncType> = []
  readonly imports: Array<ImportDesc> = []
  readonly exports: Array<ExportDesc> = []
  /** Type index of every function in the function index space (imports first). */
  readonly funcTypeIndices: Array<number> = []
  readonly tableSpace: Array<TableType> = []
  readonly memorySpace: Array<MemoryType> = []
  readonly globalSpace: Array<GlobalType> = []
  readonly tagSpace: Array<TagType> = []
  readonly functions: Array<number> = []
  readonly tables: Array<TableType> = []
  readonly memories: Array<MemoryType> = []
  readonly globals: Array<GlobalDesc> = []
  readonly tags: Array<TagType> = []
  readonly sections: Array<SectionInfo> = []
  readonly customSections: Array<CustomSection> = []
  start: number | undefined = undefined
  dataCount: number | undefined = undefined
  codeCount: number | undefined = undefined
  dataSegmentCount: number | undefined = undefined
  /** The reader in use, for the offset of unexpected exceptions. */
  current: ByteReader

  /** Reused by the body decoder (no allocation per instruction). */
  private readonly imm = new Immediates()

  constructor(
    readonly bytes: Uint8Array,
    readonly options: ReadOptions
  ) {
    this.current = new ByteReader(bytes)
  }

  read(): ModuleInfo {
    const bytes = this.bytes
    const r = readPreamble(bytes)
    this.current = r
    const seen = new Set<number>()
    let lastId = -1
    let lastRank = 0
    while (!r.atEnd) {
      const raw = nextSection(r)
      const s = sectionReader(bytes, raw)
      this.current = s
      if (raw.id === SectionId.custom) {
        const name = s.name()
        this.sections.push({ id: raw.id, offset: raw.offset, payloadOffset: raw.payloadOffset, size: raw.size, name })
        this.customSections.push({
          name,
          offset: raw.offset,
          length: raw.end - raw.offset,
          dataOffset: s.offset,
          dataLength: raw.end - s.offset
        })
        this.current = r
        continue
      }
      if (seen.has(raw.id)) r.fail(`duplicate ${sectionName(raw.id)} section`, raw.offset)
      const rank = sectionRank(raw.id) ?? 0
      if (rank < lastRank) {
        r.fail(`unexpected ${sectionName(raw.id)} section after ${sectionName(lastId)} section`, raw.offset)
      }
      seen.add(raw.id)
      lastRank = rank
      lastId = raw.id
      this.sections.push({ id: raw.id, offset: raw.offset, payloadOffset: raw.payloadOffset, size: raw.size })
      this.section(raw.id, s)
      if (!s.atEnd) s.fail("section size mismatch")
      this.current = r
    }
    if (this.functions.length !== (this.codeCount ?? 0)) {
      r.fail("function and code section have inconsistent lengths", bytes.length)
    }
    if (this.dataCount !== undefined && this.dataCount !== (this.dataSegmentCount ?? 0)) {
      r.fail("data count and data section have inconsistent lengths", bytes.length)
    }
    return {
      types: this.types,
      imports: this.imports,
      exports: this.exports,
      functions: this.functions,
      tables: this.tables,
      memories: this.memories,
      globals: this.globals,
      tags: this.tags,
      start: this.start,
      dataCount: this.dataCount,
      sections: this.sections,
      customSections: this.customSections
    }
  }

  private section(id: number, s: ByteReader): void {
    switch (id) {
      case SectionId.type:
        return this.typeSection(s)
      case SectionId.import:
        return this.importSection(s)
      case SectionId.function:
        return this.functionSection(s)
      case SectionId.table:
        return this.tableSection(s)
      case SectionId.memory:
        return this.memorySection(s)
      case SectionId.tag:
        return this.tagSection(s)
      case SectionId.global:
        return this.globalSection(s)
      case SectionId.export:
        return this.exportSection(s)
      case SectionId.start:
        return this.startSection(s)
      case SectionId.element:
        return this.elementSection(s)
      case SectionId.dataCount:
        this.dataCount = s.u32()
        return
      case SectionId.code:
        return this.codeSection(s)
      case SectionId.data:
        return this.dataSection(s)
    }
  }

  // ---- index spaces ------------------------------------------------------

  private typeIndex(r: ByteReader): number {
    const at = r.offset
    const index = r.u32()
    if (index >= this.types.length) r.invalid(`unknown type ${index}`, at)
    return index
  }

  private funcType(index: number): FuncType {
    return this.types[index] as FuncType
  }

  /** An index into one of the index spaces (§2.5.1), checked against its size. */
  private index(r: ByteReader, kind: ExternKind): number {
    const at = r.offset
    const index = r.u32()
    if (index >= this.spaceSize(kind)) r.invalid(`unknown ${kind} ${index}`, at)
    return index
  }

  private spaceSize(kind: ExternKind): number {
    switch (kind) {
      case "function":
        return this.funcTypeIndices.length
      case "table":
        return this.tableSpace.length
      case "memory":
        return this.memorySpace.length
      case "global":
        return this.globalSpace.length
      case "tag":
        return this.tagSpace.length
    }
  }

  /** The full external type of entry `index` of an index space (must be in range). */
  private externType(kind: ExternKind, index: number): ExternType {
    switch (kind) {
      case "function": {
        const t = this.funcType(this.funcTypeIndices[index] as number)
        return { kind: "function", params: t.params, results: t.results }
      }
      case "table":
        return { kind: "table", ...(this.tableSpace[index] as TableType) }
      case "memory":
        return { kind: "memory", ...(this.memorySpace[index] as MemoryType) }
      case "global":
        return { kind: "global", ...(this.globalSpace[index] as GlobalType) }
      case "tag":
        return { kind: "tag", ...(this.tagSpace[index] as TagType) }
    }
  }

  private externKind(r: ByteReader, what: "import" | "export"): ExternKind {
    const at = r.offset
    const kind = EXTERN_KINDS[r.u8()]
    if (kind === undefined) r.fail(`malformed ${what} kind`, at)
    return kind
  }

  /** A tag type (exception handling): attribute 0x00 + type index of a function type without results. */
  private tagType(r: ByteReader): TagType {
    const at = r.offset
    if (r.u8() !== 0x00) r.fail("malformed tag attribute", at)
    const typeAt = r.offset
    const t = this.funcType(this.typeIndex(r))
    if (t.results.length !== 0) r.invalid("tag type must not have results", typeAt)
    return { params: t.params }
  }

  // ---- sections ------------------------------------------------------------

  /** §5.5.4 */
  private typeSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) this.types.push(funcType(s))
  }

  /** §5.5.5 */
  private importSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      const module = s.name()
      const name = s.name()
      const kind = this.externKind(s, "import")
      switch (kind) {
        case "function":
          this.funcTypeIndices.push(this.typeIndex(s))
          break
        case "table":
          this.tableSpace.push(tableType(s))
          break
        case "memory":
          this.addMemory(s, memoryType(s, this.options))
          break
        case "global":
          this.globalSpace.push(globalType(s))
          break
        case "tag":
          this.tagSpace.push(this.tagType(s))
          break
      }
      this.imports.push({ module, name, type: this.externType(kind, this.spaceSize(kind) - 1) })
    }
  }

  /** §5.5.6 */
  private functionSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      const t = this.typeIndex(s)
      this.functions.push(t)
      this.funcTypeIndices.push(t)
    }
  }

  /** §5.5.7 */
  private tableSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      // 0x40 0x00: a table with an initializer expression (typed function references / GC)
      if (s.peek() === 0x40) s.unsupported("gc", "table with an initializer expression")
      const t = tableType(s)
      this.tables.push(t)
      this.tableSpace.push(t)
    }
  }

  /** §5.5.8 */
  private memorySection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      const at = s.offset
      const t = memoryType(s, this.options)
      this.memories.push(t)
      this.addMemory(s, t, at)
    }
  }

  /** Adds a memory to the index space; a second one is the multi-memory proposal, not in Node 20. */
  private addMemory(r: ByteReader, t: MemoryType, at = r.offset): void {
    if (this.memorySpace.length > 0) r.unsupported("multi-memory", "a second memory", at)
    this.memorySpace.push(t)
  }

  /** Exception handling proposal, section id 13. */
  private tagSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      const t = this.tagType(s)
      this.tags.push(t)
      this.tagSpace.push(t)
    }
  }

  /** §5.5.9 */
  private globalSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      const type = globalType(s)
      const initOffset = s.offset
      this.constExpr(s, type.valueType)
      this.globals.push({ index: this.globalSpace.length, type, initOffset, initSize: s.offset - initOffset })
      this.globalSpace.push(type)
    }
  }

  /** §5.5.10 */
  private exportSection(s: ByteReader): void {
    const n = s.count()
    const names = new Set<string>()
    for (let i = 0; i < n; i++) {
      const at = s.offset
      const name = s.name()
      if (names.has(name)) s.invalid("duplicate export name", at)
      names.add(name)
      const kind = this.externKind(s, "export")
      const index = this.index(s, kind)
      this.exports.push({ name, index, type: this.externType(kind, index) })
    }
  }

  /** §5.5.11 */
  private startSection(s: ByteReader): void {
    const at = s.offset
    const index = this.index(s, "function")
    const t = this.funcType(this.funcTypeIndices[index] as number)
    if (t.params.length !== 0 || t.results.length !== 0) s.invalid("start function must have type [] -> []", at)
    this.start = index
  }

  /** §5.5.12: the eight element segment forms, selected by a u32 flags field (0..7). */
  private elementSection(s: ByteReader): void {
    const n = s.count()
    for (let i = 0; i < n; i++) {
      const at = s.offset
      const flags = s.u32()
      if (flags > 7) s.fail("malformed elements segment kind", at)
      const passiveOrDeclarative = (flags & 0x01) !== 0
      const explicitTable = (flags & 0x02) !== 0
      const usesExpressions = (flags & 0x04) !== 0
      let table = 0
      if (!passiveOrDeclarative) {
        const tableAt = s.offset
        if (explicitTable) table = s.u32()
        if (table >= this.tableSpace.length) s.invalid(`unknown table ${table}`, tableAt)
        this.constExpr(s, "i32")
      }
      let elementType: RefType = "funcref"
      if (passiveOrDeclarative || explicitTable) {
        if (usesExpressions) {
          elementType = refType(s)
        } else {
          const kindAt = s.offset
          if (s.u8() !== 0x00) s.fail("malformed element kind", kindAt)
        }
      }
      const count = s.count()
      for (let j = 0; j < count; j++) {
        if (usesExpressions) this.constExpr(s, elementType)
        else this.index(s, "function")
      }
    }
  }

  /** §5.5.13: bodies are `size:u32 vec(locals) expr`; only local declarations are decoded. */
  private codeSection(s: ByteReader): void {
    const countAt = s.offset
    const n = s.count()
    if (n !== this.functions.length) s.fail("function and code section have inconsistent lengths", countAt)
    this.codeCount = n
    for (let i = 0; i < n; i++) {
      const sizeAt = s.offset
      const size = s.u32()
      const body = s.sub(size, "unexpected end of section or function", "section size mismatch", sizeAt)
      if (this.options.bodies === false) {
        s.offset = body.end
        continue
      }
      this.current = body
      const type = this.funcType(this.functions[i] as number)
      let locals = type.params.length
      const groups = body.count()
      for (let g = 0; g < groups; g++) {
        const at = body.offset
        locals += body.u32()
        if (locals > MAX_FUNCTION_LOCALS) body.fail("too many locals", at)
        valueType(body)
      }
      if (body.atEnd) body.fail("unexpected end of section or function")
      if (s.bytes[body.end - 1] !== 0x0b) body.fail("END opcode expected", body.end - 1)
      this.instructions(body, locals)
      s.offset = body.end
      this.current = s
    }
  }

  /**
   * Decodes the instructions of one body (§5.4) up to its final `end`, which
   * must be its last byte; checks `local.*` indices against `locals`
   * (parameters included) and `global.*` indices against the global index
   * space, and that `memory.init` / `data.drop` have a data count section.
   */
  private instructions(body: ByteReader, locals: number): void {
    const imm = this.imm
    const globals = this.globalSpace.length
    const bytes = body.bytes
    const end = body.end
    let depth = 0
    let at = body.offset
    for (;;) {
      if (at >= end) body.fail("END opcode expected", end)
      // Fast paths, without a call: an opcode without immediates, or whose immediates are LEB128s
      // of at most 4 bytes (always in range); everything else goes through `decodeInstruction`.
      const first = bytes[at] as number
      const kind = SINGLE_IMM[first] as number
      if (kind === IMM_NONE) {
        at += 1
        if (first !== 0x0b) continue
        if (depth === 0) break
        depth--
        continue
      } else if (kind === IMM_BLOCK_TYPE && at + 1 < end && isShortBlockType(bytes[at + 1] as number)) {
        at += 2
        depth++
        continue
      } else if (kind === IMM_INDEX || kind === IMM_I32 || (kind === IMM_LABEL && first !== 0x18)) {
        // one LEB128 immediate: its value (for the local/global check) and length
        let p = at + 1
        let value = 0
        let shift = 0
        while (p < end && p < at + 5) {
          const b = bytes[p++] as number
          value |= (b & 0x7f) << shift
          shift += 7
          if (b < 0x80) {
            shift = -1
            break
          }
        }
        if (shift === -1) {
          if (first >= 0x20 && first <= 0x24 && value >= (first <= 0x22 ? locals : globals)) {
            body.invalid(`unknown ${first <= 0x22 ? "local" : "global"} ${value}`, at)
          }
          at = p
          continue
        }
      } else if (kind === IMM_MEMARG && at + 2 < end) {
        const align = bytes[at + 1] as number
        if (align < 0x40 && (bytes[at + 2] as number) < 0x80) {
          at += 3
          continue
        }
      }
      body.offset = at
      const op = decodeInstruction(body, imm)
      if (op >= 0x20 && op <= 0x24) {
        if (op <= 0x22) {
          if (imm.index >= locals) body.invalid(`unknown local ${imm.index}`, at)
        } else if (imm.index >= globals) body.invalid(`unknown global ${imm.index}`, at)
      } else if (opensBlock(op)) depth++
      else if (op === 0x18) {
        if (depth === 0) body.invalid("delegate outside a try block", at)
        depth--
      } else if ((op === 0xfc0008 || op === 0xfc0009) && this.dataCount === undefined) {
        body.fail("data count section required", at)
      }
      at = body.offset
    }
    body.offset = at
    if (!body.atEnd) body.fail("section size mismatch", body.offset)
  }

  /** §5.5.14: three data segment forms (0 active memory 0, 1 passive, 2 active explicit memory). */
  private dataSection(s: ByteReader): void {
    const countAt = s.offset
    const n = s.count()
    if (this.dataCount !== undefined && n !== this.dataCount) {
      s.fail("data count and data section have inconsistent lengths", countAt)
    }
    this.dataSegmentCount = n
    for (let i = 0; i < n; i++) {
      const at = s.offset
      const flags = s.u32()
      if (flags > 2) s.fail("malformed data segment kind", at)
      if (flags !== 1) {
        const memAt = s.offset
        const memory = flags === 2 ? s.u32() : 0
        const memType = this.memorySpace[memory]
        if (memType === undefined) s.invalid(`unknown memory ${memory}`, memAt)
        this.constExpr(s, memType.memory64 ? "i64" : "i32")
      }
      const lengthAt = s.offset
      s.bytesView(s.u32(), lengthAt)
    }
  }

  /**
   * A constant expression (§3.3.10, §5.4.9) ending in `end`, type-checked to
   * produce exactly one `expected` value. Allowed: `t.const`, `v128.const`,
   * `ref.null`, `ref.func`, `global.get` of an immutable global, and the
   * extended-const `i32/i64.add/sub/mul`.
   */
  private constExpr(r: ByteReader, expected: ValueType): void {
    // no closure per call: this runs once per global, data and element segment (tens of thousands in big modules)
    const stack: Array<ValueType> = []
    for (;;) {
      const at = r.offset
      const op = r.u8()
      switch (op) {
        case 0x0b:
          if (stack.length !== 1 || stack[0] !== expected) r.invalid("type mismatch", at)
          return
        case 0x41:
          r.s32()
          stack.push("i32")
          break
        case 0x42:
          r.s64()
          stack.push("i64")
          break
        case 0x43:
          r.skip(4)
          stack.push("f32")
          break
        case 0x44:
          r.skip(8)
          stack.push("f64")
          break
        case 0xfd: {
          if (r.u32() !== 0x0c) r.fail("constant expression required", at)
          r.skip(16)
          stack.push("v128")
          break
        }
        case 0xd0:
          stack.push(refType(r))
          break
        case 0xd2:
          this.index(r, "function")
          stack.push("funcref")
          break
        case 0x23: {
          const index = this.index(r, "global")
          const g = this.globalSpace[index] as GlobalType
          if (g.mutable) r.invalid("constant expression required", at)
          stack.push(g.valueType)
          break
        }
        case 0x6a:
        case 0x6b:
        case 0x6c:
          if (this.options.extendedConst !== true)
            r.unsupported("extended-const", "i32 arithmetic in a constant expression", at)
          constBinary(r, stack, "i32", at)
          break
        case 0x7c:
        case 0x7d:
        case 0x7e:
          if (this.options.extendedConst !== true)
            r.unsupported("extended-const", "i64 arithmetic in a constant expression", at)
          constBinary(r, stack, "i64", at)
          break
        case 0xfb:
          r.unsupported("gc", "GC instruction in a constant expression", at)
          break
        default:
          r.fail("constant expression required", at)
      }
    }
  }
}

/**
 * Reads and checks a whole module. Never throws: malformed input gives
 * `{ ok: false, error }` with a `WasmBinaryError` carrying the byte offset
 * (from the module start) where the problem was detected, and its `kind`:
 * `"malformed"` (binary format, spec §5), `"invalid"` (a validation rule
 * the reader checks: index ranges, limits, constant expressions, local and
 * global indices in bodies) or `"unsupported"` (a feature Node 20 cannot
 * run, named in `feature`; `options` can decode memory64 and
 * extended-const instead). It does not type-check instruction sequences:
 * a module it accepts may still fail `WebAssembly.validate`.
 *
 * Memory sizes are in pages of 64 KiB (`PAGE_SIZE`); table sizes in elements.
 * Exports and imports carry their full types; an export of an imported entity
 * resolves through the import.
 *
 * @example
 * const result = readModule(bytes)
 * if (result.ok) console.log(result.value.exports.map((e) => `${e.name}: ${e.type.kind}`))
 */
export const readModule = (bytes: Uint8Array, options: ReadOptions = {}): ReadResult<ModuleInfo> => {
  let decoder: ModuleDecoder | undefined
  return attempt(
    () => {
      decoder = new ModuleDecoder(bytes, options)
      return decoder.read()
    },
    () => decoder?.current.offset ?? 0
  )
}

/**
 * The type (`params → results`) of the exported function `exportName`, or
 * `undefined` when there is no such export or it is not a function.
 */
export const functionType = (module: ModuleInfo, exportName: string): FuncType | undefined => {
  const e = module.exports.find((x) => x.name === exportName)
  if (e === undefined || e.type.kind !== "function") return undefined
  return { params: e.type.params, results: e.type.results }
}

/** An extended-const binary operator on `t` (§3.3.10): pops two `t`, pushes one; anything else is a type mismatch at `at`. */
function constBinary(r: ByteReader, stack: Array<ValueType>, t: ValueType, at: number): void {
  const b = stack.pop()
  const a = stack.pop()
  if (a !== t || b !== t) r.invalid("type mismatch", at)
  stack.push(t)
}
