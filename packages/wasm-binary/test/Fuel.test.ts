/**
 * Fuel metering, tested on real modules and against the unmetered originals:
 * rewritten modules validate and keep everything but the instrumentation
 * byte for byte; they compute the same results; they stop infinite loops and
 * unbounded recursion; they are deterministic and exact (a call needing F
 * units succeeds with F and traps with F − 1); and malformed input is a typed
 * error.
 */
import { describe, expect, it } from "@effect/vitest"
import { readReferenceModule, referenceModules } from "@agent-runtime/reference-modules"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import {
  decodeCodeSection,
  defaultOperatorCost,
  FUEL_EXPORT,
  FUEL_IMPORT_MODULE,
  FUEL_IMPORT_NAME,
  FUEL_SECTION,
  fuelImports,
  type FunctionBody,
  rewriteModule,
  START_EXPORT,
  instrumentFuel,
  type FuelOptions,
  readModule
} from "../src/index.js"
import { AGENTS, FEATURES, featureModule, readAgentFixture } from "./helpers/OpcodeModules.js"
import { importedFuelInitial, instantiateMetered } from "./helpers/FuelCounter.js"
import { wat } from "./helpers/Wat.js"

// ---------------------------------------------------------------------------
// Helpers

const HUGE = 1n << 62n

const metered = (bytes: Uint8Array, options: FuelOptions = {}): Uint8Array<ArrayBuffer> => {
  const r = instrumentFuel(bytes, options)
  if (!r.ok) throw r.error
  return r.value
}

type Exports = Record<string, unknown>

/** An instance of a metered module (a fresh fuel counter when it imports one, as an engine gives it). */
const instantiate = (bytes: Uint8Array<ArrayBuffer>, imports: WebAssembly.Imports = {}): Exports =>
  instantiateMetered(bytes, imports).exports as Exports

const fn = (exports: Exports, name: string): ((...args: Array<unknown>) => unknown) => {
  const f = exports[name]
  if (typeof f !== "function") throw new Error(`no exported function ${name}`)
  return f as (...args: Array<unknown>) => unknown
}

const fuelOf = (exports: Exports): WebAssembly.Global => {
  const g = exports[FUEL_EXPORT]
  if (!(g instanceof WebAssembly.Global)) throw new Error("no fuel global")
  return g
}

/** What an engine does: set the fuel, call, read what is left. */
const callWithFuel = (
  exports: Exports,
  name: string,
  fuel: bigint,
  ...args: Array<unknown>
): { readonly ok: boolean; readonly value: unknown; readonly left: bigint } => {
  const g = fuelOf(exports)
  g.value = fuel
  try {
    const value = fn(exports, name)(...args)
    return { ok: true, value, left: g.value as bigint }
  } catch (e) {
    return { ok: false, value: e, left: g.value as bigint }
  }
}

/** Fuel units a call consumes (run with a huge budget). */
const consumed = (exports: Exports, name: string, ...args: Array<unknown>): bigint => {
  const r = callWithFuel(exports, name, HUGE, ...args)
  if (!r.ok) throw r.value
  return HUGE - r.left
}

/** A WAT module, metered, instantiated. */
const meteredWat = async (text: string, options: FuelOptions = {}): Promise<Exports> =>
  instantiate(metered(await wat(text), options))

const runScript = (exports: Exports, calls: ReadonlyArray<readonly [string, ...Array<unknown>]>, fuel?: bigint) =>
  calls.map(([name, ...args]) => {
    if (fuel !== undefined) fuelOf(exports).value = fuel
    try {
      return fn(exports, name)(...args)
    } catch (e) {
      return `trap: ${e instanceof Error ? `${e.constructor.name} ${e.message}` : String(e)}`
    }
  })

/**
 * The original instructions of a rewritten body: drops every inserted
 * sequence (the only users of the fuel global and of the added fuel local)
 * and returns the remaining instruction bytes, concatenated, plus how many
 * charges and checks were removed. Throws on any other use of them.
 */
const strip = (module: Uint8Array, body: FunctionBody, fuelGlobal: number, fuelLocal: number) => {
  const ins = body.instructions
  const imm = (i: number): string => {
    const x = ins[i]
    return x === undefined
      ? ""
      : `${x.name} ${Buffer.from(module.subarray(x.offset + (x.opcode > 0xff ? 2 : 1), x.end)).toString("hex")}`
  }
  const G = Buffer.from(leb(fuelGlobal)).toString("hex")
  const L = Buffer.from(leb(fuelLocal)).toString("hex")
  // a block's prologue: [global.get $fuel (load) | local.get $f] [i64.const c; i64.sub (charge)]
  // (local.set $f | local.tee $f; the check), or the plain check
  const cost: ReadonlyArray<RegExp | string> = [/^i64\.const [0-9a-f]+$/, "i64.sub "]
  const teeCheck = [
    `local.tee ${L}`,
    "i64.const 00",
    "i64.lt_s ",
    "if 40",
    `local.get ${L}`,
    `global.set ${G}`,
    "unreachable ",
    "end "
  ]
  const patterns: ReadonlyArray<readonly [string, ReadonlyArray<string | RegExp>, ReadonlyArray<string>]> = [
    ["load charge check", [`global.get ${G}`, ...cost, ...teeCheck], ["load", "charge", "check"]],
    ["load charge", [`global.get ${G}`, ...cost, `local.set ${L}`], ["load", "charge"]],
    ["load check", [`global.get ${G}`, ...teeCheck], ["load", "check"]],
    ["load", [`global.get ${G}`, `local.set ${L}`], ["load"]],
    ["charge check", [`local.get ${L}`, ...cost, ...teeCheck], ["charge", "check"]],
    ["charge", [`local.get ${L}`, ...cost, `local.set ${L}`], ["charge"]],
    [
      "check",
      [
        `local.get ${L}`,
        "i64.const 00",
        "i64.lt_s ",
        "if 40",
        `local.get ${L}`,
        `global.set ${G}`,
        "unreachable ",
        "end "
      ],
      ["check"]
    ],
    ["check", [`local.get ${L}`, "i64.const 00", "i64.lt_s ", "if 40", "unreachable ", "end "], ["check"]],
    ["flush", [`local.get ${L}`, `global.set ${G}`], ["flush"]]
  ]
  const kept: Array<number> = []
  const counts: Record<string, number> = { load: 0, charge: 0, check: 0, flush: 0 }
  for (let i = 0; i < ins.length; i++) {
    const here = imm(i)
    if (here === `global.get ${G}` || here === `local.get ${L}`) {
      const found = patterns.find(([, p]) =>
        p.every((q, k) => (typeof q === "string" ? imm(i + k) === q : q.test(imm(i + k))))
      )
      if (found === undefined) throw new Error(`unexpected use of the fuel counter at ${ins[i]!.offset}: ${here}`)
      for (const part of found[2]) counts[part]!++
      i += found[1].length - 1
      continue
    }
    if (here.startsWith("local.") && here.endsWith(` ${L}`))
      throw new Error(`unexpected use of the fuel local: ${here}`)
    const x = ins[i]!
    for (let k = x.offset; k < x.end; k++) kept.push(module[k]!)
  }
  return { code: Uint8Array.from(kept), counts }
}

const leb = (n: number): Array<number> => {
  const out: Array<number> = []
  do {
    let b = n & 0x7f
    n >>>= 7
    if (n !== 0) b |= 0x80
    out.push(b)
  } while (n !== 0)
  return out
}

const info = (bytes: Uint8Array) => {
  const r = readModule(bytes)
  if (!r.ok) throw r.error
  return r.value
}

const code = (bytes: Uint8Array): ReadonlyArray<FunctionBody> => {
  const r = decodeCodeSection(bytes)
  if (!r.ok) throw r.error
  return r.value
}

/** Checks a rewrite: valid, one new exported i64 global at the end, and nothing else changed. */
/**
 * Checks a rewrite: the counter is imported (after the module's imports, `FUEL_SECTION` added) when the module
 * defines no globals and `counter` is `"auto"`, else defined (after its globals); same index either way.
 */
const checkRewrite = (
  original: Uint8Array<ArrayBuffer>,
  rewritten: Uint8Array<ArrayBuffer>,
  counter: "auto" | "defined" = "auto"
) => {
  expect(WebAssembly.validate(rewritten)).toBe(true)
  new WebAssembly.Module(rewritten) // compiles

  const a = info(original)
  const b = info(rewritten)
  const importedGlobals = a.imports.filter((i) => i.type.kind === "global").length
  const fuelIndex = importedGlobals + a.globals.length
  const imported = a.globals.length === 0 && counter === "auto"
  const counterType = { valueType: "i64", mutable: true }
  expect(b.imports).toEqual(
    imported
      ? [...a.imports, { module: FUEL_IMPORT_MODULE, name: FUEL_IMPORT_NAME, type: { kind: "global", ...counterType } }]
      : a.imports
  )
  expect(b.functions).toEqual(a.functions)
  expect(b.types).toEqual(a.types)
  expect(b.globals.map((g) => [g.index, g.type])).toEqual([
    ...a.globals.map((g) => [g.index, g.type]),
    ...(imported ? [] : [[fuelIndex, counterType]])
  ])
  expect(b.customSections.map((s) => s.name)).toEqual([
    ...a.customSections.map((s) => s.name),
    ...(imported ? [FUEL_SECTION] : [])
  ])
  expect(b.exports.map((e) => [e.name, e.index, e.type.kind])).toEqual([
    ...a.exports.map((e) => [e.name, e.index, e.type.kind]),
    [FUEL_EXPORT, fuelIndex, "global"]
  ])
  expect(b.start).toBe(a.start)

  // every other section is byte-identical, in the same order (the added custom section is the last one)
  const changed = new Set(imported ? [2, 7, 10] : [6, 7, 10])
  const sections = (m: typeof a) => (m === b && imported ? m.sections.slice(0, -1) : m.sections)
  const raw = (bytes: Uint8Array, m: typeof a) =>
    sections(m)
      .filter((s) => !changed.has(s.id))
      .map((s) => Buffer.from(bytes.subarray(s.offset, s.payloadOffset + s.size)).toString("hex"))
  expect(raw(rewritten, b)).toEqual(raw(original, a))
  const ids = (m: typeof a) =>
    sections(m)
      .map((s) => s.id)
      .filter((id) => id !== (imported ? 2 : 6) && id !== 7)
  expect(ids(b)).toEqual(ids(a))
  if (imported) expect(b.sections.at(-1)?.id).toBe(0)

  // every body: the same locals plus one i64, and the same instructions once the inserted sequences are removed
  const before = code(original)
  const after = code(rewritten)
  expect(after.length).toBe(before.length)
  before.forEach((body, i) => {
    const r = after[i]!
    expect(r.locals).toEqual([...body.locals, { count: 1, type: 0x7e }])
    const type = a.types[a.functions[i]!]!
    const fuelLocal = type.params.length + body.locals.reduce((n, l) => n + l.count, 0)
    const s = strip(rewritten, r, fuelIndex, fuelLocal)
    expect(Buffer.from(s.code).equals(Buffer.from(original.subarray(body.codeOffset, body.end)))).toBe(true)
    expect(s.counts.load).toBeGreaterThanOrEqual(1) // function entry at least
    expect(s.counts.check).toBeGreaterThanOrEqual(1) // entry (and every reachable exit)
  })
}

// ---------------------------------------------------------------------------

describe("rewritten modules are valid and keep everything else", () => {
  for (const ref of referenceModules) {
    it(`reference module ${ref.name}`, () => {
      const bytes = ref.read()
      checkRewrite(bytes, metered(bytes))
    })
  }
  for (const name of AGENTS) {
    it(`agent ${name}`, () => {
      const bytes = readAgentFixture(name)
      checkRewrite(bytes, metered(bytes))
    })
  }
  for (const feature of FEATURES) {
    it(`every ${feature.name} opcode`, async () => {
      const { bytes } = await featureModule(feature)
      checkRewrite(bytes, metered(bytes))
    })
  }

  it("creates the global and export sections in their place when the module has none", async () => {
    const bytes = await wat(`(module
      (type (func))
      (import "env" "f" (func))
      (memory 1)
      (func $start)
      (start $start)
      (elem func $start)
      (data "abc"))`)
    const out = metered(bytes, { initialFuel: 5n, counter: "defined" })
    checkRewrite(bytes, out, "defined")
    const ids = info(out).sections.map((s) => s.id)
    expect(ids).toEqual([1, 2, 3, 5, 6, 7, 8, 9, 10, 11])
    const exports = instantiate(out, { env: { f: () => undefined } })
    expect(fuelOf(exports).value).toBe(5n) // the start function costs nothing
  })

  it("imports the counter when the module defines no globals: the import and export sections in their place, the initial fuel in FUEL_SECTION", async () => {
    const bytes = await wat(`(module
      (type (func))
      (memory 1)
      (func $start)
      (start $start)
      (elem func $start)
      (data "abc"))`)
    const out = metered(bytes, { initialFuel: -5n })
    checkRewrite(bytes, out)
    expect(info(out).sections.map((s) => s.id)).toEqual([1, 2, 3, 5, 7, 8, 9, 10, 11, 0])
    const module = new WebAssembly.Module(out)
    expect(importedFuelInitial(module)).toBe(-5n)
    expect(WebAssembly.Module.imports(module)).toEqual([
      { module: FUEL_IMPORT_MODULE, name: FUEL_IMPORT_NAME, kind: "global" }
    ])
    // the export is the imported global itself (JS API: one object per global)
    const counter = new WebAssembly.Global({ value: "i64", mutable: true }, 7n)
    const exports = new WebAssembly.Instance(module, fuelImports(counter)).exports
    expect(exports[FUEL_EXPORT]).toBe(counter)
    expect(counter.value).toBe(7n) // the start function costs nothing; the engine sets the counter, not the module
    // without the counter the module does not link
    expect(() => new WebAssembly.Instance(module, {})).toThrow(TypeError)
  })

  it("a module with no sections at all", () => {
    const bytes = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00])
    const defined = metered(bytes, { counter: "defined" })
    expect(info(defined).sections.map((s) => s.id)).toEqual([6, 7])
    expect(fuelOf(instantiate(defined)).value).toBe(0n)
    const out = metered(bytes)
    expect(info(out).sections.map((s) => s.id)).toEqual([2, 7, 0])
    expect(fuelOf(instantiate(out)).value).toBe(0n)
  })

  it("an empty global section counts as none: the counter is imported and the section kept", () => {
    // (module (global section with 0 entries))
    const bytes = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x06, 0x01, 0x00])
    const out = metered(bytes)
    expect(info(out).sections.map((s) => s.id)).toEqual([2, 6, 7, 0])
    expect(info(out).globals).toEqual([])
    expect(fuelOf(instantiate(out)).value).toBe(0n)
  })

  it("appends after imported and defined globals, so no global index shifts", async () => {
    const bytes = await wat(`(module
      (import "env" "g" (global $ig i32))
      (global $a (mut i32) (i32.const 1))
      (global $b i64 (i64.const 2))
      (func (export "sum") (result i64)
        (i64.add (i64.extend_i32_s (i32.add (global.get $ig) (global.get $a))) (global.get $b))))`)
    const out = metered(bytes)
    checkRewrite(bytes, out)
    expect(info(out).exports.find((e) => e.name === FUEL_EXPORT)?.index).toBe(3)
    const exports = instantiate(out, { env: { g: 10 } })
    expect(callWithFuel(exports, "sum", 100n).value).toBe(13n)
  })

  it("keeps custom sections (name, signature) byte for byte", () => {
    const bytes = readReferenceModule("as-sha256")
    const a = info(bytes)
    const b = info(metered(bytes))
    const out = metered(bytes)
    expect(
      b.customSections.map((s) => Buffer.from(out.subarray(s.offset, s.offset + s.length)).toString("hex"))
    ).toEqual(a.customSections.map((s) => Buffer.from(bytes.subarray(s.offset, s.offset + s.length)).toString("hex")))
  })

  it("keeps the signature section of a signed agent", () => {
    const signed = new Uint8Array(readFileSync(new URL("../../agents/build/counter.wasm", import.meta.url)))
    const out = metered(signed)
    checkRewrite(signed, out)
    expect(info(out).customSections.map((s) => s.name)).toEqual(info(signed).customSections.map((s) => s.name))
  })
})

describe("differential: metered (with ample fuel) and unmetered modules compute the same", () => {
  const sha256 = (exports: Exports, data: Uint8Array, fuel?: bigint): string => {
    const memory = exports.memory as WebAssembly.Memory
    const input = (exports.input as WebAssembly.Global).value as number
    const output = (exports.output as WebAssembly.Global).value as number
    const chunk = (exports.INPUT_LENGTH as WebAssembly.Global).value as number
    const call = (name: string, ...args: Array<unknown>) => {
      if (fuel !== undefined) fuelOf(exports).value = fuel
      fn(exports, name)(...args)
      if (fuel !== undefined) expect(fuelOf(exports).value as bigint).toBeGreaterThan(0n)
    }
    call("init")
    for (let i = 0; i < data.length; i += chunk) {
      const part = data.subarray(i, i + chunk)
      new Uint8Array(memory.buffer, input, part.length).set(part)
      call("update", input, part.length)
    }
    call("final", output)
    return Buffer.from(new Uint8Array(memory.buffer, output, 32)).toString("hex")
  }
  const abort = {
    env: {
      abort: () => {
        throw new Error("abort")
      }
    }
  }
  const inputs = [0, 1, 3, 55, 56, 63, 64, 65, 1000, 4096, 100_000].map((n) => {
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff
    return out
  })

  for (const name of ["as-sha256", "as-sha256-simd"] as const) {
    it(`${name}: digests equal node:crypto's, metered and not`, () => {
      const bytes = readReferenceModule(name)
      const plain = instantiate(bytes, abort)
      const fueled = instantiate(metered(bytes, { initialFuel: HUGE }), abort)
      for (const data of inputs) {
        const expected = createHash("sha256").update(data).digest("hex")
        expect(sha256(plain, data)).toBe(expected)
        expect(sha256(fueled, data, HUGE)).toBe(expected)
      }
    })
  }

  const scripts: Record<string, ReadonlyArray<readonly [string, ...Array<unknown>]>> = {
    counter: [
      ["increment"],
      ["increment"],
      ["add", 40],
      ["get"],
      ["add_i64", 2n ** 63n - 1n, 1n],
      ["reset"],
      ["get"],
      ["_health_check"]
    ],
    multi: [
      ["swap", 1, 2n],
      ["divmod", 17, 5],
      ["divmod", -17, 5],
      ["divmod", 1, 0],
      ["add_f32", 1.25, 2.5],
      ["mul_f64", 3, 0.5],
      ["sqrt_f64", 2],
      ["all_types"]
    ],
    "no-memory": [
      ["add", 2, 3],
      ["accumulate", 5],
      ["accumulate", 6],
      ["factorial", 20n],
      ["factorial", 25n]
    ],
    grower: [
      ["size"],
      ["grow", 1],
      ["size"],
      ["poke", 70_000, 300],
      ["peek", 70_000],
      ["grow", 5],
      ["peek", 10_000_000]
    ],
    leaky: [["leak", 3], ["leak", 0], ["leaked"], ["calls_made"], ["pages"], ["leak", 100], ["pages"]],
    looper: [["spin_n", 1000], ["spin_n", -1], ["iterations"]],
    trapper: [
      ["divide", 7, 2],
      ["divide", 1, 0],
      ["divide", -2147483648, -1],
      ["crash"],
      ["oob"],
      ["recurse", 100],
      ["ok"]
    ],
    flaky: [
      ["work"],
      ["configure", 2],
      ["_health_check"],
      ["_health_check"],
      ["_health_check"],
      ["_recover"],
      ["health_checks"]
    ],
    lifecycle: [
      ["state"],
      ["_initialize"],
      ["bump"],
      ["break_health"],
      ["_health_check"],
      ["_recover"],
      ["_health_check"],
      ["_cleanup"],
      ["initialized"]
    ]
  }
  for (const [name, calls] of Object.entries(scripts)) {
    it(`agent ${name}`, () => {
      const bytes = readAgentFixture(name)
      const expected = runScript(instantiate(bytes), calls)
      expect(runScript(instantiate(metered(bytes, { initialFuel: HUGE })), calls, HUGE)).toEqual(expected)
    })
  }

  it("agent text (a start function, GC, strings, maps)", () => {
    const bytes = readAgentFixture("text")
    const sentence = new TextEncoder().encode(
      "The quick brown fox jumps over the lazy dog; the dog sleeps. THE END, the end!"
    )
    const run = (exports: Exports, fuel?: bigint) => {
      const call = (name: string, ...args: Array<unknown>) => {
        if (fuel !== undefined) fuelOf(exports).value = fuel
        return fn(exports, name)(...args)
      }
      const ptr = call("alloc", sentence.length) as number
      new Uint8Array((exports.memory as WebAssembly.Memory).buffer, ptr, sentence.length).set(sentence)
      const pair = call("top_word", ptr, sentence.length) as number
      const view = new DataView((exports.memory as WebAssembly.Memory).buffer)
      const word = new TextDecoder().decode(
        new Uint8Array(
          (exports.memory as WebAssembly.Memory).buffer,
          view.getUint32(pair, true),
          view.getUint32(pair + 4, true)
        )
      )
      const result = [
        call("word_count", ptr, sentence.length),
        call("unique_words", ptr, sentence.length),
        word,
        call("checksum", ptr, sentence.length)
      ]
      call("dealloc", ptr, sentence.length)
      return result
    }
    const expected = run(instantiate(bytes))
    expect(expected[2]).toBe("the")
    expect(run(instantiate(metered(bytes, { initialFuel: HUGE })), HUGE)).toEqual(expected)
  })

  it("agent host-caller (imports)", () => {
    const bytes = readAgentFixture("host-caller")
    const imports = (log: Array<number>) => ({ env: { log: (x: number) => void log.push(x), now: () => 1234.5 } })
    const calls: ReadonlyArray<readonly [string, ...Array<unknown>]> = [
      ["call_log", 7],
      ["log_n", 5],
      ["call_now"],
      ["elapsed_since", 1000],
      ["log_calls"]
    ]
    const a: Array<number> = []
    const b: Array<number> = []
    const expected = runScript(instantiate(bytes, imports(a)), calls)
    expect(runScript(instantiate(metered(bytes), imports(b)), calls, HUGE)).toEqual(expected)
    expect(b).toEqual(a)
  })

  it("a module with a start function needs initial fuel to instantiate", () => {
    const bytes = readAgentFixture("text") // AssemblyScript runtime set-up runs in its start function
    expect(info(bytes).start).toBeDefined()
    expect(() => instantiate(metered(bytes))).toThrow(WebAssembly.RuntimeError)
    const exports = instantiate(metered(bytes, { initialFuel: 1_000_000n }))
    const left = fuelOf(exports).value as bigint
    expect(left).toBeGreaterThan(0n)
    expect(left).toBeLessThan(1_000_000n)
  })
})

describe("runaway code is stopped", () => {
  it("looper.spin with 10 000 fuel traps, and the fuel left is negative", () => {
    const exports = instantiate(metered(readAgentFixture("looper")))
    const r = callWithFuel(exports, "spin", 10_000n)
    expect(r.ok).toBe(false)
    expect(r.value).toBeInstanceOf(WebAssembly.RuntimeError)
    expect(r.left).toBeLessThan(0n)
    // the loop ran about 10 000 / (cost per iteration) times before it stopped
    const iterations = callWithFuel(exports, "iterations", HUGE).value as bigint
    expect(iterations).toBeGreaterThan(1000n)
    expect(iterations).toBeLessThan(10_000n)
  })

  it("a bare (loop br 0) with 10 000 fuel traps", async () => {
    const exports = await meteredWat(`(module (func (export "f") (loop $l (br $l))))`)
    const r = callWithFuel(exports, "f", 10_000n)
    expect(r.ok).toBe(false)
    expect(r.value).toBeInstanceOf(WebAssembly.RuntimeError)
    expect(r.left).toBe(-1n) // 1 unit (br) per iteration, checked at every loop header
  })

  it("unbounded recursion is stopped by fuel before the stack overflows", async () => {
    const exports = await meteredWat(`(module (func $r (export "r") (param i32) (result i32)
      (call $r (i32.add (local.get 0) (i32.const 1)))))`)
    const r = callWithFuel(exports, "r", 1000n, 0)
    expect(r.ok).toBe(false)
    expect(r.value).toBeInstanceOf(WebAssembly.RuntimeError) // not RangeError: Maximum call stack size exceeded
    expect(r.left).toBeLessThan(0n)
    // without fuel limits the same code overflows the stack
    const plain = instantiate(
      await wat(`(module (func $r (export "r") (param i32) (result i32)
      (call $r (i32.add (local.get 0) (i32.const 1)))))`)
    )
    expect(() => fn(plain, "r")(0)).toThrow(RangeError)
  })

  it("trapper.recurse with a huge depth and small fuel is a fuel trap, not a stack overflow", () => {
    const exports = instantiate(metered(readAgentFixture("trapper")))
    const r = callWithFuel(exports, "recurse", 5_000n, 10_000_000)
    expect(r.value).toBeInstanceOf(WebAssembly.RuntimeError)
    expect(r.left).toBeLessThan(0n)
  })

  it("other traps leave the fuel counter at or above 0", () => {
    const exports = instantiate(metered(readAgentFixture("trapper")))
    for (const [name, ...args] of [["divide", 1, 0], ["crash"], ["oob"]] as const) {
      const r = callWithFuel(exports, name, 1000n, ...args)
      expect(r.ok).toBe(false)
      expect(r.value).toBeInstanceOf(WebAssembly.RuntimeError)
      expect(r.left).toBeGreaterThanOrEqual(0n)
      expect(r.left).toBeLessThanOrEqual(1000n) // the value of the last store (entry, call, unreachable)
    }
  })

  it("unreachable stores the fuel first: an abort reports exactly what the call consumed", async () => {
    const exports = await meteredWat(`(module (memory 1)
      (func (export "abort") (drop (i32.add (i32.const 1) (i32.const 2))) unreachable)
      (func (export "oob") (drop (i32.add (i32.const 1) (i32.const 2))) (drop (i32.load (i32.const -16)))))`)
    expect(callWithFuel(exports, "abort", 1000n)).toMatchObject({ ok: false, left: 997n })
    // other traps leave the value of the last store (here: function entry)
    expect(callWithFuel(exports, "oob", 1000n)).toMatchObject({ ok: false, left: 1000n })
  })

  it("a zero-fuel call traps at function entry when the function costs anything", async () => {
    const exports = await meteredWat(`(module (func (export "f") (result i32) (i32.const 1)))`)
    expect(callWithFuel(exports, "f", 0n)).toMatchObject({ ok: false, left: -1n })
    expect(callWithFuel(exports, "f", 1n)).toMatchObject({ ok: true, value: 1, left: 0n })
  })
})

describe("determinism and exactness", () => {
  /** Smallest fuel with which the call succeeds (binary search). */
  const minimalFuel = (exports: Exports, name: string, ...args: Array<unknown>): bigint => {
    let lo = 0n
    let hi = 1n
    while (!callWithFuel(exports, name, hi, ...args).ok) {
      hi *= 2n
      if (hi > HUGE) throw new Error(`${name} fails with any fuel`)
    }
    while (lo < hi) {
      const mid = (lo + hi) / 2n
      if (callWithFuel(exports, name, mid, ...args).ok) hi = mid
      else lo = mid + 1n
    }
    return lo
  }

  it("spin_n: the same fuel stops at the same point every time", () => {
    const bytes = metered(readAgentFixture("looper"))
    const lefts = new Set<bigint>()
    const iterations = new Set<bigint>()
    for (let i = 0; i < 5; i++) {
      const exports = instantiate(bytes)
      const r = callWithFuel(exports, "spin_n", 123_457n, 1_000_000)
      expect(r.ok).toBe(false)
      lefts.add(r.left)
      iterations.add(callWithFuel(exports, "iterations", HUGE).value as bigint)
    }
    expect(lefts.size).toBe(1)
    expect(iterations.size).toBe(1)
    expect([...lefts][0]).toBeLessThan(0n)
  })

  it("spin_n(1000) needs F units: succeeds with F (0 left), traps with F − 1 (−1 left)", () => {
    const exports = instantiate(metered(readAgentFixture("looper")))
    const f = minimalFuel(exports, "spin_n", 1000)
    expect(f).toBe(consumed(exports, "spin_n", 1000))
    // 13 units per iteration (4 at the loop header up to br_if, 9 after it), 4 for the exit test, 1 for the result
    expect(f).toBe(13n * 1000n + 4n + 1n)
    expect(callWithFuel(exports, "spin_n", f, 1000)).toMatchObject({ ok: true, value: 1000, left: 0n })
    const short = callWithFuel(exports, "spin_n", f - 1n, 1000)
    expect(short.ok).toBe(false)
    expect(short.left).toBe(-1n)
  })

  for (const name of ["as-sha256", "as-sha256-simd"] as const) {
    it(`${name}: digest of 1000 bytes needs F units exactly, and stops at the same point with less`, () => {
      const bytes = metered(readReferenceModule(name), { initialFuel: HUGE })
      const abort = {
        env: {
          abort: () => {
            throw new Error("abort")
          }
        }
      }
      const setUp = () => {
        const exports = instantiate(bytes, abort)
        const input = (exports.input as WebAssembly.Global).value as number
        const data = new Uint8Array(1000).map((_, i) => i & 0xff)
        new Uint8Array((exports.memory as WebAssembly.Memory).buffer, input, data.length).set(data)
        return exports
      }
      const exports = setUp()
      const f = minimalFuel(exports, "digest", 1000)
      expect(f).toBe(consumed(exports, "digest", 1000))
      expect(callWithFuel(exports, "digest", f, 1000)).toMatchObject({ ok: true, left: 0n })
      expect(callWithFuel(exports, "digest", f - 1n, 1000)).toMatchObject({ ok: false, left: -1n })
      // same fuel, fresh instances: same stopping point
      const half = f / 2n
      const lefts = new Set([0, 1, 2].map(() => callWithFuel(setUp(), "digest", half, 1000).left))
      expect(lefts.size).toBe(1)
      expect([...lefts][0]).toBeLessThan(0n)
    })
  }
})

describe("cost accounting (Wasmtime's defaults)", () => {
  it("local.get 0; local.get 1; i32.add; end costs 3", async () => {
    const exports = await meteredWat(`(module (func (export "add") (param i32 i32) (result i32)
      local.get 0 local.get 1 i32.add))`)
    expect(consumed(exports, "add", 2, 3)).toBe(3n)
  })

  it("nop, drop, block, loop, end cost nothing; if, br_if, select cost 1", async () => {
    const exports = await meteredWat(`(module
      (func (export "free") nop nop (block (loop nop)) nop)
      (func (export "drop") (param i32) local.get 0 drop)
      (func (export "sel") (param i32) (result i32) (select (i32.const 1) (i32.const 2) (local.get 0))))`)
    expect(consumed(exports, "free")).toBe(0n)
    expect(consumed(exports, "drop", 1)).toBe(1n)
    expect(consumed(exports, "sel", 1)).toBe(4n)
  })

  it("if/else charges the arm taken only", async () => {
    const exports = await meteredWat(`(module (func (export "f") (param i32) (result i32)
      (if (result i32) (local.get 0)
        (then (i32.const 1))
        (else (i32.add (i32.mul (i32.const 2) (i32.const 3)) (i32.const 4))))))`)
    // local.get + if = 2; then: 1; else: 5
    expect(consumed(exports, "f", 1)).toBe(3n)
    expect(consumed(exports, "f", 0)).toBe(7n)
  })

  it("a call costs 1 plus the callee's instructions; return and unreachable cost 0", async () => {
    const exports = await meteredWat(`(module
      (func $sq (param i32) (result i32) (return (i32.mul (local.get 0) (local.get 0))))
      (func (export "f") (param i32) (result i32) (i32.add (call $sq (local.get 0)) (i32.const 1)))
      (func (export "trap") unreachable))`)
    // f: local.get, call, i32.const, i32.add = 4; $sq: local.get ×2, i32.mul = 3
    expect(consumed(exports, "f", 5)).toBe(7n)
    expect(callWithFuel(exports, "trap", 0n)).toMatchObject({ ok: false, left: 0n })
  })

  it("br_table to the function's label is an exit: checked before it", async () => {
    const exports = await meteredWat(`(module (func (export "f") (param i32) (result i32)
      (block $b (result i32) (br_table $b 1 (i32.const 7) (local.get 0)))
      (i32.const 1) (i32.add)))`)
    expect(callWithFuel(exports, "f", 5n, 0)).toMatchObject({ ok: true, value: 8, left: 0n })
    expect(callWithFuel(exports, "f", 3n, 1)).toMatchObject({ ok: true, value: 7, left: 0n })
    expect(callWithFuel(exports, "f", 2n, 1)).toMatchObject({ ok: false, left: -1n })
  })

  it("exceptions: the handler's block is charged when an exception is caught", async () => {
    const exports = await meteredWat(`(module
      (tag $e (param i32))
      (func $thrower (param i32) (throw $e (local.get 0)))
      (func (export "f") (param i32) (result i32)
        (try (result i32)
          (do (call $thrower (local.get 0)) (i32.const 99))
          (catch $e (i32.const 1) (i32.add)))))`)
    // f: try, local.get, call = 3; $thrower: local.get, throw = 2; handler: catch, i32.const, i32.add = 3
    expect(callWithFuel(exports, "f", 8n, 41)).toMatchObject({ ok: true, value: 42, left: 0n })
    expect(callWithFuel(exports, "f", 7n, 41)).toMatchObject({ ok: false, left: -1n })
  })

  it("tail calls are exits: checked before them", async () => {
    const exports = await meteredWat(`(module
      (func $id (param i32) (result i32) (local.get 0))
      (func (export "f") (param i32) (result i32) (return_call $id (local.get 0))))`)
    expect(callWithFuel(exports, "f", 3n, 9)).toMatchObject({ ok: true, value: 9, left: 0n })
    expect(callWithFuel(exports, "f", 2n, 9)).toMatchObject({ ok: false, left: -1n })
  })

  it("custom costs", async () => {
    const text = `(module (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))`
    const double = await meteredWat(text, { costs: (op) => 2 * defaultOperatorCost(op) })
    expect(consumed(double, "add", 1, 2)).toBe(6n)
    const addOnly = await meteredWat(text, { costs: (op) => (op === 0x6a ? 1000 : 0) })
    expect(consumed(addOnly, "add", 1, 2)).toBe(1000n)
    const huge = await meteredWat(text, { costs: (op) => (op === 0x6a ? 2 ** 40 : 0) })
    expect(consumed(huge, "add", 1, 2)).toBe(2n ** 40n)
  })

  it("invalid costs are a typed error at the instruction", async () => {
    const bytes = await wat(`(module (func (result i32) i32.const 1))`)
    for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const r = instrumentFuel(bytes, { costs: () => bad })
      expect(r.ok).toBe(false)
      if (!r.ok) {
        expect(r.error.reason).toMatch(/invalid fuel cost/)
        expect(bytes[r.error.offset]).toBe(0x41)
      }
    }
  })

  it("the default table: Wasmtime's zero-cost operators, 1 for the rest", () => {
    const zero = [0x00, 0x01, 0x02, 0x03, 0x05, 0x0b, 0x0f, 0x1a]
    for (let op = 0; op < 0xfc; op++) expect(defaultOperatorCost(op)).toBe(zero.includes(op) ? 0 : 1)
    expect(defaultOperatorCost(0xfd000c)).toBe(1)
    expect(defaultOperatorCost(0xfe0003)).toBe(1)
  })
})

describe("bad input is a typed error with the offset", () => {
  const fails = (r: ReturnType<typeof instrumentFuel>, reason: RegExp): number => {
    expect(r.ok).toBe(false)
    if (r.ok) return -1
    expect(r.error._tag).toBe("WasmBinaryError")
    expect(r.error.reason).toMatch(reason)
    return r.error.offset
  }

  it("an unknown opcode", async () => {
    const bytes = await wat(`(module (func (result i32) (i32.const 1)))`)
    const copy = bytes.slice()
    const at = copy.lastIndexOf(0x41)
    copy[at] = 0xc5
    expect(fails(instrumentFuel(copy), /illegal opcode 0xc5/)).toBe(at)
  })

  it("a relaxed-SIMD opcode (not in Node 20)", () => {
    // (func (param v128) (result v128) local.get 0; 0xfd 0x100 (i8x16.relaxed_swizzle))
    const body = [0x00, 0x20, 0x00, 0xfd, 0x80, 0x02, 0x0b]
    const module = Uint8Array.from([
      ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
      ...[0x01, 0x06, 0x01, 0x60, 0x01, 0x7b, 0x01, 0x7b],
      ...[0x03, 0x02, 0x01, 0x00],
      ...[0x0a, body.length + 2, 0x01, body.length, ...body]
    ])
    expect(fails(instrumentFuel(module), /relaxed SIMD/)).toBe(module.length - 4)
  })

  it("truncated modules", () => {
    const bytes = readReferenceModule("as-sha256")
    for (const cut of [3, 9, 100, 2000, bytes.length - 1]) {
      const offset = fails(
        instrumentFuel(bytes.subarray(0, cut)),
        /unexpected end|section size mismatch|length out of bounds/
      )
      expect(offset).toBeLessThanOrEqual(cut)
    }
  })

  it("an initial fuel outside i64", () => {
    const bytes = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00])
    fails(instrumentFuel(bytes, { initialFuel: 1n << 63n }), /not an i64/)
    expect(instrumentFuel(bytes, { initialFuel: -(1n << 63n) }).ok).toBe(true)
  })

  it("not a module", () => {
    expect(fails(instrumentFuel(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])), /magic header/)).toBe(0)
  })

  it("a module that already exports a hidden name or imports from the reserved module (e.g. already metered)", async () => {
    const once = metered(await wat(`(module (func (export "f")))`), { counter: "defined" })
    expect(fails(instrumentFuel(once), /reserved prefix/)).toBeGreaterThan(8)
    const imported = metered(await wat(`(module (func (export "f")))`))
    expect(fails(instrumentFuel(imported), /reserved module "agent-runtime"/)).toBeGreaterThan(8)
    const refill = await wat(`(module (import "agent-runtime" "refill" (func)))`)
    fails(instrumentFuel(refill), /reserved module/)
    fails(instrumentFuel(refill, { counter: "defined" }), /reserved module/)
    const own = await wat(`(module (global (export "agent-runtime:mine") i32 (i32.const 0)))`)
    fails(instrumentFuel(own), /reserved prefix/)
  })

  it("never throws on mutated real modules", () => {
    const bytes = readReferenceModule("as-sha256")
    let seed = 12345
    for (let i = 0; i < 300; i++) {
      const copy = bytes.slice()
      seed = (seed * 1103515245 + 12345) >>> 0
      copy[8 + (seed % (copy.length - 8))] = seed >>> 24
      const r = instrumentFuel(copy)
      if (r.ok) {
        // a mutation that still decodes: the rewrite is valid exactly when the original is
        expect(WebAssembly.validate(r.value)).toBe(WebAssembly.validate(copy))
      } else {
        expect(r.error.offset).toBeGreaterThanOrEqual(0)
        expect(r.error.offset).toBeLessThanOrEqual(copy.length)
      }
    }
  })
})

describe("overhead (printed, not asserted)", () => {
  it("times metered against unmetered", () => {
    /** Best of 7 trials of `rounds` calls each, after a warm-up (so both run optimized code). */
    const time = (f: () => void, rounds: number): number => {
      for (let i = 0; i < rounds; i++) f()
      let best = Number.POSITIVE_INFINITY
      for (let t = 0; t < 7; t++) {
        const start = performance.now()
        for (let i = 0; i < rounds; i++) f()
        best = Math.min(best, (performance.now() - start) / rounds)
      }
      return best
    }
    const abort = {
      env: {
        abort: () => {
          throw new Error("abort")
        }
      }
    }
    const lines: Array<string> = []
    for (const name of ["as-sha256", "as-sha256-simd"] as const) {
      const plain = instantiate(readReferenceModule(name), abort)
      const fueled = instantiate(metered(readReferenceModule(name), { initialFuel: HUGE }), abort)
      const bench = (exports: Exports) => () => {
        fuelOf(fueled).value = HUGE
        const input = (exports.input as WebAssembly.Global).value as number
        const chunk = (exports.INPUT_LENGTH as WebAssembly.Global).value as number
        fn(exports, "init")()
        for (let k = 0; k < 64; k++) fn(exports, "update")(input, chunk)
        fn(exports, "final")((exports.output as WebAssembly.Global).value)
      }
      const a = time(bench(plain), 100)
      const b = time(bench(fueled), 100)
      lines.push(
        `${name} (64 × INPUT_LENGTH bytes): unmetered ${a.toFixed(3)} ms, metered ${b.toFixed(3)} ms, ratio ${(b / a).toFixed(2)}`
      )
    }
    const looper = readAgentFixture("looper")
    const plain = instantiate(looper)
    const fueled = instantiate(metered(looper))
    const a = time(() => fn(plain, "spin_n")(1_000_000), 20)
    const b = time(() => {
      fuelOf(fueled).value = HUGE
      fn(fueled, "spin_n")(1_000_000)
    }, 20)
    lines.push(
      `looper.spin_n(1e6): unmetered ${a.toFixed(3)} ms, metered ${b.toFixed(3)} ms, ratio ${(b / a).toFixed(2)}`
    )
    console.log(`fuel overhead:\n  ${lines.join("\n  ")}`)
    expect(lines).toHaveLength(3)
  })
})

describe("deferStart: the start function exported for the engine to call (its exhaustion is recognisable)", () => {
  it("drops the start section, exports the start function as START_EXPORT; instantiation runs nothing", () => {
    const bytes = readAgentFixture("text") // AssemblyScript runtime set-up runs in its start function
    const out = metered(bytes, { initialFuel: 10n, deferStart: true })
    const m = info(out)
    expect(m.start).toBeUndefined()
    expect(m.exports.filter((e) => e.name === START_EXPORT).map((e) => [e.type.kind, e.index])).toEqual([
      ["function", info(bytes).start]
    ])
    const exports = instantiate(out) // would trap with the start function in place (10 fuel units)
    expect(fuelOf(exports).value).toBe(10n)
    // the engine runs it: out of fuel, and the counter says so
    expect(() => fn(exports, START_EXPORT)()).toThrow(WebAssembly.RuntimeError)
    expect(fuelOf(exports).value as bigint).toBeLessThan(0n)
  })

  it("with enough fuel the deferred start function sets the module up as the original does", () => {
    const out = metered(readAgentFixture("text"), { initialFuel: 1_000_000n, deferStart: true })
    const exports = instantiate(out)
    fn(exports, START_EXPORT)()
    const left = fuelOf(exports).value as bigint
    expect(left).toBeGreaterThan(0n)
    expect(left).toBeLessThan(1_000_000n)
  })

  it("a module without a start function gets no START_EXPORT; rewriteModule lists the added export and keeps state export working", () => {
    expect(info(metered(readAgentFixture("looper"), { deferStart: true })).exports.map((e) => e.name)).not.toContain(
      START_EXPORT
    )
    const r = rewriteModule(readAgentFixture("text"), {
      fuel: { initialFuel: 5n, deferStart: true },
      exportState: true,
      maxMemoryPages: 16
    })
    expect(r.ok).toBe(true)
    if (r.ok) expect(r.value.addedExports).toContain(START_EXPORT)
  })
})

describe("an imported counter meters exactly as a defined one (the same module rewritten both ways)", () => {
  /** The code section's bytes (what the instrumentation wrote). */
  const codeOf = (bytes: Uint8Array): string => {
    const s = info(bytes).sections.find((x) => x.id === 10)
    return s === undefined ? "" : Buffer.from(bytes.subarray(s.offset, s.payloadOffset + s.size)).toString("hex")
  }
  const both = (bytes: Uint8Array, options: FuelOptions = {}) => ({
    imported: metered(bytes, options),
    defined: metered(bytes, { ...options, counter: "defined" })
  })

  it("the instrumentation is the same bytes (the counter has the same global index); the modules validate", async () => {
    const modules: Array<readonly [string, Uint8Array]> = [
      ...AGENTS.map((name) => [`agent ${name}`, readAgentFixture(name)] as const),
      ...referenceModules.map((ref) => [`reference ${ref.name}`, ref.read()] as const)
    ]
    for (const feature of FEATURES) modules.push([`feature ${feature.name}`, (await featureModule(feature)).bytes])
    let importedShapes = 0
    for (const [name, bytes] of modules) {
      const { defined, imported } = both(bytes, { initialFuel: 77n, deferStart: true })
      expect(WebAssembly.validate(imported), name).toBe(true)
      expect(WebAssembly.validate(defined), name).toBe(true)
      expect(codeOf(imported), name).toBe(codeOf(defined))
      const definesGlobals = info(bytes).globals.length > 0
      if (definesGlobals) expect(Buffer.from(imported).equals(Buffer.from(defined)), name).toBe(true)
      else {
        importedShapes++
        expect(importedFuelInitial(new WebAssembly.Module(imported)), name).toBe(77n)
        expect(importedFuelInitial(new WebAssembly.Module(defined)), name).toBeUndefined()
      }
    }
    expect(importedShapes).toBeGreaterThanOrEqual(4) // both shapes were compared
  })

  const WORK = `(module
    (memory (export "memory") 1)
    (func $work (export "work") (param $n i32) (result i32) (local $i i32)
      (block $done (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (i32.store (i32.mul (local.get $i) (i32.const 4)) (i32.add (local.get $i) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
      (local.get $i))
    (func $rec (export "rec") (param $n i32) (result i32)
      (if (result i32) (i32.eqz (local.get $n))
        (then (i32.const 0))
        (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get $n) (i32.const 1)))))))
    (func $start (i32.store (i32.const 60000) (call $work (i32.const 3))))
    (start $start))`

  it("same fuel left after a start function run at instantiation, and after a deferred one", async () => {
    const bytes = await wat(WORK)
    for (const deferStart of [false, true]) {
      const { defined, imported } = both(bytes, { initialFuel: 1000n, deferStart })
      const d = instantiate(defined)
      const i = instantiate(imported)
      if (deferStart) {
        fn(d, START_EXPORT)()
        fn(i, START_EXPORT)()
      }
      expect(fuelOf(i).value as bigint).toBeLessThan(1000n)
      expect(fuelOf(i).value).toBe(fuelOf(d).value)
      // and with too little fuel both stop the start function at the same point
      const short = both(bytes, { initialFuel: 20n, deferStart })
      const run = (b: Uint8Array<ArrayBuffer>) => {
        try {
          const e = instantiate(b)
          if (deferStart) fn(e, START_EXPORT)()
          return { ok: true as const, left: fuelOf(e).value }
        } catch (e) {
          return { ok: false as const, error: (e as Error).constructor.name }
        }
      }
      expect(run(short.imported)).toEqual(run(short.defined))
      expect(run(short.imported).ok).toBe(false)
    }
  })

  it("every fuel from 0 to what a call needs: the same stop point (memory written), fuel left, result or trap", async () => {
    const bytes = await wat(WORK)
    const { defined, imported } = both(bytes, { initialFuel: HUGE })
    const needed = consumed(instantiate(defined), "work", 6)
    const needRec = consumed(instantiate(defined), "rec", 5)
    expect(consumed(instantiate(imported), "work", 6)).toBe(needed)
    const observe = (b: Uint8Array<ArrayBuffer>, name: string, arg: number, fuel: bigint) => {
      const e = instantiate(b)
      const r = callWithFuel(e, name, fuel, arg)
      const memory = new Uint8Array((e.memory as WebAssembly.Memory).buffer, 0, 32)
      return { ok: r.ok, left: r.left, value: r.ok ? r.value : String(r.value), memory: [...memory] }
    }
    for (let f = 0n; f <= needed + 1n; f++) {
      expect(observe(imported, "work", 6, f), `work, fuel ${f}`).toEqual(observe(defined, "work", 6, f))
    }
    for (let f = 0n; f <= needRec + 1n; f++) {
      expect(observe(imported, "rec", 5, f), `rec, fuel ${f}`).toEqual(observe(defined, "rec", 5, f))
    }
    // the boundary itself: exact fuel leaves 0, one less traps with −1
    expect(observe(imported, "work", 6, needed)).toMatchObject({ ok: true, left: 0n, value: 6 })
    expect(observe(imported, "work", 6, needed - 1n)).toMatchObject({ ok: false, left: -1n })
  })

  it("with every rewrite (cap, state exports, dirty pages) the imported counter is exported once, as FUEL_EXPORT, and is not state", async () => {
    const bytes = await wat(WORK)
    const r = rewriteModule(bytes, {
      maxMemoryPages: 4,
      exportState: true,
      dirtyPages: true,
      fuel: { initialFuel: 10_000n, deferStart: true }
    })
    if (!r.ok) throw r.error
    const out = info(r.value.bytes)
    expect(out.imports.map((i) => `${i.module}.${i.name}`)).toEqual([`${FUEL_IMPORT_MODULE}.${FUEL_IMPORT_NAME}`])
    const counterExports = out.exports.filter((e) => e.type.kind === "global" && e.index === 0).map((e) => e.name)
    expect(counterExports).toEqual([FUEL_EXPORT]) // no `agent-runtime:global:0` for it
    expect(r.value.state?.globals.map((g) => g.name)).toEqual([]) // the bitmap and the counter are not agent state
    expect(r.value.fuelExport).toBe(FUEL_EXPORT)
    const e = instantiateMetered(r.value.bytes).exports
    fn(e, START_EXPORT)()
    expect(fuelOf(e).value as bigint).toBeLessThan(10_000n)
  })

  it("a counter left to run down across calls (no fuel set between them) runs down the same way", async () => {
    const bytes = await wat(WORK)
    const { defined, imported } = both(bytes, { initialFuel: 500n })
    const d = instantiate(defined)
    const i = instantiate(imported)
    const step = (e: Exports) => {
      try {
        return { value: fn(e, "work")(4), left: fuelOf(e).value }
      } catch {
        return { value: "trap", left: fuelOf(e).value }
      }
    }
    for (let k = 0; k < 12; k++) expect(step(i), `call ${k}`).toEqual(step(d))
    expect(fuelOf(i).value as bigint).toBeLessThan(0n) // it did run out
  })
})

describe("fused prologues (load + charge, charge + check) meter exactly as the separate sequences", () => {
  /**
   * The same metered module with the separate sequences the pass wrote before the fusion: every
   * `local.tee $f` becomes `local.set $f; local.get $f`, and a `global.get $fuel` followed by its charge
   * (`i64.const`) becomes `global.get $fuel; local.set $f; local.get $f`. Returns the module and how many
   * sequences it expanded.
   */
  const unfuse = (bytes: Uint8Array<ArrayBuffer>) => {
    const m = info(bytes)
    const G = m.imports.filter((i) => i.type.kind === "global").length + m.globals.length - 1
    const bodies = code(bytes)
    const out: Array<number> = []
    let expanded = 0
    bodies.forEach((body, i) => {
      const params = m.types[m.functions[i]!]!.params.length
      const L = params + body.locals.reduce((n, l) => n + l.count, 0) - 1
      const ins: Array<number> = []
      body.instructions.forEach((x, k) => {
        const imm = Buffer.from(bytes.subarray(x.offset + 1, x.end)).toString("hex")
        const next = body.instructions[k + 1]
        if (x.name === "local.tee" && imm === Buffer.from(leb(L)).toString("hex")) {
          ins.push(0x21, ...leb(L), 0x20, ...leb(L))
          expanded++
        } else if (
          x.name === "global.get" &&
          imm === Buffer.from(leb(G)).toString("hex") &&
          next?.name === "i64.const"
        ) {
          ins.push(0x23, ...leb(G), 0x21, ...leb(L), 0x20, ...leb(L))
          expanded++
        } else for (let b = x.offset; b < x.end; b++) ins.push(bytes[b]!)
      })
      const locals = [...bytes.subarray(body.offset, body.codeOffset)]
      out.push(...leb(locals.length + ins.length), ...locals, ...ins)
    })
    const s = m.sections.find((x) => x.id === 10)!
    const payload = [...leb(bodies.length), ...out]
    const section = Uint8Array.from([10, ...leb(payload.length), ...payload])
    const module = new Uint8Array(s.offset + section.length + (bytes.length - (s.payloadOffset + s.size)))
    module.set(bytes.subarray(0, s.offset))
    module.set(section, s.offset)
    module.set(bytes.subarray(s.payloadOffset + s.size), s.offset + section.length)
    return { module, expanded }
  }

  const LOOPS = `(module
    (memory (export "memory") 1)
    (func $leaf (param $x i32) (result i32) (i32.add (local.get $x) (i32.const 3)))
    (func $work (export "work") (param $n i32) (result i32) (local $i i32) (local $s i32)
      (loop $outer
        (local.set $s (call $leaf (local.get $s)))
        (block $done (loop $next
          (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (i32.store (i32.mul (local.get $i) (i32.const 4)) (call $leaf (local.get $i)))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next)))
        (br_if $outer (i32.lt_u (local.get $s) (i32.const 9))))
      (i32.add (local.get $i) (local.get $s)))
    (func $rec (export "rec") (param $n i32) (result i32)
      (i32.store (i32.const 64) (local.get $n))
      (if (result i32) (i32.eqz (local.get $n))
        (then (i32.const 0))
        (else (i32.add (i32.const 1) (call $rec (i32.sub (local.get $n) (i32.const 1))))))))`

  it("every fuel from 0 to what a call needs: the same stop point (memory written), fuel left, result or trap", async () => {
    const fused = metered(await wat(LOOPS))
    const { module: separate, expanded } = unfuse(fused)
    expect(WebAssembly.validate(separate)).toBe(true)
    expect(expanded).toBeGreaterThan(4) // entries (load + charge + check), after calls (load + charge), loops
    expect(fused.length).toBeLessThan(separate.length)
    const observe = (b: Uint8Array<ArrayBuffer>, name: string, arg: number, fuel: bigint) => {
      const e = instantiate(b)
      const r = callWithFuel(e, name, fuel, arg)
      const memory = new Uint8Array((e.memory as WebAssembly.Memory).buffer, 0, 80)
      return { ok: r.ok, left: r.left, value: r.ok ? r.value : String(r.value), memory: [...memory] }
    }
    for (const [name, arg] of [
      ["work", 5],
      ["rec", 6]
    ] as const) {
      const needed = consumed(instantiate(fused), name, arg)
      expect(consumed(instantiate(separate), name, arg)).toBe(needed)
      for (let f = 0n; f <= needed + 1n; f++) {
        expect(observe(fused, name, arg, f), `${name}, fuel ${f}`).toEqual(observe(separate, name, arg, f))
      }
      expect(observe(fused, name, arg, needed)).toMatchObject({ ok: true, left: 0n })
      expect(observe(fused, name, arg, needed - 1n)).toMatchObject({ ok: false, left: -1n })
    }
  })

  it("real modules: the separate form validates and is larger; the looper agent stops at the same points", () => {
    for (const ref of referenceModules.filter((r) => r.name === "zstd" || r.name === "as-sha256")) {
      const fused = metered(ref.read(), { initialFuel: HUGE })
      const { module: separate, expanded } = unfuse(fused)
      expect(WebAssembly.validate(separate), ref.name).toBe(true)
      expect(expanded, ref.name).toBeGreaterThan(100)
      expect(separate.length - fused.length, ref.name).toBeGreaterThan(2 * expanded - 1)
    }
    const fused = metered(readAgentFixture("looper"))
    const { module: separate } = unfuse(fused)
    for (const fuel of [0n, 1n, 5n, 13n, 14n, 1000n, 12_345n, 13_005n]) {
      const a = instantiate(fused)
      const b = instantiate(separate)
      const ra = callWithFuel(a, "spin_n", fuel, 1000)
      const rb = callWithFuel(b, "spin_n", fuel, 1000)
      expect({ fuel, ok: ra.ok, left: ra.left }).toEqual({ fuel, ok: rb.ok, left: rb.left })
      expect(callWithFuel(a, "iterations", HUGE).value).toEqual(callWithFuel(b, "iterations", HUGE).value)
    }
  })
})
