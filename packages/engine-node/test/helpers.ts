/**
 * Test helpers: instantiate WAT text or a real agent on a Node engine.
 */
import { readAgent } from "@agent-runtime/agents"
import { agentId, type HostImports, moduleHash, type WasmEngineShape, type WasmInstance } from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import wabtFactory from "wabt"

export const MiB = 1024 * 1024
export const PAGE = 65536

let counter = 0
const nextId = (prefix: string) => agentId(`${prefix}-${++counter}`)

/**
 * Assembles WAT into module bytes with wabt, every feature Node 20 runs enabled.
 * Not `@agent-runtime/test-support`'s `wat`: it validates without the features
 * it parsed with (so `(memory 1 1 shared)` is refused) and hands wabt a JS
 * string, which mangles non-ASCII names; this passes UTF-8 bytes and validates
 * with the same features.
 */
export const wat = async (text: string): Promise<Uint8Array> => {
  const wabt = await wabtFactory()
  const features = { threads: true, bulk_memory: true, multi_value: true, mutable_globals: true, sign_extension: true }
  const module = wabt.parseWat("test.wat", new TextEncoder().encode(text), features)
  try {
    module.resolveNames()
    ;(module.validate as (features?: object) => void).call(module, features) // the typings omit the parameter
    return new Uint8Array(module.toBinary({ log: false }).buffer)
  } finally {
    module.destroy()
  }
}

export const compileWat = (engine: WasmEngineShape, text: string) =>
  Effect.flatMap(
    Effect.promise(() => wat(text)),
    (bytes) => engine.compile(bytes, moduleHash(`wat-${bytes.byteLength}`))
  )

export const instantiateWat = (
  engine: WasmEngineShape,
  text: string,
  options: {
    imports?: Record<string, Record<string, unknown>>
    memoryLimit?: number
    timeoutMs?: number
    id?: string
  } = {}
): Effect.Effect<WasmInstance, any> =>
  Effect.flatMap(compileWat(engine, text), (compiled) =>
    engine.instantiate(compiled, {
      agentId: options.id === undefined ? nextId("wat") : agentId(options.id),
      memoryLimit: options.memoryLimit ?? 16 * MiB,
      imports: (options.imports ?? {}) as HostImports,
      timeoutMs: options.timeoutMs
    })
  )

export const instantiateAgent = (
  engine: WasmEngineShape,
  name: Parameters<typeof readAgent>[0],
  imports: Record<string, Record<string, unknown>> = {},
  id?: string
): Effect.Effect<WasmInstance, any> =>
  Effect.flatMap(engine.compile(readAgent(name), moduleHash(name)), (compiled) =>
    engine.instantiate(compiled, {
      agentId: id === undefined ? nextId(name) : agentId(id),
      memoryLimit: 16 * MiB,
      imports: imports as HostImports
    })
  )

/** Calls `fn` and returns its results. */
export const call = (instance: WasmInstance, fn: string, ...args: Array<number | bigint>) =>
  Effect.map(instance.invoke(fn, args), (o) => o.results)

/** A counter whose state is an exported mutable global (complete snapshots without a rewrite). */
export const COUNTER = `(module
  (global $n (export "n") (mut i32) (i32.const 0))
  (func (export "increment") (result i32) global.get $n i32.const 1 i32.add global.set $n global.get $n)
  (func (export "get") (result i32) global.get $n))`

/** A runaway export. */
export const RUNAWAY = `(module (func (export "spin") (loop br 0)) (func (export "ok") (result i32) i32.const 1))`
