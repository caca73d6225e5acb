/**
 * The module preamble and section framing (core spec §5.5.2 "Sections",
 * §5.5.16 "Modules"): magic, version, then sections of `id:byte size:u32
 * payload`. Shared by the full reader, the custom-section helpers and, later,
 * the rewriters (which copy unchanged sections byte for byte).
 *
 * @internal
 */
import { ByteReader } from "./ByteReader.js"

/** `\0asm`: the magic number (§5.5.16). */
export const MAGIC: ReadonlyArray<number> = [0x00, 0x61, 0x73, 0x6d]
/** Binary format version 1 (§5.5.16). */
export const VERSION: ReadonlyArray<number> = [0x01, 0x00, 0x00, 0x00]
/** Bytes of magic + version. */
export const PREAMBLE_SIZE = 8

/** Section ids (§5.5.2; tag: exception-handling proposal). */
export const SectionId = {
  custom: 0,
  type: 1,
  import: 2,
  function: 3,
  table: 4,
  memory: 5,
  global: 6,
  export: 7,
  start: 8,
  element: 9,
  code: 10,
  data: 11,
  dataCount: 12,
  tag: 13
} as const

const NAMES: ReadonlyArray<string> = [
  "custom",
  "type",
  "import",
  "function",
  "table",
  "memory",
  "global",
  "export",
  "start",
  "element",
  "code",
  "data",
  "data count",
  "tag"
]

/** A readable name for a section id, e.g. `"data count"`. */
export const sectionName = (id: number): string => NAMES[id] ?? `unknown (${id})`

/**
 * Position of a non-custom section in the canonical order (§5.5.16, with the
 * data count section before code and the tag section between memory and
 * global). Unknown ids have no rank.
 */
const RANK: ReadonlyArray<number> = [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6]

export const sectionRank = (id: number): number | undefined => RANK[id]

/** One section's framing; offsets in bytes from the module start. */
export interface RawSection {
  readonly id: number
  /** Offset of the id byte. */
  readonly offset: number
  /** Offset of the first payload byte. */
  readonly payloadOffset: number
  /** Payload size in bytes. */
  readonly size: number
  /** One past the last payload byte. */
  readonly end: number
}

/** Checks magic and version; returns a reader positioned after them. */
export const readPreamble = (bytes: Uint8Array): ByteReader => {
  const r = new ByteReader(bytes)
  for (let i = 0; i < 4; i++) {
    if (i >= bytes.length) r.fail("unexpected end", bytes.length)
    if (bytes[i] !== MAGIC[i]) r.fail("magic header not detected", 0)
  }
  for (let i = 4; i < 8; i++) {
    if (i >= bytes.length) r.fail("unexpected end", bytes.length)
    if (bytes[i] !== VERSION[i - 4]) r.fail("unknown binary version", 4)
  }
  r.offset = PREAMBLE_SIZE
  return r
}

/**
 * Reads the next section header at `r.offset` and moves `r` past the whole
 * section. Fails on an unknown id ("malformed section id") or a size that
 * runs past the end of the module ("unexpected end").
 */
export const nextSection = (r: ByteReader): RawSection => {
  const offset = r.offset
  const id = r.u8()
  if (id >= NAMES.length) r.fail("malformed section id", offset)
  const size = r.u32()
  const payloadOffset = r.offset
  if (size > r.remaining) r.fail("unexpected end", r.end)
  r.offset = payloadOffset + size
  return { id, offset, payloadOffset, size, end: payloadOffset + size }
}

/** A reader over a section's payload; reads past its end fail with "section size mismatch". */
export const sectionReader = (bytes: Uint8Array, section: RawSection): ByteReader =>
  new ByteReader(bytes, section.payloadOffset, section.end, "section size mismatch")
