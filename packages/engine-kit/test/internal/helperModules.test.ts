/**
 * The engine's run-time helper modules are well-formed: on Node each one
 * compiles (so the fast paths are really taken, not their accessor
 * fallbacks) and exports what its caller instantiates it for.
 */
import { describe, expect, it } from "@effect/vitest"
import * as Dirty from "../../src/internal/dirty.js"
import * as Fuel from "../../src/internal/fuel.js"
import { lazyModule, moduleBytes, name, section, uleb } from "../../src/internal/helperModules.js"
import * as MemorySize from "../../src/internal/memorySize.js"

describe("helper modules", () => {
  it("each helper compiles here and has its exports", () => {
    const exportsOf = (m: WebAssembly.Module | null) =>
      m === null ? null : WebAssembly.Module.exports(m).map((e) => `${e.kind}:${e.name}`)
    expect(exportsOf(Fuel.helperModule())).toEqual(["function:s", "function:g"])
    expect(exportsOf(Dirty.helperModule())).toEqual(["function:t", "function:h"])
    expect(exportsOf(MemorySize.helperModule())).toEqual(["function:s"])
    // compiled once
    expect(Fuel.helperModule()).toBe(Fuel.helperModule())
  })

  it("encodes LEB128, names and sections; a module that will not compile gives null", () => {
    expect(uleb(0)).toEqual([0])
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26])
    expect(uleb(0xffffffff)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f])
    expect(name("ab")).toEqual([2, 0x61, 0x62])
    expect(section(1, [1, 2, 3])).toEqual([1, 3, 1, 2, 3])
    expect(WebAssembly.validate(moduleBytes())).toBe(true)
    expect(lazyModule(() => moduleBytes(section(1, [1])))()).toBeNull()
  })
})
