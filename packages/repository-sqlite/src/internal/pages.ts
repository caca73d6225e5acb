/**
 * The paged snapshot layout (schema version 4): a snapshot is stored as a
 * header row — the `SnapshotCodec` bytes of the snapshot without its pages
 * (metadata, `memoryBytes`, globals) — plus one row per non-zero 64 KiB
 * page, each with the SHA-1 of its raw bytes and its bytes: as its non-zero
 * runs when they are small, else deflated when that is smaller (compression
 * on), else raw. A save compares the new pages'
 * hashes with those of the last save it made (kept per agent in memory, or
 * read back from the page rows) and writes only the pages that changed,
 * deletes the ones that became zero, and replaces the header row.
 *
 * The page hashes are also checked on load: a page row whose bytes do not
 * hash to its stored hash is corrupt.
 *
 * @internal
 */
import type { InstanceSnapshot } from "@agent-runtime/domain"
import * as crypto from "node:crypto"
import * as zlib from "node:zlib"

/** Bytes of a WebAssembly page (64 KiB). */
export const PAGE = 65_536

/** SHA-1 of a page's raw bytes (20 bytes): the key of dirty-page detection, checked again on load. */
export const pageHash = (data: Uint8Array): Buffer => crypto.createHash("sha1").update(data).digest()

/** A page row as stored. */
export interface PageRow {
  readonly page_index: number
  readonly hash: Uint8Array
  readonly compressed: number
  readonly data: Uint8Array
}

/** How a page row's bytes are stored (the `compressed` column). */
export const Stored = {
  /** The 64 KiB page as is. */
  raw: 0,
  /** Raw DEFLATE (RFC 1951, `node:zlib`). */
  deflate: 1,
  /** Its non-zero runs: per run u32 offset, u32 length (little-endian), the bytes; runs in increasing order. */
  runs: 2
} as const

/** A page to write: its index, hash, how its bytes are stored, and those bytes. */
export interface PageWrite {
  readonly index: number
  readonly hash: Buffer
  readonly compressed: number
  readonly data: Uint8Array
}

/** Zero words (4 bytes each) that end a run: shorter gaps stay inside it (a run header is 8 bytes). */
const GAP_WORDS = 4

/**
 * The non-zero runs of a page (`Stored.runs`): a scan of its 16,384 words,
 * far cheaper than DEFLATE, and the usual page of an agent (a stack, a data
 * segment, a heap in use) is mostly zero. `undefined` when the runs take more
 * than a quarter of the page.
 */
export const zeroRuns = (data: Uint8Array): Uint8Array | undefined => {
  const aligned = data.byteOffset % 4 === 0 ? data : data.slice()
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, PAGE / 4)
  const runs: Array<number> = [] // [startWord, endWord) pairs
  let w = 0
  while (w < words.length) {
    while (w < words.length && words[w] === 0) w++
    if (w === words.length) break
    const start = w
    let end = w
    while (w < words.length) {
      if (words[w] !== 0) end = ++w
      else if (w - end >= GAP_WORDS) break
      else w++
    }
    runs.push(start, end)
  }
  let size = 0
  for (let i = 0; i < runs.length; i += 2) size += 8 + (runs[i + 1]! - runs[i]!) * 4
  if (size > PAGE / 4) return undefined
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let at = 0
  for (let i = 0; i < runs.length; i += 2) {
    const from = runs[i]! * 4
    const length = runs[i + 1]! * 4 - from
    view.setUint32(at, from, true)
    view.setUint32(at + 4, length, true)
    out.set(data.subarray(from, from + length), at + 8)
    at += 8 + length
  }
  return out
}

/** A page back from its runs; throws a reason (string) when they are malformed. */
export const fromRuns = (index: number, stored: Uint8Array): Uint8Array => {
  const page = new Uint8Array(PAGE)
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength)
  let at = 0
  let next = 0
  while (at < stored.length) {
    if (at + 8 > stored.length) throw `page ${index}: a run header is truncated`
    const from = view.getUint32(at, true)
    const length = view.getUint32(at + 4, true)
    if (from < next || from + length > PAGE || at + 8 + length > stored.length)
      throw `page ${index}: a run lies outside the page or overlaps`
    page.set(stored.subarray(at + 8, at + 8 + length), from)
    next = from + length
    at += 8 + length
  }
  return page
}

/**
 * The stored form of a page when `compress`: its non-zero runs when they are
 * small (a quarter of the page at most), else DEFLATE at level 1 (pages are
 * written after every call) when that is smaller; raw otherwise.
 */
export const storedPage = (index: number, hash: Buffer, data: Uint8Array, compress: boolean): PageWrite => {
  if (compress) {
    const runs = zeroRuns(data)
    if (runs !== undefined) return { index, hash, compressed: Stored.runs, data: runs }
    const deflated = zlib.deflateRawSync(data, { level: 1 })
    if (deflated.length < data.length) return { index, hash, compressed: Stored.deflate, data: deflated }
  }
  return { index, hash, compressed: Stored.raw, data }
}

/** The snapshot without its pages: what the header row's codec bytes hold. */
export const withoutPages = (snapshot: InstanceSnapshot): InstanceSnapshot => ({
  ...snapshot,
  state: { ...snapshot.state, pages: [] }
})

/**
 * The pages of a paged row back as `EngineState.pages`, checked: `expected`
 * rows in increasing index order inside `memoryBytes`, each 64 KiB once
 * inflated and hashing to its stored hash. Throws a reason (string) otherwise.
 */
export const readPages = (
  rows: ReadonlyArray<PageRow>,
  expected: number,
  memoryBytes: number
): Array<{ index: number; data: Uint8Array }> => {
  if (rows.length !== expected) throw `the header row says ${expected} pages, ${rows.length} page rows found`
  return rows.map((row) => {
    if (!(row.data instanceof Uint8Array) || !(row.hash instanceof Uint8Array))
      throw `page ${row.page_index} is not a BLOB`
    if ((row.page_index + 1) * PAGE > memoryBytes)
      throw `page ${row.page_index} lies outside ${memoryBytes} bytes of memory`
    let data: Uint8Array
    if (row.compressed === Stored.runs) data = fromRuns(row.page_index, row.data)
    else if (row.compressed === Stored.deflate) {
      try {
        data = new Uint8Array(zlib.inflateRawSync(row.data))
      } catch (e) {
        throw `page ${row.page_index} does not inflate: ${e instanceof Error ? e.message : String(e)}`
      }
    } else if (row.compressed === Stored.raw) data = new Uint8Array(row.data)
    else throw `page ${row.page_index} is stored in an unknown form ${row.compressed}`
    if (data.length !== PAGE) throw `page ${row.page_index} has ${data.length} bytes, expected ${PAGE}`
    if (!pageHash(data).equals(row.hash)) throw `page ${row.page_index} does not match its hash (corrupt)`
    return { index: row.page_index, data }
  })
}
