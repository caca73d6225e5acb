/**
 * `RewriteScratch` (`RewriteOptions.scratch`): the host copies the bytes
 * when `WebAssembly.compile` / `new WebAssembly.Module` is called (what
 * makes handing it a reused buffer safe); a fuel rewrite into a scratch
 * writes the same bytes as one into fresh bytes, into the same buffer each
 * time; rewrites that do not end with fuel, results above the kept size and
 * an input that is itself a view of the scratch get fresh bytes. Also the
 * fuel pass's export- and import-name checks, which compare bytes instead of
 * decoding names: the same refusals and the same decoder errors.
 */
import { describe, expect, it } from "@effect/vitest"
import { getReferenceModule } from "@agent-runtime/reference-modules"
import { instrumentFuel, instrumentFuelOf } from "../src/Fuel.js"
import { readModule } from "../src/ModuleReader.js"
import type { ReadResult } from "../src/ReadResult.js"
import { rewriteModule } from "../src/Rewrite.js"
import { RewriteScratch } from "../src/RewriteScratch.js"
import {
  bytes,
  codeSection,
  emptyBody,
  functionSection,
  functype,
  module,
  name,
  rawName,
  section,
  typeSection,
  u32
} from "./helpers/ModuleBuilder.js"

const outcome = (r: ReadResult<Uint8Array>) =>
  r.ok
    ? { ok: true, bytes: Buffer.from(r.value).toString("base64") }
    : { ok: false, offset: r.error.offset, reason: r.error.reason, kind: r.error.kind }

/** A module with one function `(func)` exported under the raw name `exportName`. */
const exporting = (exportName: Uint8Array) =>
  module(
    typeSection(functype([], [])),
    functionSection(0),
    section(7, u32(1), exportName, 0x00, u32(0)),
    codeSection(emptyBody)
  )

/** Where `exporting`'s export name starts (its length byte): preamble, type and function sections, id, size, count. */
const EXPORT_NAME_AT = 8 + typeSection(functype([], [])).length + functionSection(0).length + 3

/** A module importing a function `(func)` from module `from`, field `field` (raw names). */
const importing = (from: Uint8Array, field: Uint8Array) =>
  module(typeSection(functype([], [])), section(2, u32(1), from, field, 0x00, u32(0)))

describe("RewriteScratch", () => {
  it("the host copies the bytes when compile is called: changing them right after the call changes nothing", async () => {
    // (func (export "abc") (result i32) i32.const 7)
    const original = module(
      typeSection(functype([], [0x7f])),
      functionSection(0),
      section(7, u32(1), name("abc"), 0x00, u32(0)),
      codeSection(bytes(0x00, 0x41, 0x07, 0x0b))
    )
    const constAt = original.lastIndexOf(0x07) // the i32.const immediate
    const exportAt = original.indexOf(0x61) // "a" of the export name
    for (const how of ["compile", "Module"] as const) {
      const buffer = new Uint8Array(original)
      const pending = how === "compile" ? WebAssembly.compile(buffer) : Promise.resolve(new WebAssembly.Module(buffer))
      buffer[constAt] = 0x09 // another constant
      buffer[exportAt] = 0x78 // export "xbc"
      buffer.fill(0xff, 8) // and then garbage: a compile reading the buffer now would fail
      const compiled = await pending
      expect(WebAssembly.Module.exports(compiled).map((e) => e.name)).toEqual(["abc"])
      const instance = new WebAssembly.Instance(compiled, {})
      expect((instance.exports["abc"] as () => number)()).toBe(7)
    }
  })

  it("a fuel rewrite into a scratch: the same bytes as into fresh bytes, in the same buffer each time", async () => {
    const scratch = new RewriteScratch()
    const buffers = new Set<ArrayBufferLike>()
    for (const which of ["sqlite3", "brotli", "zstd", "sqlite3"]) {
      const input = getReferenceModule(which).read()
      const info = readModule(input, { bodies: false })
      if (!info.ok) throw new Error(`readModule refused ${which}`)
      for (const options of [{ fuel: true }, { fuel: true, validated: info.value }, { fuel: { initialFuel: 5n } }]) {
        const fresh = rewriteModule(input, options)
        const into = rewriteModule(input, { ...options, scratch })
        if (!fresh.ok || !into.ok) throw new Error(`rewriteModule refused ${which}`)
        expect(into.value.bytes.buffer).not.toBe(fresh.value.bytes.buffer)
        expect(Buffer.from(into.value.bytes).equals(Buffer.from(fresh.value.bytes))).toBe(true)
        expect(into.value.bytes.byteOffset).toBe(0)
        buffers.add(into.value.bytes.buffer)
      }
      // what the runtime does with it: compile at once
      const lent = rewriteModule(input, { fuel: true, scratch })
      if (!lent.ok) throw lent.error
      const compiled = await WebAssembly.compile(lent.value.bytes)
      expect(WebAssembly.Module.exports(compiled).some((e) => e.name === "agent-runtime:fuel")).toBe(true)
    }
    // grown once for the largest module (1.25× headroom), then reused
    expect(buffers.size).toBeLessThanOrEqual(2)
    expect(scratch.keptBytes).toBeGreaterThan(1_000_000)
  })

  it("fresh bytes where the scratch cannot hold the result: a rewrite after fuel, above maxKeptBytes, an input in the scratch", () => {
    const input = getReferenceModule("zstd").read()
    const scratch = new RewriteScratch()
    const plain = rewriteModule(input, { fuel: true })
    if (!plain.ok) throw plain.error
    // exportState / dirtyPages rewrite the fuel output again: their result is fresh, as without a scratch
    for (const options of [
      { fuel: true, exportState: true },
      { fuel: true, dirtyPages: true },
      { maxMemoryPages: 16_384 }
    ]) {
      const fresh = rewriteModule(input, options)
      const into = rewriteModule(input, { ...options, scratch })
      if (!fresh.ok || !into.ok)
        throw new Error(
          `refused: ${String(fresh.ok ? "" : fresh.error.reason)} ${String(into.ok ? "" : into.error.reason)}`
        )
      expect(Buffer.from(into.value.bytes).equals(Buffer.from(fresh.value.bytes))).toBe(true)
      expect(scratch.holds(into.value.bytes)).toBe(false)
    }
    // above the kept size: fresh bytes, nothing kept
    const small = new RewriteScratch(1024)
    const big = rewriteModule(input, { fuel: true, scratch: small })
    if (!big.ok) throw big.error
    expect(small.keptBytes).toBe(0)
    expect(Buffer.from(big.value.bytes).equals(Buffer.from(plain.value.bytes))).toBe(true)
    // an input that is a view of the scratch (a rewrite of a rewrite): read intact, written elsewhere
    const once = rewriteModule(input, { maxMemoryPages: 8192 })
    if (!once.ok) throw once.error
    const staged = scratch.take(once.value.bytes.length)
    staged.set(once.value.bytes)
    const expected = rewriteModule(once.value.bytes, { fuel: true })
    const twice = rewriteModule(staged, { fuel: true, scratch })
    if (!expected.ok || !twice.ok) throw new Error("refused")
    expect(scratch.holds(twice.value.bytes)).toBe(false)
    expect(Buffer.from(twice.value.bytes).equals(Buffer.from(expected.value.bytes))).toBe(true)
  })

  it("take: a view of one kept buffer, grown with headroom; fresh bytes above the limit", () => {
    const scratch = new RewriteScratch(10_000)
    const a = scratch.take(1000)
    const b = scratch.take(1200)
    expect(a.buffer).toBe(b.buffer)
    expect(b.length).toBe(1200)
    const c = scratch.take(2000)
    expect(c.buffer).not.toBe(a.buffer)
    expect(scratch.keptBytes).toBe(2500)
    expect(scratch.holds(c)).toBe(true)
    const d = scratch.take(20_000)
    expect(scratch.holds(d)).toBe(false)
    expect(scratch.keptBytes).toBe(2500)
  })
})

describe("fuel pass: reserved names compared as bytes", () => {
  it("exports: the reserved prefix is refused, names that only resemble it (shorter, one byte off, non-ASCII) are not", () => {
    const refused = instrumentFuel(exporting(name("agent-runtime:x")))
    expect(refused.ok).toBe(false)
    expect(refused.ok ? "" : refused.error.reason).toMatch(/export "agent-runtime:x" uses the reserved prefix/)
    expect(refused.ok ? 0 : refused.error.offset).toBe(EXPORT_NAME_AT)
    for (const ok of ["agent-runtime", "agent-runtime;x", "Agent-runtime:x", "agént-runtime:x", "x", "", "é"]) {
      expect({ ok, rewritten: instrumentFuel(exporting(name(ok))).ok }).toEqual({ ok, rewritten: true })
    }
  })

  it("imports: the reserved module is refused; its look-alikes are not", () => {
    const reserved = instrumentFuel(importing(name("agent-runtime"), name("f")))
    expect(reserved.ok ? "" : reserved.error.reason).toMatch(/import from the reserved module "agent-runtime"/)
    for (const ok of ["agent-runtim", "agent-runtime:", "agent-runtimé", "env"]) {
      expect({ ok, rewritten: instrumentFuel(importing(name(ok), name("é"))).ok }).toEqual({ ok, rewritten: true })
    }
  })

  it("a malformed UTF-8 name (no validator in front: instrumentFuelOf) fails with the decoder's error, where it did", () => {
    // 0xc3 0x28: an invalid two-byte sequence; 0x80: a lone continuation byte
    for (const raw of [rawName(0x61, 0xc3, 0x28), rawName(0x80)]) {
      const exported = exporting(raw)
      const r = outcome(instrumentFuelOf(exported))
      expect(r).toMatchObject({ ok: false, offset: EXPORT_NAME_AT + 1, reason: "malformed UTF-8 encoding" })
      const imported = importing(raw, name("f"))
      const i = outcome(instrumentFuelOf(imported))
      expect(i).toMatchObject({ ok: false, reason: "malformed UTF-8 encoding" })
      const field = outcome(instrumentFuelOf(importing(name("env"), raw)))
      expect(field).toMatchObject({ ok: false, reason: "malformed UTF-8 encoding" })
    }
  })
})
