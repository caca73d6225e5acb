// text: real work on UTF-8 text passed through linear memory.
//
// The host calls `alloc(len)`, writes `len` bytes at the returned pointer,
// calls a function with `(ptr, len)`, then `dealloc(ptr, len)`.
// A word is a maximal run of ASCII letters (A-Z, a-z); every other byte
// (spaces, digits, punctuation, non-ASCII) separates words. Words compare
// case-insensitively (ASCII lowercase).
//
// Byte results (`top_word`) are returned as a pointer to an 8-byte pair
// (ptr: i32, len: i32), little-endian. The pair and the bytes it points to are
// owned by the agent and stay valid until the next call that returns bytes;
// the host copies them out and frees nothing.

/** The (ptr, len) pair returned by byte-returning functions. */
const RESULT: usize = memory.data(8)
/** Keeps the last returned bytes alive (reachable from a global, so the GC keeps them). */
let lastResult: ArrayBuffer = new ArrayBuffer(0)

/** Reserves `size` bytes for the host to write into. Returns the pointer (never 0 for size > 0). */
export function alloc(size: i32): usize {
  return heap.alloc(<usize>max(size, 0))
}

/** Frees a block returned by `alloc`. `size` is accepted for ABI symmetry; the allocator knows it. */
export function dealloc(ptr: usize, size: i32): void {
  if (ptr != 0) heap.free(ptr)
}

// @ts-ignore: decorator
@inline function isLetter(c: u32): bool {
  return (c | 32) - 97 < 26
}

// @ts-ignore: decorator
@inline function lower(c: u32): u32 {
  return c | 32
}

/** Visits every word as (start, end) byte offsets in [ptr, ptr + len). */
function wordAt(ptr: usize, len: i32, from: i32): i64 {
  let i = from
  while (i < len && !isLetter(load<u8>(ptr + i))) i++
  if (i >= len) return -1
  const start = i
  while (i < len && isLetter(load<u8>(ptr + i))) i++
  return (<i64>start << 32) | <i64>i
}

/** The lowercased word in bytes [start, end). */
function lowered(ptr: usize, start: i32, end: i32): string {
  const n = end - start
  const s = changetype<string>(__new(<usize>n << 1, idof<string>()))
  const out = changetype<usize>(s)
  for (let k = 0; k < n; k++) {
    store<u16>(out + (<usize>k << 1), <u16>lower(load<u8>(ptr + start + k)))
  }
  return s
}

/** Number of words in the text. */
export function word_count(ptr: usize, len: i32): i32 {
  let count = 0
  let at = 0
  while (true) {
    const w = wordAt(ptr, len, at)
    if (w < 0) break
    count++
    at = <i32>(w & 0xffffffff)
  }
  return count
}

/** Frequencies of the lowercased words, plus the first-seen order for stable ties. */
function frequencies(ptr: usize, len: i32, order: Array<string>): Map<string, i32> {
  const counts = new Map<string, i32>()
  let at = 0
  while (true) {
    const w = wordAt(ptr, len, at)
    if (w < 0) break
    const start = <i32>(w >> 32)
    const end = <i32>(w & 0xffffffff)
    const word = lowered(ptr, start, end)
    if (counts.has(word)) {
      counts.set(word, counts.get(word) + 1)
    } else {
      counts.set(word, 1)
      order.push(word)
    }
    at = end
  }
  return counts
}

/** Number of distinct words (case-insensitive). */
export function unique_words(ptr: usize, len: i32): i32 {
  const order = new Array<string>()
  return frequencies(ptr, len, order).size
}

/**
 * The most frequent word, lowercased; ties go to the word seen first.
 * Returns a pointer to a (ptr, len) pair of its ASCII bytes; (0, 0) when the text has no word.
 */
export function top_word(ptr: usize, len: i32): usize {
  const order = new Array<string>()
  const counts = frequencies(ptr, len, order)
  let best = ""
  let bestCount = 0
  for (let i = 0; i < order.length; i++) {
    const word = unchecked(order[i])
    const c = counts.get(word)
    if (c > bestCount) {
      best = word
      bestCount = c
    }
  }
  lastResult = String.UTF8.encode(best)
  const n = lastResult.byteLength
  store<u32>(RESULT, n == 0 ? 0 : <u32>changetype<usize>(lastResult))
  store<u32>(RESULT, <u32>n, 4)
  return RESULT
}

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320), as zlib's crc32.
const CRC_TABLE: usize = memory.data(256 * 4)
let crcReady = false

function crcTable(): void {
  for (let n: u32 = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) {
      c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    }
    store<u32>(CRC_TABLE + (<usize>n << 2), c)
  }
  crcReady = true
}

/** CRC-32 (IEEE) of the bytes, as a signed i32 (the host reads it as `>>> 0` for the unsigned value). */
export function checksum(ptr: usize, len: i32): i32 {
  if (!crcReady) crcTable()
  let crc: u32 = 0xffffffff
  for (let i = 0; i < len; i++) {
    const b = <u32>load<u8>(ptr + i)
    crc = load<u32>(CRC_TABLE + (<usize>((crc ^ b) & 0xff) << 2)) ^ (crc >>> 8)
  }
  return <i32>(crc ^ 0xffffffff)
}

/** Always healthy. */
export function _health_check(): i32 {
  return 0
}
