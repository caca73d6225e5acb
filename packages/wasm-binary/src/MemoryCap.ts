/**
 * Hard memory caps: rewrite a module so its linear memory can never grow past
 * an agent's budget. With the maximum in the binary, `memory.grow` past the
 * budget returns -1 inside the guest (core spec §4.4.7 "memory.grow": it
 * fails when the new size would exceed the memory type's maximum) and
 * `WebAssembly.Memory.prototype.grow` throws a `RangeError` — the host never
 * allocates past the cap.
 *
 * Sizes are in pages of 64 KiB (spec §2.3.8 "Memory Types"). The memory
 * type is encoded as limits (spec §5.3.7/§5.3.8): a flags byte — bit 0
 * has-maximum, bit 1 shared (threads proposal), bit 2 64-bit index (memory64
 * proposal) — then `min` and, when bit 0 is set, `max`.
 *
 * @since 0.1.0
 */
import { attempt, fail, succeed, type ReadResult } from "./ReadResult.js"
import { MAX_MEMORY32_PAGES, MAX_MEMORY64_PAGES } from "./ModuleReader.js"
import { checkInput, checkOutput } from "./internal/RewriteGuard.js"
import type { ModuleInfo } from "./Types.js"
import { WasmBinaryError } from "./WasmBinaryError.js"
import { ByteReader } from "./internal/ByteReader.js"
import { ByteWriter } from "./internal/ByteWriter.js"
import { spliceSections } from "./internal/SectionSplice.js"
import { SectionId } from "./internal/Sections.js"

/**
 * What the cap did to memory 0, the module's only memory.
 *
 * - `"defined"`: the module defines its memory; `maxPages` is now in the
 *   binary (`rewritten` says whether the bytes changed: a declared maximum
 *   already within the cap is kept as is).
 * - `"imported"`: the memory comes from the host; the binary cannot carry the
 *   cap, so the bytes are unchanged and **the host must create the memory
 *   with `maximum: maxPages`** (an imported memory's maximum must not exceed
 *   the import's declared one, spec §4.5.3 "Import Subtyping", so `maxPages`
 *   is `min(declared maximum, cap)`).
 * - `"none"`: no memory at all; the bytes are unchanged and there is nothing
 *   to cap (`minPages` 0, `maxPages` undefined).
 */
export interface MemoryCapInfo {
  readonly kind: "defined" | "imported" | "none"
  /** Initial size in pages (unchanged by the cap). */
  readonly minPages: number
  /** Maximum in pages after the cap (`undefined` only for `"none"`). */
  readonly maxPages: number | undefined
  /** The maximum the module declared, in pages, before the cap. */
  readonly declaredMaxPages: number | undefined
  /** Shared memory (threads proposal): keeps its shared flag; its maximum becomes the cap. */
  readonly shared: boolean
  /** 64-bit index memory (memory64 proposal). */
  readonly memory64: boolean
  /** Whether the module bytes were changed. */
  readonly rewritten: boolean
}

/** A capped module: its bytes and what happened to its memory. */
export interface CappedModule {
  readonly bytes: Uint8Array<ArrayBuffer>
  readonly memory: MemoryCapInfo
}

const noMemory: MemoryCapInfo = {
  kind: "none",
  minPages: 0,
  maxPages: undefined,
  declaredMaxPages: undefined,
  shared: false,
  memory64: false,
  rewritten: false
}

/**
 * Caps memory 0 of a module at `maxPages` pages (64 KiB each): its maximum
 * becomes `min(declared maximum, maxPages)`. A memory without a maximum gets
 * one (limits flag 0x00 → 0x01, 0x04 → 0x05); a shared memory keeps its
 * shared flag (0x03, 0x07); every other section is copied byte for byte. A
 * cap above the architectural limit (65 536 pages for 32-bit memories, 2^48
 * for memory64) is clamped to it. An imported memory is reported (see
 * `MemoryCapInfo`) and the bytes are returned unchanged.
 *
 * Contract: the rewrite is never applied to a module that does not
 * validate (where a `WebAssembly` global exists, `WebAssembly.validate`
 * checks the input, and the output too): the output validates iff the
 * input does.
 *
 * Fails with a `WasmBinaryError` when:
 * - the module is malformed, invalid or unsupported (anything `readModule`
 *   or `WebAssembly.validate` rejects; memory64 and multi-memory included);
 * - `maxPages` is not a non-negative safe integer (`"invalid memory cap"`, offset 0);
 * - the initial size is above the cap: `"initial memory N pages exceeds the cap
 *   M pages"` at the offset of the memory type (also for an imported memory,
 *   which no memory within the cap could satisfy);
 * - the module has more than one memory (multi-memory proposal: the cap is
 *   per agent, so it refuses rather than leave a memory uncapped).
 *
 * @example
 * const r = capMemory(bytes, 16) // at most 1 MiB
 * if (r.ok && r.value.memory.kind === "imported") new WebAssembly.Memory({ initial: r.value.memory.minPages, maximum: r.value.memory.maxPages! })
 */
export const capMemory = (bytes: Uint8Array, maxPages: number): ReadResult<CappedModule> => {
  const read = checkInput(bytes)
  if (!read.ok) return read
  return checkOutput(capMemoryOf(bytes, read.value, maxPages), (m) => m.bytes)
}

/** `capMemory` for a module already read by `readModule`. @internal */
export const capMemoryOf = (bytes: Uint8Array, info: ModuleInfo, maxPages: number): ReadResult<CappedModule> => {
  if (!Number.isSafeInteger(maxPages) || maxPages < 0) {
    return fail(
      new WasmBinaryError(0, `invalid memory cap ${String(maxPages)}: expected a non-negative integer number of pages`)
    )
  }
  const imported = info.imports.flatMap((i) => (i.type.kind === "memory" ? [i.type] : []))
  const memorySection = info.sections.find((s) => s.id === SectionId.memory)
  if (imported.length + info.memories.length > 1) {
    return fail(
      new WasmBinaryError(
        memorySection?.offset ?? 0,
        `the memory cap supports one memory, the module has ${imported.length + info.memories.length}`
      )
    )
  }
  const importedMemory = imported[0]
  if (importedMemory !== undefined) {
    const cap = Math.min(maxPages, importedMemory.memory64 ? MAX_MEMORY64_PAGES : MAX_MEMORY32_PAGES)
    if (importedMemory.minPages > cap) {
      const importSection = info.sections.find((s) => s.id === SectionId.import)
      return fail(exceeds(importSection?.offset ?? 0, importedMemory.minPages, maxPages))
    }
    return succeed({
      bytes: new Uint8Array(bytes),
      memory: {
        kind: "imported",
        minPages: importedMemory.minPages,
        maxPages: Math.min(importedMemory.maxPages ?? cap, cap),
        declaredMaxPages: importedMemory.maxPages,
        shared: importedMemory.shared,
        memory64: importedMemory.memory64,
        rewritten: false
      }
    })
  }
  if (memorySection === undefined || info.memories.length === 0) {
    return succeed({ bytes: new Uint8Array(bytes), memory: noMemory })
  }
  let position = memorySection.payloadOffset
  return attempt(
    () => {
      const r = new ByteReader(bytes, memorySection.payloadOffset, memorySection.payloadOffset + memorySection.size)
      r.count()
      const typeAt = r.offset
      position = typeAt
      const flags = r.u8()
      const memory64 = (flags & 0x04) !== 0
      const minPages = memory64 ? Number(r.u64()) : r.u32()
      const declaredMaxPages = (flags & 0x01) !== 0 ? (memory64 ? Number(r.u64()) : r.u32()) : undefined
      const rest = bytes.subarray(r.offset, memorySection.payloadOffset + memorySection.size)
      const cap = Math.min(maxPages, memory64 ? MAX_MEMORY64_PAGES : MAX_MEMORY32_PAGES)
      if (minPages > cap) throw exceeds(typeAt, minPages, maxPages)
      const capped = Math.min(declaredMaxPages ?? cap, cap)
      const memory: MemoryCapInfo = {
        kind: "defined",
        minPages,
        maxPages: capped,
        declaredMaxPages,
        shared: (flags & 0x02) !== 0,
        memory64,
        rewritten: capped !== declaredMaxPages
      }
      if (!memory.rewritten) return { bytes: new Uint8Array(bytes), memory }
      const payload = new ByteWriter(16 + rest.length).u32(1).u8(flags | 0x01)
      if (memory64) payload.u64(BigInt(minPages)).u64(BigInt(capped))
      else payload.u32(minPages).u32(capped)
      payload.bytes(rest)
      return { bytes: spliceSections(bytes, new Map([[SectionId.memory, payload.view()]])), memory }
    },
    () => position
  )
}

const exceeds = (offset: number, minPages: number, cap: number): WasmBinaryError =>
  new WasmBinaryError(offset, `initial memory ${minPages} pages exceeds the cap ${cap} pages`)
