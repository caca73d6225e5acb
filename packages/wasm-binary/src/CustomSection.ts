/**
 * Custom sections (WebAssembly core spec §5.5.3): named, opaque byte
 * payloads a module may carry anywhere between its sections — debug names,
 * producers, and in this project the module signature. These helpers scan
 * only section headers (magic, version, each section's id and size, custom
 * section names), so they are cheap on large modules.
 *
 * @since 0.1.0
 */
import { attempt, type ReadResult } from "./ReadResult.js"
import type { CustomSection } from "./Types.js"
import { ByteReader } from "./internal/ByteReader.js"
import { ByteWriter } from "./internal/ByteWriter.js"
import { nextSection, readPreamble, type RawSection, sectionReader } from "./internal/Sections.js"

interface ScannedSection {
  readonly raw: RawSection
  readonly custom: CustomSection | undefined
}

const scan = (bytes: Uint8Array, position: { r: ByteReader | undefined }): Array<ScannedSection> => {
  const r = readPreamble(bytes)
  position.r = r
  const out: Array<ScannedSection> = []
  while (!r.atEnd) {
    const raw = nextSection(r)
    if (raw.id !== 0) {
      out.push({ raw, custom: undefined })
      continue
    }
    const s = sectionReader(bytes, raw)
    position.r = s
    const name = s.name()
    position.r = r
    out.push({
      raw,
      custom: {
        name,
        offset: raw.offset,
        length: raw.end - raw.offset,
        dataOffset: s.offset,
        dataLength: raw.end - s.offset
      }
    })
  }
  return out
}

const run = <A>(bytes: Uint8Array, f: (sections: Array<ScannedSection>) => A): ReadResult<A> => {
  const position: { r: ByteReader | undefined } = { r: undefined }
  return attempt(
    () => f(scan(bytes, position)),
    () => position.r?.offset ?? 0
  )
}

/**
 * Every custom section of a module, in file order: name, the section's byte
 * range (`offset`, `length`, id byte and size included) and its payload's
 * byte range (`dataOffset`, `dataLength`), all in bytes from the module start.
 * Read the payload with `bytes.subarray(dataOffset, dataOffset + dataLength)`.
 *
 * Fails with a `WasmBinaryError` on a bad magic/version, an unknown section
 * id, a section size past the end of the module, or a custom section name
 * that is not valid UTF-8 or overruns its section. Other sections are not
 * decoded (use `readModule` for that).
 */
export const customSections = (bytes: Uint8Array): ReadResult<ReadonlyArray<CustomSection>> =>
  run(bytes, (sections) => sections.flatMap((s) => (s.custom === undefined ? [] : [s.custom])))

/**
 * A copy of the module without any custom section named `name` (exact,
 * case-sensitive match). Every other byte is kept as is, in order. Fails like
 * `customSections`.
 */
export const removeCustomSections = (bytes: Uint8Array, name: string): ReadResult<Uint8Array<ArrayBuffer>> =>
  run(bytes, (sections) => {
    const kept = sections.filter((s) => s.custom?.name !== name)
    const w = new ByteWriter(bytes.length)
    w.bytes(bytes.subarray(0, 8))
    for (const s of kept) w.bytes(bytes.subarray(s.raw.offset, s.raw.end))
    return w.finish()
  })

/**
 * Encodes one custom section (§5.5.3): id `0x00`, u32 LEB128 size, the name
 * (u32 LEB128 byte length + UTF-8), then `payload`.
 *
 * @example
 * encodeCustomSection("a", new Uint8Array([1])) // → [0x00, 0x03, 0x01, 0x61, 0x01]
 */
export const encodeCustomSection = (name: string, payload: Uint8Array): Uint8Array<ArrayBuffer> => {
  const body = new ByteWriter(payload.length + name.length + 8)
  body.name(name).bytes(payload)
  const w = new ByteWriter(body.size + 6)
  return w.u8(0).u32(body.size).bytes(body.view()).finish()
}

/**
 * A copy of the module with a custom section `name` carrying `payload`
 * appended after its last section (custom sections may appear anywhere,
 * §5.5.16, so the result is a valid module whenever the input is). The input's
 * section framing is checked first; fails like `customSections`.
 */
export const appendCustomSection = (
  bytes: Uint8Array,
  name: string,
  payload: Uint8Array
): ReadResult<Uint8Array<ArrayBuffer>> =>
  run(bytes, () => {
    const section = encodeCustomSection(name, payload)
    const out = new Uint8Array(bytes.length + section.length)
    out.set(bytes, 0)
    out.set(section, bytes.length)
    return out
  })
