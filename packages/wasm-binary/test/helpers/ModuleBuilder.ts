/**
 * A tiny byte-level module builder for tests (valid and deliberately
 * malformed modules), built on the package's `ByteWriter`.
 */
import { ByteWriter } from "../../src/internal/ByteWriter.js"

export type Part = number | ReadonlyArray<number> | Uint8Array

/** Concatenates bytes, byte arrays and Uint8Arrays. */
export const bytes = (...parts: ReadonlyArray<Part>): Uint8Array<ArrayBuffer> => {
  const w = new ByteWriter()
  for (const p of parts) {
    if (typeof p === "number") w.u8(p)
    else w.bytes(p instanceof Uint8Array ? p : Uint8Array.from(p))
  }
  return w.finish()
}

export const u32 = (n: number): Uint8Array<ArrayBuffer> => new ByteWriter().u32(n).finish()
export const s32 = (n: number): Uint8Array<ArrayBuffer> => new ByteWriter().s32(n).finish()
export const s64 = (n: bigint): Uint8Array<ArrayBuffer> => new ByteWriter().s64(n).finish()
export const name = (s: string): Uint8Array<ArrayBuffer> => new ByteWriter().name(s).finish()
/** A name from raw (possibly invalid UTF-8) bytes. */
export const rawName = (...b: ReadonlyArray<number>): Uint8Array<ArrayBuffer> => bytes(u32(b.length), b)
export const vec = (...items: ReadonlyArray<Part>): Uint8Array<ArrayBuffer> => bytes(u32(items.length), ...items)

export const PREAMBLE: ReadonlyArray<number> = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00]

/** A section with a correct size. */
export const section = (id: number, ...payload: ReadonlyArray<Part>): Uint8Array<ArrayBuffer> => {
  const body = bytes(...payload)
  return bytes(id, u32(body.length), body)
}

/** A module: preamble + sections. */
export const module = (...sections: ReadonlyArray<Part>): Uint8Array<ArrayBuffer> => bytes(PREAMBLE, ...sections)

export const T = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c, v128: 0x7b, funcref: 0x70, externref: 0x6f } as const

/** A function type entry `0x60 params results`. */
export const functype = (params: ReadonlyArray<number>, results: ReadonlyArray<number>): Uint8Array<ArrayBuffer> =>
  bytes(0x60, vec(...params), vec(...results))

export const typeSection = (...types: ReadonlyArray<Uint8Array>) => section(1, vec(...types))
export const functionSection = (...typeIndices: ReadonlyArray<number>) => section(3, vec(...typeIndices.map(u32)))
/** A code section of bodies; each body is `locals` (raw) + instructions, `end` included by the caller. */
export const codeSection = (...bodies: ReadonlyArray<Uint8Array>) =>
  section(10, vec(...bodies.map((b) => bytes(u32(b.length), b))))
/** The body `(no locals) end`. */
export const emptyBody: Uint8Array<ArrayBuffer> = bytes(0x00, 0x0b)
