/**
 * A small seeded pseudo-random generator (mulberry32) so a swarm run with the
 * same `--seed` drives the same workload. Not cryptographic; never used for
 * anything but choosing the workload.
 *
 * @since 0.1.0
 */

/** A deterministic generator of numbers in [0, 1) and helpers over it. */
export interface Prng {
  /** Next number in [0, 1). */
  readonly next: () => number
  /** Integer in [min, max] (both inclusive). */
  readonly int: (min: number, max: number) => number
  /** One element of a non-empty array. */
  readonly pick: <A>(items: ReadonlyArray<A>) => A
  /** `true` with probability `p`. */
  readonly chance: (p: number) => boolean
  /** A shuffled copy (Fisher–Yates). */
  readonly shuffle: <A>(items: ReadonlyArray<A>) => Array<A>
  /**
   * The generator's whole state (a u32): `make(state())` continues the same
   * sequence from here (a resumed swarm run picks its workload up this way).
   */
  readonly state: () => number
}

/** mulberry32 over a 32-bit seed (or a `state()` saved earlier). */
export const make = (seed: number): Prng => {
  let state = seed >>> 0
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1))
  return {
    next,
    int,
    pick: (items) => items[int(0, items.length - 1)]!,
    chance: (p) => next() < p,
    shuffle: (items) => {
      const out = [...items]
      for (let i = out.length - 1; i > 0; i--) {
        const j = int(0, i)
        const tmp = out[i]!
        out[i] = out[j]!
        out[j] = tmp
      }
      return out
    },
    state: () => state
  }
}
