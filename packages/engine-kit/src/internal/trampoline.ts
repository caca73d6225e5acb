/**
 * One JS→wasm transition per metered call: a tiny WebAssembly trampoline per
 * export signature (compiled once per signature per thread, instantiated
 * once per prepared caller) that imports the fuel counter (a mutable i64
 * `WebAssembly.Global`: the instance's own, `FUEL_EXPORT`, or the thread's
 * shared one) and the target export as a function import. Its export `c`
 * takes the fuel (f64, fuel units, a safe integer) and then the target's
 * arguments; it sets the counter, marks its cell "entered", calls the target
 * (a wasm→wasm call) and, when the target returns, stores the counter's value
 * (fuel left, as an f64) in its cell, where the host reads it with a typed-
 * array load instead of a second JS→wasm call. Its results are the target's
 * own (the same JS API conversions: i64 as `bigint`, several results as an
 * array). A trap leaves the cell's fuel unwritten: the host then reads the
 * counter itself, and the "entered" mark tells it whether the counter was set
 * by this call at all (a stack overflow at the trampoline's boundary throws
 * before it runs).
 *
 * Cells: 16 bytes per trampoline instance (f64 fuel left at `offset`, i32
 * entered mark at `offset + 8`) in a shared 1-page memory per 4 096
 * trampolines (never grown, so the views stay valid); a cell is handed back
 * when its caller is collected (`FinalizationRegistry`, where the host has
 * one). Where runtime compilation is forbidden (workerd, a strict CSP) or a
 * type is not a number type, `trampoline` gives `null`: the caller keeps the
 * two-helper path (`fuel.ts`).
 *
 * @since 0.5.0
 */
import { lazyModule, moduleBytes, name, section, uleb } from "./helperModules.js"

/** A trampoline instance: `call(fuel, ...args)`, and where its cell is. */
export interface Trampoline {
  /** `(fuel, ...args) => the target's results`; throws what the target throws. */
  readonly call: (...a: ReadonlyArray<unknown>) => unknown
  /** The cell's views (shared by the 4 096 trampolines of one block). */
  readonly f64: Float64Array
  readonly i32: Int32Array
  /** `f64[left]`: fuel left after the last call that returned (fuel units). */
  readonly left: number
  /** `i32[entered]`: set to 1 by the trampoline as its first store; the host clears it before each call. */
  readonly entered: number
}

/** Value type codes (§5.3.1) of the number types; other types get no trampoline. */
const VALUE_TYPES: Readonly<Record<string, number>> = { i32: 0x7f, i64: 0x7e, f32: 0x7d, f64: 0x7c }

/** The trampoline module for `params → results` (value type codes). */
const trampolineBytes = (params: ReadonlyArray<number>, results: ReadonlyArray<number>): Uint8Array<ArrayBuffer> => {
  const vec = (xs: ReadonlyArray<number>) => [...uleb(xs.length), ...xs]
  const setCounter = [0x20, 0, 0xb0, 0x24, 0] // global.set $counter (i64.trunc_f64_s (local.get 0))
  const markEntered = [0x23, 1, 0x41, 1, 0x36, 2, 8] // i32.store offset=8 (global.get $cell) (i32.const 1)
  const callTarget = [...params.flatMap((_, k) => [0x20, ...uleb(k + 1)]), 0x10, 0] // call $target (local.get 1…n)
  const storeLeft = [0x23, 1, 0x23, 0, 0xb9, 0x39, 3, 0] // f64.store (global.get $cell) (f64.convert_i64_s (global.get $counter))
  const body = [0, ...setCounter, ...markEntered, ...callTarget, ...storeLeft, 0x0b] // no locals … end
  return moduleBytes(
    section(1, [2, 0x60, ...vec(params), ...vec(results), 0x60, ...vec([0x7c, ...params]), ...vec(results)]),
    section(2, [
      4,
      ...[...name(""), ...name("f"), 0x00, 0], // the target: a function of type 0
      ...[...name(""), ...name("g"), 0x03, 0x7e, 0x01], // the counter: a mutable i64 global
      ...[...name(""), ...name("m"), 0x02, 0x00, 1], // the cells' memory: min 1 page
      ...[...name(""), ...name("o"), 0x03, 0x7f, 0x00] // the cell's byte offset: an immutable i32 global
    ]),
    section(3, [1, 1]),
    section(7, [1, ...name("c"), 0x00, 1]),
    section(10, [1, ...uleb(body.length), ...body])
  )
}

/** Compiled trampolines by signature key (`"<params>:<results>"` as type codes), on this thread. */
const modules = new Map<string, () => WebAssembly.Module | null>()

const CELL_BYTES = 16
const CELLS_PER_BLOCK = 65_536 / CELL_BYTES

/** A page of cells: its memory, views and free cells. */
interface Block {
  readonly memory: WebAssembly.Memory
  readonly f64: Float64Array
  readonly i32: Int32Array
  readonly free: Array<number>
  next: number
}

const blocks: Array<Block> = []

const newBlock = (): Block => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 })
  const block = { memory, f64: new Float64Array(memory.buffer), i32: new Int32Array(memory.buffer), free: [], next: 0 }
  blocks.push(block)
  return block
}

/** A free cell: its block and byte offset. */
const takeCell = (): readonly [Block, number] => {
  for (const b of blocks) {
    const reused = b.free.pop()
    if (reused !== undefined) return [b, reused]
    if (b.next < CELLS_PER_BLOCK) return [b, b.next++ * CELL_BYTES]
  }
  const b = newBlock()
  return [b, b.next++ * CELL_BYTES]
}

const registry =
  typeof FinalizationRegistry === "undefined"
    ? undefined
    : new FinalizationRegistry<readonly [Block, number]>(([b, offset]) => {
        b.free.push(offset)
      })

/**
 * A trampoline calling `target` (an exported WebAssembly function of type
 * `params → results`, value type names as in wasm-binary's `FuncType`) with
 * `counter` (mutable i64) as its fuel counter; `null` when this host will
 * not compile or link it, or a type is not a number type. `owner` is what
 * keeps its cell: when `owner` is collected, the cell is reused.
 */
export const trampoline = (
  target: unknown,
  params: ReadonlyArray<string>,
  results: ReadonlyArray<string>,
  counter: WebAssembly.Global,
  owner: object
): Trampoline | null => {
  const p = params.map((t) => VALUE_TYPES[t])
  const r = results.map((t) => VALUE_TYPES[t])
  if (p.some((c) => c === undefined) || r.some((c) => c === undefined)) return null
  const key = `${p.join(",")}:${r.join(",")}`
  let module = modules.get(key)
  if (module === undefined) {
    module = lazyModule(() => trampolineBytes(p as Array<number>, r as Array<number>))
    modules.set(key, module)
  }
  const compiled = module()
  if (compiled === null) return null
  const [block, offset] = takeCell()
  let call: (...a: ReadonlyArray<unknown>) => unknown
  try {
    const instance = new WebAssembly.Instance(compiled, {
      "": { f: target as WebAssembly.ImportValue, g: counter, m: block.memory, o: offset }
    })
    call = instance.exports["c"] as (...a: ReadonlyArray<unknown>) => unknown
  } catch {
    block.free.push(offset) // a LinkError: the target is not of this type, or not a WebAssembly function
    return null
  }
  registry?.register(owner, [block, offset])
  return { call, f64: block.f64, i32: block.i32, left: offset / 8, entered: (offset + 8) / 4 }
}
