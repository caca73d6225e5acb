/**
 * The text agent's word rules in JavaScript (packages/agents/README.md,
 * `text`): a word is a maximal run of ASCII letters, every other byte
 * separates words, words compare lowercased; the top word is the most
 * frequent, ties to the first seen. The oracle for `word_count`,
 * `unique_words` and `top_word`.
 *
 * @internal
 */

const isLetter = (b: number) => (b >= 65 && b <= 90) || (b >= 97 && b <= 122)

/** The lowercased words of UTF-8 `bytes`, in order. */
export const words = (bytes: Uint8Array): ReadonlyArray<string> => {
  const out: Array<string> = []
  let current = ""
  for (const b of bytes) {
    if (isLetter(b)) current += String.fromCharCode(b | 0x20)
    else if (current !== "") {
      out.push(current)
      current = ""
    }
  }
  if (current !== "") out.push(current)
  return out
}

/** Word count, distinct words and the top word ("" when there is none). */
export const wordStats = (
  bytes: Uint8Array
): { readonly count: number; readonly unique: number; readonly top: string } => {
  const ws = words(bytes)
  const freq = new Map<string, number>()
  for (const w of ws) freq.set(w, (freq.get(w) ?? 0) + 1)
  let top = ""
  let best = 0
  for (const [w, n] of freq) {
    if (n > best) {
      best = n
      top = w
    }
  }
  return { count: ws.length, unique: freq.size, top }
}

/** `n` bytes of deterministic pseudo-random prose (a linear congruential generator; no ambient randomness). */
export const prose = (n: number, seed = 1): string => {
  const vocabulary = [
    "alpha",
    "Beta",
    "gamma",
    "delta",
    "agent",
    "runtime",
    "memory",
    "page",
    "Wasm",
    "trap",
    "the",
    "of"
  ]
  const separators = [" ", " ", " ", ", ", ". ", "; ", " 42 ", "\n", "-", " é "]
  let state = seed >>> 0
  const next = () => (state = (Math.imul(state, 1664525) + 1013904223) >>> 0)
  let s = ""
  while (s.length < n) s += vocabulary[next() % vocabulary.length]! + separators[next() % separators.length]!
  return s.slice(0, n)
}
