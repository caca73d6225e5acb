/**
 * The paged snapshot layout (schema versions 4–7): a snapshot is stored as a
 * header row — the snapshot without its pages (metadata, `memoryBytes`,
 * globals) as the binary header of `header.ts` (version 7) or as
 * `SnapshotCodec` bytes (versions 4–6, and where the binary header cannot
 * vouch for a snapshot) — plus one row per non-zero 64 KiB
 * page, each with a hash of its raw bytes and its bytes (compression on):
 * as runs of one repeated 32-bit word when they are few (a filled page;
 * version 5), else as its non-zero runs when they are small, else deflated
 * when that is smaller; else raw (and always raw with compression off).
 *
 * Hashes (schema version 7: every hash covers the row's page index, so a row
 * moved to another index is corruption): SHA-1 (20 bytes) of the page then
 * its index for deflated and raw rows — their change detection compares it;
 * for the two run forms and for patches a 64-bit word-wise hash of the row's
 * stored bytes seeded by the index (8 bytes, `storedHash`: a few dozen bytes
 * to hash instead of 64 KiB), whose change detection compares the page with
 * the stored runs byte for byte (`unchanged`) — an 8-byte hash is only an
 * integrity check, never a reason to skip a write. Loads check every row
 * against its hash (by its length); a mismatch is corruption. Migration 7
 * re-hashes the rows of versions 4–6 (`Legacy`).
 *
 * Patches (schema version 6): a page row in one of the two run forms (fills,
 * non-zero runs) may have one patch row — the runs of words where the page now differs from the
 * row's page (`patchAgainst`), written over it on load (`writeRuns`) — so a
 * delta save that changed a few hundred bytes of a 13 KB run-form page
 * writes a patch of about that size instead of the whole row. A patch is
 * always against its page row, never against another patch (a load reads at
 * most two rows per page); one past `PATCH_LIMIT` bytes makes the page a row
 * of its own again and drops its patch.
 *
 * @internal
 */
import type { InstanceSnapshot } from "@agent-runtime/domain"
import * as crypto from "node:crypto"
import * as zlib from "node:zlib"

/** Bytes of a WebAssembly page (64 KiB). */
export const PAGE = 65_536

/** The page index as 4 little-endian bytes: hashed after a page, so a row moved to another index fails its check. */
const indexBytes = (index: number): Buffer => {
  const b = Buffer.allocUnsafe(4)
  b.writeUInt32LE(index >>> 0, 0)
  return b
}

/**
 * SHA-1 (20 bytes) of a page's raw bytes followed by its index (u32
 * little-endian; schema version 7): the hash of deflated and raw page rows,
 * compared to detect changes, and checked on load — a row moved to another
 * page index no longer matches.
 */
export const pageHash = (data: Uint8Array, index: number): Buffer =>
  crypto.createHash("sha1").update(data).update(indexBytes(index)).digest()

/** The page's bytes as 16,384 little-endian 32-bit words (copied only when `data` is not 4-byte aligned). */
const wordsOf = (data: Uint8Array): Uint32Array => {
  const aligned = data.byteOffset % 4 === 0 ? data : new Uint8Array(data) // a copy (a Buffer's `slice` is a view)
  return new Uint32Array(aligned.buffer, aligned.byteOffset, PAGE / 4)
}

const FNV = 0x01000193

/**
 * A 64-bit hash (8 bytes) of a row's stored bytes and its page index
 * (schema version 7; the run forms and patch rows): two FNV-style lanes
 * seeded by the index, over the bytes as little-endian 32-bit words — one
 * forwards, one backwards, each word's product folded down (`x ^ x >>> 13`)
 * so every input bit reaches every lane bit — then the tail bytes and the
 * length. Not cryptographic: it detects a damaged row, and a row moved to
 * another page index, on load; change detection compares the page with the
 * stored runs byte for byte (`unchanged`), never this hash. A word at a time:
 * a 13 KB row costs about a quarter of a byte-wise FNV.
 */
export const storedHash = (stored: Uint8Array, index: number): Buffer => {
  let a = Math.imul(0x811c9dc5 ^ index, FNV)
  let b = Math.imul(0x9e3779b9 ^ index, FNV)
  const n = stored.length
  const count = n >>> 2
  const aligned = stored.byteOffset % 4 === 0 ? stored : new Uint8Array(stored) // a copy (a Buffer's `slice` is a view)
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, count)
  for (let i = 0; i < count; i++) {
    a = Math.imul(a ^ words[i]!, FNV)
    a ^= a >>> 13
    b = Math.imul(b ^ words[count - 1 - i]!, FNV) ^ i
    b ^= b >>> 13
  }
  for (let i = count * 4; i < n; i++) {
    a = Math.imul(a ^ stored[i]!, FNV)
    b = Math.imul(b ^ stored[i]!, FNV)
  }
  a = Math.imul(a ^ n, FNV)
  b = Math.imul(b ^ n, FNV)
  a ^= a >>> 15
  b ^= b >>> 15
  const out = Buffer.allocUnsafe(8)
  out.writeInt32LE(a, 0)
  out.writeInt32LE(b, 4)
  return out
}

/**
 * Whether a row's `hash` fits it at page `index`: 20 bytes, `pageHash` of
 * the decoded page `data`; 8 bytes (run forms), the `storedHash` of its
 * `stored` bytes.
 */
export const hashMatches = (data: Uint8Array, stored: Uint8Array, hash: Uint8Array, index: number): boolean =>
  hash.length === 8 ? storedHash(stored, index).equals(hash) : pageHash(data, index).equals(hash)

/**
 * The hashes rows had up to schema version 6 (no page index in them: SHA-1
 * of the page; a byte-wise FNV pair over the stored bytes), checked only by
 * migration 7, which hashes every row that still matches them again with
 * `pageHash` / `storedHash`.
 */
export const Legacy = {
  pageHash: (data: Uint8Array): Buffer => crypto.createHash("sha1").update(data).digest(),
  storedHash: (stored: Uint8Array): Buffer => {
    let a = 0x811c9dc5 | 0
    let b = 0x9e3779b9 | 0
    const n = stored.length
    for (let i = 0; i < n; i++) {
      a = Math.imul(a ^ stored[i]!, FNV)
      b = Math.imul(b ^ stored[n - 1 - i]!, FNV) ^ i
    }
    const out = Buffer.allocUnsafe(8)
    out.writeInt32LE(a, 0)
    out.writeInt32LE(b, 4)
    return out
  }
}

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

/** Words (4 bytes) per block that the scans skip with one native compare when the whole block is equal (1 KiB). */
const BLOCK_WORDS = 256

/** Words per big block (8 KiB), tried first where one starts: a mostly-equal page needs fewer native compares. */
const BIG_BLOCK_WORDS = 2048

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
    // zero words skipped a block at a time by a native compare where a whole block is zero
    while (w < words.length) {
      if ((w & (BLOCK_WORDS - 1)) === 0) {
        // a big block first (8 KiB), then a small one (1 KiB): each native compare has a fixed cost
        if ((w & (BIG_BLOCK_WORDS - 1)) === 0 && bytesEqual(data, w * 4, ZEROS, 0, BIG_BLOCK_WORDS * 4)) {
          w += BIG_BLOCK_WORDS
          continue
        }
        if (bytesEqual(data, w * 4, ZEROS, 0, BLOCK_WORDS * 4)) {
          w += BLOCK_WORDS
          continue
        }
      }
      if (words[w] !== 0) break
      w++
    }
    if (w >= words.length) break
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
export const fromRuns = (index: number, stored: Uint8Array): Uint8Array =>
  writeRuns(new Uint8Array(PAGE), index, stored)

/**
 * Writes runs (`Stored.runs`' form: per run u32 offset, u32 length, the
 * bytes; in increasing order, not overlapping) over `page` (64 KiB) and
 * returns it; throws a reason (string) when they are malformed. A page row's
 * runs go onto a zero page, a patch's onto its page row's page.
 */
export const writeRuns = (page: Uint8Array, index: number, stored: Uint8Array): Uint8Array => {
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
 * The largest patch (bytes) a delta save writes instead of its page's row
 * (and at most half of the row it patches, `patchLimit`): 3,968 bytes, so a
 * patch row with its key and hash stays inside one cell of its table's
 * B-tree leaf (a rowid table holds up to 4,061 bytes in a cell on 4 KiB
 * pages; schema version 7) and is written in place, without overflow pages.
 */
export const PATCH_LIMIT = 4096 - 128

/**
 * Rows below this many bytes get no patch: they fit in SQLite's B-tree page
 * next to their key (no overflow page), so writing them again costs no more
 * than a patch row would.
 */
export const PATCH_MIN_ROW = 1024

/** The largest patch worth writing over a run-form row of `rowBytes` bytes; 0 for a row too small to patch. */
export const patchLimit = (rowBytes: number): number =>
  rowBytes < PATCH_MIN_ROW ? 0 : Math.min(PATCH_LIMIT, rowBytes >>> 1)

/** A scratch page: a patch's base page decoded (`patchAgainst`). */
const baseScratch = new Uint8Array(PAGE)
const baseWords = new Uint32Array(baseScratch.buffer)
/** Scratch of `patchAgainst`: [startWord, endWord) per run. */
const patchRuns = new Uint32Array(PAGE / 4)

/** Whether a row's stored form may carry a patch: the two run forms (`Stored.runs`, `Stored.fills`). */
export const patchable = (compressed: number): boolean => compressed === Stored.runs || compressed === Stored.fills

/**
 * A patch of `data` (a 64 KiB page) against a run-form page row `base` (`patchable`)
 * (schema version 6): the runs of words where `data` differs from the
 * row's page, in `Stored.runs`' form (u32 byte offset, u32 byte length, the
 * bytes of `data`; shorter equal gaps than `GAP_WORDS` stay inside a run),
 * so the page is the row's page with the patch written over it
 * (`writeRuns`). Empty (0 bytes) when `data` is the row's page;
 * `undefined` when the patch would take more than `limit` bytes (the page
 * is then written as a row of its own). One word compare per word of the
 * page, no allocation but the patch. Throws a reason (string) when `base`'s
 * runs are malformed.
 */
export const patchAgainst = (data: Uint8Array, base: PageWrite, limit: number): Uint8Array | undefined => {
  if (base.compressed === Stored.fills) writeFills(baseScratch, base.index, base.data)
  else {
    baseScratch.fill(0)
    writeRuns(baseScratch, base.index, base.data)
  }
  const words = wordsOf(data)
  const old = baseWords
  let runs = 0
  let size = 0
  let w = 0
  const n = words.length
  while (w < n) {
    // equal words skipped a block at a time by a native compare where a whole block is equal
    while (w < n) {
      if ((w & (BLOCK_WORDS - 1)) === 0) {
        if ((w & (BIG_BLOCK_WORDS - 1)) === 0 && bytesEqual(data, w * 4, baseScratch, w * 4, BIG_BLOCK_WORDS * 4)) {
          w += BIG_BLOCK_WORDS
          continue
        }
        if (bytesEqual(data, w * 4, baseScratch, w * 4, BLOCK_WORDS * 4)) {
          w += BLOCK_WORDS
          continue
        }
      }
      if (words[w] !== old[w]) break
      w++
    }
    if (w >= n) break
    const start = w
    let end = w
    while (w < n) {
      if (words[w] !== old[w]) end = ++w
      else if (w - end >= GAP_WORDS) break
      else w++
    }
    patchRuns[2 * runs] = start
    patchRuns[2 * runs + 1] = end
    runs++
    size += 8 + (end - start) * 4
    if (size > limit) return undefined
  }
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let at = 0
  for (let r = 0; r < runs; r++) {
    const from = patchRuns[2 * r]! * 4
    const length = patchRuns[2 * r + 1]! * 4 - from
    view.setUint32(at, from, true)
    view.setUint32(at + 4, length, true)
    out.set(data.subarray(from, from + length), at + 8)
    at += 8 + length
  }
  return out
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
  if (oneWord(data)) {
    // one run over the whole page (the usual filled page): found by one native compare, not a word loop
    const out = new Uint8Array(8)
    const view = new DataView(out.buffer)
    view.setUint32(0, words.length, true)
    view.setUint32(4, words[0]!, true)
    return out
  }
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

/** Whether a 64 KiB page is one 32-bit word repeated: the page equals itself shifted by one word (one memcmp). */
const oneWord = (data: Uint8Array): boolean => bytesEqual(data, 0, data, 4, PAGE - 4)

/** Scratch of `fills`: (count, word) per run. */
const fillScratch = new Uint32Array(2 * MAX_FILLS)

/** A page back from its fills; throws a reason (string) when they are malformed. */
export const fromFills = (index: number, stored: Uint8Array): Uint8Array =>
  writeFills(new Uint8Array(PAGE), index, stored)

/** Writes fills over the whole of `page` (64 KiB, 4-byte aligned) and returns it; throws a reason (string) when they are malformed. */
const writeFills = (page: Uint8Array, index: number, stored: Uint8Array): Uint8Array => {
  const words = new Uint32Array(page.buffer, page.byteOffset, PAGE / 4)
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
    if (filled !== undefined) return { index, hash: storedHash(filled, index), compressed: Stored.fills, data: filled }
    const runs = zeroRuns(data)
    if (runs !== undefined) return { index, hash: storedHash(runs, index), compressed: Stored.runs, data: runs }
    const deflated = zlib.deflateRawSync(data, { level: 1 })
    if (deflated.length < data.length)
      return { index, hash: pageHash(data, index), compressed: Stored.deflate, data: deflated }
  }
  return { index, hash: pageHash(data, index), compressed: Stored.raw, data: data.slice() }
}

/** A 64 KiB run of zero bytes, compared against (never written). */
const ZEROS = Buffer.alloc(PAGE)

/** `Buffer.prototype.compare`, called on plain `Uint8Array`s with ranges: a native compare that allocates nothing. */
const compareRanges = Buffer.prototype.compare as (
  this: Uint8Array,
  target: Uint8Array,
  targetStart: number,
  targetEnd: number,
  sourceStart: number,
  sourceEnd: number
) => number

/** Whether `a[aFrom, aFrom + length)` equals `b[bFrom, bFrom + length)` (one memcmp, no views allocated). */
const bytesEqual = (a: Uint8Array, aFrom: number, b: Uint8Array, bFrom: number, length: number): boolean =>
  compareRanges.call(a, b, bFrom, bFrom + length, aFrom, aFrom + length) === 0

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
  if (isPatched(stored)) return false // compared through `patchAgainst` only
  if (stored.compressed === Stored.fills) {
    const words = wordsOf(data)
    const view = new DataView(stored.data.buffer, stored.data.byteOffset, stored.data.byteLength)
    // one run over the whole page: its first word and one native compare of the page with itself shifted
    if (stored.data.length === 8 && view.getUint32(0, true) === words.length)
      return words[0] === view.getUint32(4, true) && oneWord(data)
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
  return stored.hash.length === 20 && pageHash(data, stored.index).equals(stored.hash)
}

/**
 * A run-form page row (fills or non-zero runs) with its patch row (schema
 * version 6): the page is the row's page (`data`) with the patch's runs (`patch`, `Stored.runs`' form,
 * hashed by `storedHash` as `patchHash`) written over them.
 */
export interface PatchedPage extends PageWrite {
  readonly patch: Uint8Array
  readonly patchHash: Buffer
}

/** Whether a known row has a patch row. */
export const isPatched = (page: PageWrite | SavedHash): page is PatchedPage =>
  (page as Partial<PatchedPage>).patch !== undefined

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
 * functions of the page's bytes). An 8-byte hash alone never says so, nor
 * does anything for a row with a patch (`isPatched`: its page is not its bytes).
 */
export const sameRow = (a: PageWrite | SavedHash, b: PageWrite | SavedHash): boolean =>
  !isPatched(a) &&
  !isPatched(b) &&
  ((a.hash.length === 20 && a.hash.equals(b.hash)) ||
    (a.compressed >= Stored.runs &&
      a.compressed === b.compressed &&
      Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength).equals(b.data)))

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

/** A patch row as stored (schema version 6): the runs written over its page row's page, and their `storedHash`. */
export interface PatchRow {
  readonly page_index: number
  readonly hash: Uint8Array
  readonly data: Uint8Array
}

/**
 * The pages of a paged row back as `EngineState.pages`, checked: `expected`
 * rows in increasing index order inside `memoryBytes`, each 64 KiB once
 * decoded and hashing to its stored hash (`hashMatches`); then the
 * `expectedPatches` patch rows, each on a run-form page row's page, hashing
 * to its stored hash (`storedHash`) and well-formed, written over their
 * pages (`writeRuns`). Throws a reason (string) otherwise.
 */
export const readPages = (
  rows: ReadonlyArray<PageRow>,
  expected: number,
  memoryBytes: number,
  patches: ReadonlyArray<PatchRow> = [],
  expectedPatches = 0
): Array<{ index: number; data: Uint8Array }> => {
  if (rows.length !== expected) throw `the header row says ${expected} pages, ${rows.length} page rows found`
  if (patches.length !== expectedPatches)
    throw `the header row says ${expectedPatches} page patches, ${patches.length} patch rows found`
  const pages = readRows(rows, memoryBytes)
  if (patches.length === 0) return pages
  const byIndex = new Map(pages.map((p, i) => [p.index, i]))
  for (const patch of patches) {
    if (!(patch.data instanceof Uint8Array) || !(patch.hash instanceof Uint8Array))
      throw `the patch of page ${patch.page_index} is not a BLOB`
    const at = byIndex.get(patch.page_index)
    if (at === undefined || !patchable(rows[at]!.compressed))
      throw `the patch of page ${patch.page_index} has no run-form page row under it`
    if (patch.hash.length !== 8 || !storedHash(patch.data, patch.page_index).equals(patch.hash))
      throw `the patch of page ${patch.page_index} does not match its hash (corrupt)`
    writeRuns(pages[at]!.data, patch.page_index, patch.data)
  }
  return pages
}

const readRows = (rows: ReadonlyArray<PageRow>, memoryBytes: number): Array<{ index: number; data: Uint8Array }> =>
  rows.map((row) => {
    if (!(row.data instanceof Uint8Array) || !(row.hash instanceof Uint8Array))
      throw `page ${row.page_index} is not a BLOB`
    if ((row.page_index + 1) * PAGE > memoryBytes)
      throw `page ${row.page_index} lies outside ${memoryBytes} bytes of memory`
    const data = decodeRow(row.page_index, row.compressed, row.data)
    if (!hashMatches(data, row.data, row.hash, row.page_index))
      throw `page ${row.page_index} does not match its hash (corrupt)`
    return { index: row.page_index, data }
  })

/** A page row's 64 KiB page from its stored form (`Stored`); throws a reason (string) when it does not decode. */
export const decodeRow = (index: number, compressed: number, stored: Uint8Array): Uint8Array => {
  let data: Uint8Array
  if (compressed === Stored.runs) data = fromRuns(index, stored)
  else if (compressed === Stored.fills) data = fromFills(index, stored)
  else if (compressed === Stored.deflate) {
    try {
      data = new Uint8Array(zlib.inflateRawSync(stored))
    } catch (e) {
      throw `page ${index} does not inflate: ${e instanceof Error ? e.message : String(e)}`
    }
  } else if (compressed === Stored.raw) data = new Uint8Array(stored)
  else throw `page ${index} is stored in an unknown form ${compressed}`
  if (data.length !== PAGE) throw `page ${index} has ${data.length} bytes, expected ${PAGE}`
  return data
}
