/**
 * The paged snapshot layout (schema versions 4–5): a snapshot is stored as a
 * header row — the `SnapshotCodec` bytes of the snapshot without its pages
 * (metadata, `memoryBytes`, globals) — plus one row per non-zero 64 KiB
 * page, each with a hash of its raw bytes and its bytes (compression on):
 * as runs of one repeated 32-bit word when they are few (a filled page;
 * version 5), else as its non-zero runs when they are small, else deflated
 * when that is smaller; else raw (and always raw with compression off).
 *
 * Hashes: SHA-1 (20 bytes) of the page for deflated and raw rows — their
 * change detection compares it; for the two run forms a 64-bit FNV-style
 * hash of the row's stored bytes (8 bytes, `storedHash`: a few dozen bytes
 * to hash instead of 64 KiB), whose change detection compares the page with
 * the stored runs byte for byte (`unchanged`) — an 8-byte hash is only an
 * integrity check, never a reason to skip a write. Loads check every row
 * against its hash (by its length); a mismatch is corruption.
 *
 * @internal
 */
import type { InstanceSnapshot } from "@agent-runtime/domain"
import * as crypto from "node:crypto"
import * as zlib from "node:zlib"

/** Bytes of a WebAssembly page (64 KiB). */
export const PAGE = 65_536

/** SHA-1 of a page's raw bytes (20 bytes): the hash of deflated and raw page rows, compared to detect changes. */
export const pageHash = (data: Uint8Array): Buffer => crypto.createHash("sha1").update(data).digest()

/** The page's bytes as 16,384 little-endian 32-bit words (copied only when `data` is not 4-byte aligned). */
const wordsOf = (data: Uint8Array): Uint32Array => {
  const aligned = data.byteOffset % 4 === 0 ? data : data.slice()
  return new Uint32Array(aligned.buffer, aligned.byteOffset, PAGE / 4)
}

/**
 * A 64-bit hash of a row's stored bytes (8 bytes; the run forms, at most a
 * quarter of a page and usually a few dozen bytes): two FNV-1a lanes over
 * the bytes, one forwards and one backwards. Not cryptographic: it detects
 * corruption of the row on load; change detection compares the page with
 * the stored runs byte for byte (`unchanged`), never this hash.
 */
export const storedHash = (stored: Uint8Array): Buffer => {
  let a = 0x811c9dc5 | 0
  let b = 0x9e3779b9 | 0
  const n = stored.length
  for (let i = 0; i < n; i++) {
    a = Math.imul(a ^ stored[i]!, 0x01000193)
    b = Math.imul(b ^ stored[n - 1 - i]!, 0x01000193) ^ i
  }
  const out = Buffer.allocUnsafe(8)
  out.writeInt32LE(a, 0)
  out.writeInt32LE(b, 4)
  return out
}

/**
 * Whether a row's `hash` fits it: 20 bytes, the SHA-1 of the decoded page
 * `data`; 8 bytes (run forms), the `storedHash` of its `stored` bytes.
 */
export const hashMatches = (data: Uint8Array, stored: Uint8Array, hash: Uint8Array): boolean =>
  hash.length === 8 ? storedHash(stored).equals(hash) : pageHash(data).equals(hash)

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
  runs: 2,
  /** Runs of one repeated 32-bit word (schema version 5): per run u32 count of words, u32 word (little-endian); 16,384 words in all. */
  fills: 3
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
  const words = wordsOf(data)
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

/** At most this many fills (8 bytes each) make a page's `Stored.fills` form: a 16th of the page. */
const MAX_FILLS = PAGE / 8 / 16

/**
 * The runs of one repeated word of a page (`Stored.fills`): a filled page
 * (a heap or buffer set to one byte) is a handful of them. `undefined` when
 * there are more than `MAX_FILLS`.
 */
export const fills = (data: Uint8Array): Uint8Array | undefined => {
  const words = wordsOf(data)
  // one pass: each run's (count, word) into a scratch of MAX_FILLS pairs, given up past that
  const scratch = fillScratch
  let runs = 0
  let start = 0
  let value = words[0]!
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!
    if (w === value) continue
    if (runs === MAX_FILLS - 1) return undefined // this run and the last one make more than MAX_FILLS
    scratch[2 * runs] = i - start
    scratch[2 * runs + 1] = value
    runs++
    start = i
    value = w
  }
  scratch[2 * runs] = words.length - start
  scratch[2 * runs + 1] = value
  runs++
  const out = new Uint8Array(runs * 8)
  const view = new DataView(out.buffer)
  for (let r = 0; r < runs; r++) {
    view.setUint32(8 * r, scratch[2 * r]!, true)
    view.setUint32(8 * r + 4, scratch[2 * r + 1]!, true)
  }
  return out
}

/** Scratch of `fills`: (count, word) per run. */
const fillScratch = new Uint32Array(2 * MAX_FILLS)

/** A page back from its fills; throws a reason (string) when they are malformed. */
export const fromFills = (index: number, stored: Uint8Array): Uint8Array => {
  const page = new Uint8Array(PAGE)
  const words = new Uint32Array(page.buffer)
  if (stored.length % 8 !== 0) throw `page ${index}: a fill is truncated`
  const view = new DataView(stored.buffer, stored.byteOffset, stored.byteLength)
  let w = 0
  for (let at = 0; at < stored.length; at += 8) {
    const count = view.getUint32(at, true)
    if (count === 0 || w + count > words.length) throw `page ${index}: a fill lies outside the page`
    words.fill(view.getUint32(at + 4, true), w, w + count)
    w += count
  }
  if (w !== words.length) throw `page ${index}: its fills cover ${w} of ${words.length} words`
  return page
}

/**
 * The stored form of a page: with `compress`, its fills when they are few,
 * else its non-zero runs when they are small (a quarter of the page at
 * most), else DEFLATE at level 1 (pages are written after every call) when
 * that is smaller; raw otherwise (a copy: the row may be written after the
 * caller's bytes changed). The run forms carry a `storedHash` of their
 * bytes, the others the page's SHA-1 (`pageHash`).
 */
export const storedPage = (index: number, data: Uint8Array, compress: boolean): PageWrite => {
  if (compress) {
    const filled = fills(data)
    if (filled !== undefined) return { index, hash: storedHash(filled), compressed: Stored.fills, data: filled }
    const runs = zeroRuns(data)
    if (runs !== undefined) return { index, hash: storedHash(runs), compressed: Stored.runs, data: runs }
    const deflated = zlib.deflateRawSync(data, { level: 1 })
    if (deflated.length < data.length)
      return { index, hash: pageHash(data), compressed: Stored.deflate, data: deflated }
  }
  return { index, hash: pageHash(data), compressed: Stored.raw, data: data.slice() }
}

/** A 64 KiB run of zero bytes, compared against (never written). */
const ZEROS = Buffer.alloc(PAGE)

const bytesEqual = (a: Uint8Array, aFrom: number, b: Uint8Array, bFrom: number, length: number): boolean =>
  Buffer.from(a.buffer, a.byteOffset + aFrom, length).equals(Buffer.from(b.buffer, b.byteOffset + bFrom, length))

/**
 * Whether `data` (a 64 KiB page) holds exactly what `stored` holds, decided
 * without hashing the page when it can: the run forms are compared byte for
 * byte (memcmp over the runs and the zero gaps; a word loop over the fills);
 * deflated and raw rows by their SHA-1. `false` when it cannot tell (an
 * 8-byte hash without the row's bytes): the page is written again.
 */
export const unchanged = (data: Uint8Array, stored: PageWrite | SavedHash): boolean => {
  try {
    return compare(data, stored)
  } catch {
    return false // a malformed row read back: written again
  }
}

const compare = (data: Uint8Array, stored: PageWrite | SavedHash): boolean => {
  if (stored.compressed === Stored.fills) {
    const words = wordsOf(data)
    const view = new DataView(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength)
    let w = 0
    for (let at = 0; at < stored.data.length; at += 8) {
      const end = w + view.getUint32(at, true)
      if (end > words.length) return false
      const value = view.getUint32(at + 4, true)
      for (; w < end; w++) if (words[w] !== value) return false
    }
    return w === words.length
  }
  if (stored.compressed === Stored.runs) {
    const view = new DataView(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength)
    let next = 0
    for (let at = 0; at < stored.data.length; ) {
      const from = view.getUint32(at, true)
      const length = view.getUint32(at + 4, true)
      if (from < next || from + length > PAGE) return false
      if (!bytesEqual(data, next, ZEROS, 0, from - next)) return false
      if (!bytesEqual(data, from, stored.data, at + 8, length)) return false
      next = from + length
      at += 8 + length
    }
    return bytesEqual(data, next, ZEROS, 0, PAGE - next)
  }
  return stored.hash.length === 20 && pageHash(data).equals(stored.hash)
}

/** What is known of a page row when only its hash was read (another writer's row): compared by SHA-1 only. */
export interface SavedHash {
  readonly index: number
  readonly hash: Buffer
  readonly compressed: -1
  readonly data: Uint8Array
}

/** The known form of a stored page row: its bytes kept only for the small run forms, else its hash only. */
export const known = (page: PageWrite): PageWrite | SavedHash =>
  page.compressed === Stored.fills || page.compressed === Stored.runs ? page : hashOnly(page.index, page.hash)

const EMPTY = new Uint8Array(0)

/**
 * Whether two known rows hold the same page: equal SHA-1s (20 bytes), or the
 * same run form with the same stored bytes (`fills` and `zeroRuns` are
 * functions of the page's bytes). An 8-byte hash alone never says so.
 */
export const sameRow = (a: PageWrite | SavedHash, b: PageWrite | SavedHash): boolean =>
  (a.hash.length === 20 && a.hash.equals(b.hash)) ||
  (a.compressed >= Stored.runs &&
    a.compressed === b.compressed &&
    Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(b.data))

/** What is known of a row read back: its bytes for the run forms (as read), else its hash only. */
export const knownRow = (row: PageRow): PageWrite | SavedHash =>
  known({ index: row.page_index, hash: Buffer.from(row.hash), compressed: row.compressed, data: row.data })

/** A row known by its hash only (read back without its bytes). */
export const hashOnly = (index: number, hash: Uint8Array): SavedHash => ({
  index,
  hash: Buffer.from(hash),
  compressed: -1,
  data: EMPTY
})

/** The snapshot without its pages: what the header row's codec bytes hold. */
export const withoutPages = (snapshot: InstanceSnapshot): InstanceSnapshot => ({
  ...snapshot,
  state: { ...snapshot.state, pages: [] }
})

/**
 * The pages of a paged row back as `EngineState.pages`, checked: `expected`
 * rows in increasing index order inside `memoryBytes`, each 64 KiB once
 * decoded and hashing to its stored hash (`hashMatches`). Throws a reason (string) otherwise.
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
    else if (row.compressed === Stored.fills) data = fromFills(row.page_index, row.data)
    else if (row.compressed === Stored.deflate) {
      try {
        data = new Uint8Array(zlib.inflateRawSync(row.data))
      } catch (e) {
        throw `page ${row.page_index} does not inflate: ${e instanceof Error ? e.message : String(e)}`
      }
    } else if (row.compressed === Stored.raw) data = new Uint8Array(row.data)
    else throw `page ${row.page_index} is stored in an unknown form ${row.compressed}`
    if (data.length !== PAGE) throw `page ${row.page_index} has ${data.length} bytes, expected ${PAGE}`
    if (!hashMatches(data, row.data, row.hash)) throw `page ${row.page_index} does not match its hash (corrupt)`
    return { index: row.page_index, data }
  })
}
