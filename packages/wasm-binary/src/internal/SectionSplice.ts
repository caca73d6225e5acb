/**
 * Rebuilds a module with some non-custom sections replaced or added (core
 * spec §5.5.2 "Sections", §5.5.16 "Modules"). Every other section — custom
 * sections included — is copied byte for byte, in order. A section that the
 * module lacks is inserted at its canonical position: before the first
 * non-custom section of a higher rank, else at the end. Used by the
 * rewriters (memory cap, state export).
 *
 * The input must already have been checked (e.g. by `readModule`): this only
 * walks the section framing.
 *
 * @internal
 */
import { ByteWriter } from "./ByteWriter.js"
import { nextSection, PREAMBLE_SIZE, readPreamble, sectionRank } from "./Sections.js"

/** New payloads by section id (never 0: custom sections are not spliced). */
export type SectionEdits = ReadonlyMap<number, Uint8Array>

export const spliceSections = (bytes: Uint8Array, edits: SectionEdits): Uint8Array<ArrayBuffer> => {
  const pending = new Map(edits)
  const w = new ByteWriter(bytes.length + 64)
  const writeSection = (id: number, payload: Uint8Array): void => {
    w.u8(id).u32(payload.length).bytes(payload)
  }
  const insertBefore = (rank: number): void => {
    const due = [...pending.keys()]
      .filter((id) => (sectionRank(id) ?? 0) < rank)
      .sort((a, b) => (sectionRank(a) ?? 0) - (sectionRank(b) ?? 0))
    for (const id of due) {
      writeSection(id, pending.get(id) as Uint8Array)
      pending.delete(id)
    }
  }
  const r = readPreamble(bytes)
  w.bytes(bytes.subarray(0, PREAMBLE_SIZE))
  while (!r.atEnd) {
    const s = nextSection(r)
    if (s.id === 0) {
      w.bytes(bytes.subarray(s.offset, s.end))
      continue
    }
    const rank = sectionRank(s.id) ?? 0
    insertBefore(rank)
    const replacement = pending.get(s.id)
    if (replacement !== undefined) {
      writeSection(s.id, replacement)
      pending.delete(s.id)
    } else {
      w.bytes(bytes.subarray(s.offset, s.end))
    }
  }
  insertBefore(Number.POSITIVE_INFINITY)
  return w.finish()
}
