/**
 * The text the swarm feeds the `text` agents, and a JavaScript oracle for
 * every result they compute (word count, distinct words, most frequent word,
 * CRC-32), following the agent's ABI: a word is a maximal run of ASCII
 * letters, every other byte separates words, words compare lowercased, ties
 * for the most frequent word go to the first seen (packages/agents/README.md).
 *
 * @since 0.1.0
 */
import { SnapshotCodec } from "@agent-runtime/domain"

const { crc32 } = SnapshotCodec

/** Sentences with punctuation, digits and a little non-ASCII text. */
export const sentences: ReadonlyArray<string> = [
  "The quick brown fox jumps over the lazy dog.",
  "WebAssembly agents share one host but never one linear memory.",
  "A module is verified, compiled once, and every later load is a cache hit.",
  "Memory pressure starts above 70 %, turns high above 85 % and critical above 95 %.",
  "Health checks count consecutive failures; the fifth one in a row is the last.",
  "Critical agents are never evicted, not even when the pool is full.",
  "Pack my box with five dozen liquor jugs, then pack it again.",
  "Über-fast café agents: naïve code still counts ASCII words only.",
  "Agent 42 said: to be, or not to be, that is the question (to be sure).",
  "Snapshots skip zero pages; restore grows the memory back first.",
  "Leaky agents leak, flaky agents flake, and the runtime keeps going.",
  "One invocation at a time per agent, many agents in parallel, no shared lock.",
  "CRC-32 of the same bytes must agree in WebAssembly and in JavaScript!",
  "Pause, resume, stop: every transition is checked against the state machine.",
  "the THE The tHe — words compare lowercased, so this one has a clear winner.",
  "Numbers like 3.14159 and 2718 separate words; so do dashes-and_underscores."
]

/** What the `text` agent must answer for a text. */
export interface TextFacts {
  readonly wordCount: number
  readonly uniqueWords: number
  /** Most frequent lowercased word; "" when there is none. */
  readonly topWord: string
  /** Unsigned CRC-32 of the UTF-8 bytes. */
  readonly checksum: number
}

const isLetter = (c: number) => (c | 32) >= 97 && (c | 32) <= 122

/** The oracle: the facts of `bytes` (UTF-8 text). */
export const facts = (bytes: Uint8Array): TextFacts => {
  const counts = new Map<string, number>()
  let wordCount = 0
  let i = 0
  while (i < bytes.length) {
    while (i < bytes.length && !isLetter(bytes[i]!)) i++
    if (i >= bytes.length) break
    let word = ""
    while (i < bytes.length && isLetter(bytes[i]!)) word += String.fromCharCode(bytes[i++]! | 32)
    wordCount++
    counts.set(word, (counts.get(word) ?? 0) + 1)
  }
  let topWord = ""
  let best = 0
  for (const [word, n] of counts) {
    if (n > best) {
      best = n
      topWord = word
    }
  }
  return { wordCount, uniqueWords: counts.size, topWord, checksum: crc32(bytes) }
}
