/**
 * Test helpers for the instruction decoder and the fuel rewriter: modules
 * that use every opcode of each feature Node 20 compiles (assembled by
 * wabt), wabt's disassembly as an oracle, and the fixture agents (read from
 * `@agent-runtime/agents`' build directory, so this package needs no
 * dependency on it).
 */
import { readFileSync } from "node:fs"
import { fileURLToPath } from "node:url"
import wabt from "wabt"
import { decodeCodeSection, type FunctionBody, knownOpcodes } from "../../src/index.js"
import { Imm, opcodeInfo } from "../../src/internal/Opcodes.js"
import { wat } from "./Wat.js"

const agentsBuild = fileURLToPath(new URL("../../../agents/build/unsigned/", import.meta.url))
export const AGENTS = [
  "counter",
  "text",
  "leaky",
  "flaky",
  "trapper",
  "lifecycle",
  "looper",
  "multi",
  "no-memory",
  "host-caller",
  "grower",
  "start-trap"
] as const
export const readAgentFixture = (name: string): Uint8Array<ArrayBuffer> => {
  try {
    return new Uint8Array(readFileSync(`${agentsBuild}${name}.wasm`))
  } catch (e) {
    throw new Error(
      `agent fixture ${name} is missing: run \`pnpm --filter @agent-runtime/agents fixtures\` (${String(e)})`
    )
  }
}

export const bodies = (bytes: Uint8Array): ReadonlyArray<FunctionBody> => {
  const r = decodeCodeSection(bytes)
  if (!r.ok) throw r.error
  return r.value
}

/** Mnemonics of a body without its final `end` (wabt's text leaves it implicit). */
export const mnemonics = (body: FunctionBody): Array<string> => body.instructions.slice(0, -1).map((i) => i.name)

const features = {
  exceptions: true,
  mutable_globals: true,
  sat_float_to_int: true,
  sign_extension: true,
  simd: true,
  threads: true,
  multi_value: true,
  tail_call: true,
  bulk_memory: true,
  reference_types: true
} as const

/** wabt's disassembly, one mnemonic list per defined function (`foldExprs: false` prints one instruction per line). */
export const wabtMnemonics = async (bytes: Uint8Array): Promise<Array<Array<string>>> => {
  const w = await wabt()
  const m = w.readWasm(bytes, { readDebugNames: false, ...features })
  try {
    const text = m.toText({ foldExprs: false, inlineExport: false })
    const out: Array<Array<string>> = []
    let current: Array<string> | undefined
    for (const line of text.split("\n")) {
      if (line.startsWith("  (")) {
        current = undefined
        if (line.startsWith("  (func ")) out.push((current = []))
        continue
      }
      if (current === undefined || !line.startsWith("    ")) continue
      const t = line.trim()
      if (t.startsWith("(")) continue // (local ...)
      current.push((t.split(/\s/)[0] as string).replace(/\)+$/, ""))
    }
    return out
  } finally {
    m.destroy()
  }
}

// ---------------------------------------------------------------------------
// Feature modules: every opcode of a feature, each in unreachable code (after
// `unreachable` the operand stack is polymorphic, so any instruction with
// valid immediates type-checks), all in one body.

const PRELUDE = `
  (type $t0 (func))
  (type $t1 (func (param i32) (result i32 i32)))
  (tag $e)
  (memory 1 1 shared)
  (table $tab 1 funcref)
  (global $g (mut i32) (i32.const 0))
  (data $d "x")
  (elem $el func $f)
  (elem declare func $f)
  (func $f)`

/** The text of one instruction with valid immediates for the prelude's entities. */
const instructionText = (opcode: number): string => {
  const info = opcodeInfo(opcode)
  if (info === undefined) throw new Error(`no opcode ${opcode}`)
  const { name, imm } = info
  switch (imm) {
    case Imm.none:
    case Imm.byte:
    case Imm.memarg:
      return name
    case Imm.label:
      return `${name} 0`
    case Imm.brTable:
      return `${name} 0 0 0`
    case Imm.index:
      if (name.startsWith("local.")) return `${name} 0`
      if (name.startsWith("global.")) return `${name} $g`
      if (name.startsWith("table.")) return `${name} $tab`
      if (name.startsWith("memory.")) return name
      if (name === "throw") return `${name} $e`
      if (name === "data.drop") return `${name} $d`
      if (name === "elem.drop") return `${name} $el`
      return `${name} $f` // call, return_call, ref.func
    case Imm.index2:
      if (name.endsWith("call_indirect")) return `${name} $tab (type $t0)`
      if (name === "memory.init") return `${name} $d`
      if (name === "table.init") return `${name} $tab $el`
      if (name === "table.copy") return `${name} $tab $tab`
      return name // memory.copy
    case Imm.memargLane:
      return `${name} 0`
    case Imm.i32:
    case Imm.i64:
      return `${name} -1`
    case Imm.f32:
    case Imm.f64:
      return `${name} 1.5`
    case Imm.bytes16:
      return name === "v128.const" ? "v128.const i32x4 1 2 -3 4" : `${name} 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 31`
    case Imm.lane:
      return `${name} 1`
    case Imm.selectTypes:
      return `${name} (result i32)`
    case Imm.heapType:
      return `${name} func`
    default:
      throw new Error(`no text for ${name}`)
  }
}

/** Opcodes written as fixed snippets (block structure), not one instruction at a time. */
const STRUCTURED = new Set([0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x09, 0x0b, 0x18, 0x19])

const MVP_BLOCKS = [
  "block",
  "unreachable",
  "end",
  "loop",
  "unreachable",
  "end",
  "if",
  "unreachable",
  "else",
  "unreachable",
  "end"
]
const MULTI_VALUE = [
  "block (result i32)",
  "unreachable",
  "end",
  "block (type $t1)",
  "unreachable",
  "end",
  "loop (type $t1)",
  "unreachable",
  "end",
  "if (type $t1)",
  "unreachable",
  "else",
  "unreachable",
  "end"
]
const EXCEPTIONS = [
  "try",
  "unreachable",
  "throw $e",
  "catch $e",
  "unreachable",
  "rethrow 0",
  "catch_all",
  "unreachable",
  "end",
  "try (result i32)",
  "unreachable",
  "delegate 0",
  "try",
  "unreachable",
  "catch_all",
  "rethrow 0",
  "end"
]

const between = (lo: number, hi: number) => (op: number) => op >= lo && op <= hi
const PREFIX = (p: number) => (op: number) => Math.floor(op / 0x10000) === p

export const FEATURES: ReadonlyArray<{
  name: string
  opcodes: (op: number) => boolean
  snippet: ReadonlyArray<string>
}> = [
  {
    name: "mvp",
    opcodes: (op) => op < 0xc0 && ![0x08, 0x12, 0x13, 0x1c, 0x25, 0x26].includes(op),
    snippet: MVP_BLOCKS
  },
  { name: "sign-extension", opcodes: between(0xc0, 0xc4), snippet: [] },
  {
    name: "reference-types",
    opcodes: (op) => [0x1c, 0x25, 0x26, 0xd0, 0xd1, 0xd2].includes(op),
    snippet: ["ref.null extern"]
  },
  { name: "multi-value", opcodes: () => false, snippet: MULTI_VALUE },
  { name: "non-trapping float-to-int", opcodes: between(0xfc0000, 0xfc0007), snippet: [] },
  { name: "bulk memory and table", opcodes: between(0xfc0008, 0xfc0011), snippet: [] },
  { name: "simd", opcodes: PREFIX(0xfd), snippet: [] },
  { name: "threads", opcodes: PREFIX(0xfe), snippet: [] },
  { name: "tail calls", opcodes: (op) => op === 0x12 || op === 0x13, snippet: [] },
  { name: "exception handling", opcodes: (op) => op === 0x08, snippet: EXCEPTIONS }
]

export const featureModule = async (feature: (typeof FEATURES)[number]) => {
  const lines = [
    ...knownOpcodes()
      .filter((op) => !STRUCTURED.has(op) && feature.opcodes(op))
      .map(instructionText),
    ...feature.snippet
  ]
  // every instruction follows an `unreachable`, so it is checked against a polymorphic stack
  const body: Array<string> = []
  for (const line of lines) body.push("unreachable", line)
  body.push("unreachable") // the body's end then checks against a polymorphic stack too
  const text = `(module ${PRELUDE}\n (func $body (param i32) (local i64 f32 f64 v128 funcref externref)\n${body.join("\n")}))`
  return { bytes: await wat(text), expected: body.map((l) => l.split(" ")[0] as string) }
}
