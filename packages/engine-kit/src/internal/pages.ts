/**
 * Page helpers for snapshots and state tracking: linear memory is compared
 * and copied in WebAssembly pages of 64 KiB (WebAssembly spec §"Memory
 * Instances").
 *
 * @internal
 */

/** One WebAssembly page, in bytes (64 KiB). */
export const PAGE_BYTES = 65_536

const WORDS_PER_PAGE = PAGE_BYTES / 4

/** True when page `page` of the memory viewed as `words` is all zero bytes. */
export const isZeroPage = (words: Uint32Array, page: number): boolean => {
  const start = page * WORDS_PER_PAGE
  const end = start + WORDS_PER_PAGE
  for (let i = start; i < end; i++) if (words[i] !== 0) return false
  return true
}

/** True when page `page` holds the same bytes in `a` and `b` (both viewed as 32-bit words). */
export const pagesEqual = (a: Uint32Array, b: Uint32Array, page: number): boolean => {
  const start = page * WORDS_PER_PAGE
  const end = start + WORDS_PER_PAGE
  for (let i = start; i < end; i++) if (a[i] !== b[i]) return false
  return true
}
