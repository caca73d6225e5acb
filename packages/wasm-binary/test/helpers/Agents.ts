/**
 * Test helpers for the rewriters: the fixture agents of `@agent-runtime/agents`
 * (read from its `build/` directory, so this package needs no dependency on
 * it), instantiation, call scripts whose results are compared between a
 * rewritten and an original module, and a complete snapshot / restore
 * through exports.
 */
import { expect } from "@effect/vitest"
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import { readModule, type ModuleInfo } from "../../src/index.js"

const buildDir = fileURLToPath(new URL("../../../agents/build/", import.meta.url))

/** The module bytes of a fixture agent, unsigned (`signed`: with its signature custom section). */
export const readAgent = (name: string, signed = false): Uint8Array<ArrayBuffer> => {
  try {
    return new Uint8Array(readFileSync(`${buildDir}${signed ? "" : "unsigned/"}${name}.wasm`))
  } catch (e) {
    throw new Error(
      `agent fixture ${name} is missing: run \`pnpm --filter @agent-runtime/agents fixtures\` (${String(e)})`
    )
  }
}

/** `readModule`, throwing on failure (test setup). */
export const info = (bytes: Uint8Array): ModuleInfo => {
  const r = readModule(bytes)
  if (!r.ok) throw new Error(`expected a readable module: ${r.error.message}`)
  return r.value
}

/** Unwraps a `ReadResult`, throwing its error. */
export const unwrap = <A>(
  r: { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: Error }
): A => {
  if (!r.ok) throw r.error
  return r.value
}

export type Exports = Record<string, unknown>

/** Instantiates bytes (compiling them: a rewrite must stay valid). */
export const instantiate = (bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): Exports => {
  expect(WebAssembly.validate(bytes)).toBe(true)
  const module = new WebAssembly.Module(bytes)
  return new WebAssembly.Instance(module, imports).exports as Exports
}

export const fn = (exports: Exports, name: string): ((...args: Array<unknown>) => unknown) => {
  const f = exports[name]
  if (typeof f !== "function") throw new Error(`no exported function ${name}`)
  return f as (...args: Array<unknown>) => unknown
}

/** One call of a script: function name and arguments. */
export type Call = readonly [string, ...Array<number | bigint>]

/** Runs calls in order; each result is the value, or `trap: <message>` for a thrown error. */
export const runScript = (exports: Exports, calls: ReadonlyArray<Call>): Array<unknown> =>
  calls.map(([name, ...args]) => {
    try {
      return fn(exports, name)(...args)
    } catch (e) {
      return `trap: ${e instanceof Error ? `${e.constructor.name} ${e.message}` : String(e)}`
    }
  })

/** The memory exported as `name`. */
export const memoryOf = (exports: Exports, name: string): WebAssembly.Memory => {
  const m = exports[name]
  if (!(m instanceof WebAssembly.Memory)) throw new Error(`no exported memory ${name}`)
  return m
}

/** A complete state capture: all memory bytes and the value of every listed global export. */
export interface Captured {
  readonly memory: Uint8Array | undefined
  readonly globals: ReadonlyMap<string, number | bigint>
}

export const capture = (
  exports: Exports,
  memoryExport: string | undefined,
  globalNames: ReadonlyArray<string>
): Captured => {
  const globals = new Map<string, number | bigint>()
  for (const name of globalNames) {
    const g = exports[name]
    if (!(g instanceof WebAssembly.Global)) throw new Error(`no exported global ${name}`)
    globals.set(name, g.value as number | bigint)
  }
  const memory = memoryExport === undefined ? undefined : new Uint8Array(memoryOf(exports, memoryExport).buffer).slice()
  return { memory, globals }
}

/** Writes a capture into another instance of the same module (growing its memory as needed). */
export const restore = (exports: Exports, memoryExport: string | undefined, state: Captured): void => {
  if (memoryExport !== undefined && state.memory !== undefined) {
    const memory = memoryOf(exports, memoryExport)
    const missing = (state.memory.length - memory.buffer.byteLength) / 65_536
    if (missing > 0) memory.grow(missing)
    const view = new Uint8Array(memory.buffer)
    view.fill(0)
    view.set(state.memory)
  }
  for (const [name, value] of state.globals) {
    const g = exports[name]
    if (!(g instanceof WebAssembly.Global)) throw new Error(`no exported global ${name}`)
    g.value = value
  }
}

/** Seeded pseudo-random bytes (xorshift32), so failures reproduce. */
export const pseudoRandomBytes = (seed: number, length: number): Uint8Array<ArrayBuffer> => {
  let x = seed >>> 0 || 1
  const out = new Uint8Array(length)
  for (let i = 0; i < length; i++) {
    x ^= x << 13
    x >>>= 0
    x ^= x >>> 17
    x ^= x << 5
    x >>>= 0
    out[i] = x & 0xff
  }
  return out
}
