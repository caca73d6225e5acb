/**
 * Structure-aware mutation of WebAssembly modules for differential fuzzing
 * (issue 12), and a delta-debugging shrinker for the inputs that fail.
 *
 * A module is split into its sections (id, payload); mutations work on that
 * structure and re-encode the sizes they change: drop / duplicate / swap /
 * move a section, splice a section from another module, edit a payload byte
 * or LEB128 (size kept or fixed up), and, inside the code section, replace or
 * insert instructions in one function body with the body and section sizes
 * re-encoded. A few raw byte mutations (flip, truncate) keep the reader's
 * framing checks busy too. Deterministic: every choice comes from a seeded
 * PRNG (mulberry32), so a seed reproduces a run.
 */

/** A seeded 32-bit PRNG (mulberry32): `next()` in [0, 1), `int(n)` in [0, n). */
export const prng = (seed: number) => {
  let a = seed >>> 0
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  const int = (n: number): number => Math.floor(next() * n)
  const pick = <A>(xs: ReadonlyArray<A>): A => xs[int(xs.length)] as A
  return { next, int, pick }
}
export type Prng = ReturnType<typeof prng>

/** `length` deterministic bytes (a linear congruential sequence from `seed`), so failures reproduce. */
export const bytesOf = (length: number, seed: number): Uint8Array => {
  const out = new Uint8Array(length)
  let x = seed >>> 0
  for (let i = 0; i < length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    out[i] = x >>> 24
  }
  return out
}

/** One section: its id and payload (without the size). */
export interface Section {
  readonly id: number
  readonly payload: Uint8Array
}

const readU32 = (b: Uint8Array, at: number): { readonly value: number; readonly next: number } | undefined => {
  let value = 0
  for (let i = 0; i < 5; i++) {
    const byte = b[at + i]
    if (byte === undefined) return undefined
    value += (byte & 0x7f) * 2 ** (7 * i)
    if ((byte & 0x80) === 0) return { value, next: at + i + 1 }
  }
  return undefined
}

/** The unsigned LEB128 encoding of `n`. */
export const u32 = (n: number): Array<number> => {
  const out: Array<number> = []
  let v = n >>> 0
  do {
    let byte = v & 0x7f
    v >>>= 7
    if (v !== 0) byte |= 0x80
    out.push(byte)
  } while (v !== 0)
  return out
}

/** The sections of a module, or `undefined` when its framing does not parse. */
export const sections = (bytes: Uint8Array): Array<Section> | undefined => {
  if (bytes.length < 8) return undefined
  const out: Array<Section> = []
  let at = 8
  while (at < bytes.length) {
    const id = bytes[at] as number
    const size = readU32(bytes, at + 1)
    if (size === undefined || size.next + size.value > bytes.length) return undefined
    out.push({ id, payload: bytes.subarray(size.next, size.next + size.value) })
    at = size.next + size.value
  }
  return out
}

/** Encodes a module from the 8-byte preamble of `preambleOf` and sections. */
export const encode = (preambleOf: Uint8Array, parts: ReadonlyArray<Section>): Uint8Array<ArrayBuffer> => {
  const chunks: Array<ArrayLike<number>> = [preambleOf.subarray(0, 8)]
  for (const s of parts) chunks.push([s.id, ...u32(s.payload.length)], s.payload)
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0))
  let at = 0
  for (const c of chunks) {
    out.set(c, at)
    at += c.length
  }
  return out
}

const splice = (b: Uint8Array, at: number, remove: number, insert: ArrayLike<number>): Uint8Array => {
  const out = new Uint8Array(b.length - remove + insert.length)
  out.set(b.subarray(0, at))
  out.set(insert, at)
  out.set(b.subarray(at + remove), at + insert.length)
  return out
}

/** Instruction snippets that stress the rewriters' index bookkeeping and metering. */
const SNIPPETS: ReadonlyArray<ReadonlyArray<number>> = [
  [0x20, 0x00],
  [0x21, 0x00],
  [0x22, 0x01],
  [0x20, 0x05], // local.get/set/tee
  [0x23, 0x00],
  [0x24, 0x00],
  [0x23, 0x01],
  [0x24, 0x02], // global.get/set
  [0x03, 0x40],
  [0x02, 0x40],
  [0x0b],
  [0x0c, 0x00],
  [0x0d, 0x00], // loop, block, end, br, br_if
  [0x42, 0x80, 0x94, 0xeb, 0xdc, 0x03],
  [0x41, 0x01],
  [0x1a],
  [0x00],
  [0x01], // i64.const 1e9, i32.const, drop, unreachable, nop
  [0x10, 0x00],
  [0x40, 0x00],
  [0x3f, 0x00],
  [0xfc, 0x0f, 0x00],
  [0xd0, 0x70], // call, memory.grow/size, table.grow, ref.null
  [0x0f],
  [0x12, 0x00],
  [0x28, 0x02, 0x00],
  [0x36, 0x02, 0x00] // return, return_call, i32.load, i32.store
]

const CODE = 10

/** Mutates one function body of a code section payload; sizes re-encoded. */
const mutateBody = (
  payload: Uint8Array,
  rng: Prng
): { readonly payload: Uint8Array; readonly what: string } | undefined => {
  const count = readU32(payload, 0)
  if (count === undefined || count.value === 0) return undefined
  const target = rng.int(count.value)
  let at = count.next
  for (let i = 0; i < count.value; i++) {
    const size = readU32(payload, at)
    if (size === undefined || size.next + size.value > payload.length) return undefined
    if (i === target) {
      const body = payload.subarray(size.next, size.next + size.value)
      const locals = readU32(body, 0)
      const start = Math.min(body.length, locals === undefined ? 0 : locals.next + 2 * locals.value)
      const pos = start + rng.int(Math.max(1, body.length - start))
      const snippet = rng.pick(SNIPPETS)
      const mode = rng.int(3)
      const newBody =
        mode === 0
          ? splice(body, pos, 0, snippet)
          : mode === 1
            ? splice(body, pos, Math.min(snippet.length, body.length - pos), snippet)
            : splice(body, pos, Math.min(1 + rng.int(3), body.length - pos), [])
      const entry = [...u32(newBody.length), ...newBody]
      return {
        payload: splice(payload, at, size.next - at + size.value, entry),
        what: `body ${target}: ${["insert", "overwrite", "delete"][mode]} [${snippet.map((b) => b.toString(16)).join(" ")}] at ${pos}`
      }
    }
    at = size.next + size.value
  }
  return undefined
}

/**
 * One structure-aware mutation of `input` (a new array) and what it did.
 * `donors` are other modules whose sections may be spliced in.
 */
export const mutateStructured = (
  input: Uint8Array,
  rng: Prng,
  donors: ReadonlyArray<Uint8Array> = []
): { readonly bytes: Uint8Array<ArrayBuffer>; readonly what: string } => {
  const parts = sections(input)
  const raw = (): { readonly bytes: Uint8Array<ArrayBuffer>; readonly what: string } => {
    const b = new Uint8Array(input)
    const p = rng.int(b.length)
    if (rng.int(4) === 0) return { bytes: b.slice(0, p), what: `truncate at ${p}` }
    b[p] = (b[p] as number) ^ (1 << rng.int(8))
    return { bytes: b, what: `flip a bit at ${p}` }
  }
  if (parts === undefined || parts.length === 0 || rng.int(10) === 0) return raw()
  const i = rng.int(parts.length)
  const s = parts[i] as Section
  const with_ = (j: number, next: Section | undefined): Array<Section> =>
    next === undefined ? parts.filter((_, k) => k !== j) : parts.map((x, k) => (k === j ? next : x))
  switch (rng.int(9)) {
    case 0:
      return { bytes: encode(input, with_(i, undefined)), what: `drop section ${s.id}` }
    case 1:
      return {
        bytes: encode(input, [...parts.slice(0, i + 1), s, ...parts.slice(i + 1)]),
        what: `duplicate section ${s.id}`
      }
    case 2: {
      const j = rng.int(parts.length)
      const swapped = parts.map((x, k) => (k === i ? (parts[j] as Section) : k === j ? s : x))
      return { bytes: encode(input, swapped), what: `swap sections ${i} and ${j}` }
    }
    case 3: {
      const donor = donors.length === 0 ? undefined : sections(rng.pick(donors))
      const other = donor === undefined || donor.length === 0 ? undefined : rng.pick(donor)
      if (other === undefined) return raw()
      const same = parts.findIndex((x) => x.id === other.id)
      return same >= 0
        ? { bytes: encode(input, with_(same, other)), what: `replace section ${other.id} from a donor` }
        : {
            bytes: encode(input, [...parts.slice(0, i), other, ...parts.slice(i)]),
            what: `insert donor section ${other.id}`
          }
    }
    case 4:
    case 5: {
      const code = parts.findIndex((x) => x.id === CODE)
      const body = code < 0 ? undefined : mutateBody((parts[code] as Section).payload, rng)
      if (body === undefined) return raw()
      return { bytes: encode(input, with_(code, { id: CODE, payload: body.payload })), what: body.what }
    }
    case 6: {
      // a LEB128 in the payload: one more or one less (counts, indices, limits)
      if (s.payload.length === 0) return raw()
      const p = rng.int(s.payload.length)
      const leb = readU32(s.payload, p)
      if (leb === undefined) return raw()
      const value = rng.int(2) === 0 ? leb.value + 1 : Math.max(0, leb.value - 1)
      const payload = splice(s.payload, p, leb.next - p, u32(value))
      return {
        bytes: encode(input, with_(i, { id: s.id, payload })),
        what: `section ${s.id}: LEB128 at ${p} ${leb.value} → ${value}`
      }
    }
    case 7: {
      // a payload byte changed, size kept
      if (s.payload.length === 0) return raw()
      const payload = new Uint8Array(s.payload)
      const p = rng.int(payload.length)
      payload[p] = rng.int(3) === 0 ? rng.pick([0x00, 0x01, 0x40, 0x7f, 0x80, 0xff, 0x70, 0x6f, 0x7b]) : rng.int(256)
      return {
        bytes: encode(input, with_(i, { id: s.id, payload })),
        what: `section ${s.id}: byte ${p} = ${payload[p]}`
      }
    }
    default: {
      // a payload slice deleted or inserted, size fixed up
      const p = rng.int(s.payload.length + 1)
      const payload =
        rng.int(2) === 0
          ? splice(s.payload, p, Math.min(1 + rng.int(4), s.payload.length - p), [])
          : splice(
              s.payload,
              p,
              0,
              Array.from({ length: 1 + rng.int(4) }, () => rng.int(256))
            )
      return { bytes: encode(input, with_(i, { id: s.id, payload })), what: `section ${s.id}: resized at ${p}` }
    }
  }
}

/**
 * Delta-debugging shrinker (ddmin-style, test only): returns a smaller input
 * for which `fails` still holds. First whole sections are dropped, then byte
 * chunks of halving sizes are removed, then remaining bytes are zeroed where
 * that keeps the failure. `fails` must be deterministic.
 */
export const shrink = (
  input: Uint8Array,
  fails: (bytes: Uint8Array<ArrayBuffer>) => boolean,
  maxSteps = 20_000
): Uint8Array<ArrayBuffer> => {
  let best = new Uint8Array(input)
  let steps = 0
  const attempt = (candidate: Uint8Array<ArrayBuffer>): boolean => {
    if (steps++ >= maxSteps) return false
    if (candidate.length <= best.length && fails(candidate)) {
      best = candidate
      return true
    }
    return false
  }
  // 1. sections
  let parts = sections(best)
  for (let i = 0; parts !== undefined && i < parts.length; ) {
    if (
      attempt(
        encode(
          best,
          parts.filter((_, k) => k !== i)
        )
      )
    )
      parts = sections(best)
    else i++
  }
  // 2. byte chunks (the preamble stays)
  for (let chunk = Math.max(1, best.length >> 1); chunk >= 1; chunk >>= 1) {
    for (let at = 8; at < best.length; ) {
      if (!attempt(new Uint8Array(splice(best, at, Math.min(chunk, best.length - at), [])))) at += chunk
    }
  }
  // 3. zero bytes
  for (let at = 8; at < best.length; at++) {
    if (best[at] === 0) continue
    const b = new Uint8Array(best)
    b[at] = 0
    attempt(b)
  }
  return best
}
