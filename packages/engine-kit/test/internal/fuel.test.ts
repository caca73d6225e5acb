import { FuelExhausted as DomainFuelExhausted, Trap as DomainTrap } from "@agent-runtime/domain"
import { describe, expect, it } from "@effect/vitest"
import { Instance } from "../../src/index.js"
import * as Errors from "../../src/internal/errors.js"
import { fuelAccess } from "../../src/internal/fuel.js"

describe("fuel access", () => {
  it("sets and reads the i64 counter through the helper, exactly for safe integers, negative included", () => {
    const global = new WebAssembly.Global({ value: "i64", mutable: true }, 0n)
    const access = fuelAccess(global)
    access.set(1_000_000_007)
    expect(global.value).toBe(1_000_000_007n)
    expect(access.get()).toBe(1_000_000_007)
    global.value = -3n
    expect(access.get()).toBe(-3)
    access.set(Number.MAX_SAFE_INTEGER)
    expect(global.value).toBe(BigInt(Number.MAX_SAFE_INTEGER))
    access.set(2 ** 60) // not a safe integer: the accessor path, still exact for this power of two
    expect(global.value).toBe(2n ** 60n)
  })
})

describe("plain core errors", () => {
  it("carry the domain's tag, fields and message, and map to the domain's classes", () => {
    const trap = new Errors.Trap({ function: "f", reason: "unreachable" })
    expect(trap).toBeInstanceOf(Error)
    expect(trap.message).toBe(new DomainTrap({ function: "f", reason: "unreachable" }).message)
    const mapped = Instance.toDomainError(trap)
    expect(mapped).toBeInstanceOf(DomainTrap)
    expect(mapped).toMatchObject({ _tag: "Trap", function: "f", reason: "unreachable" })
    const fuel = Instance.toDomainError(new Errors.FuelExhausted({ function: "g", fuel: 5 }))
    expect(fuel).toBeInstanceOf(DomainFuelExhausted)
    expect(fuel).toMatchObject({ function: "g", fuel: 5 })
    expect(Instance.toDomainError(new Errors.MemoryExceeded({ agentId: "a", used: 2, limit: 1 }))).toMatchObject({
      _tag: "MemoryExceeded",
      agentId: "a",
      used: 2,
      limit: 1
    })
    expect(Instance.toDomainError(new Errors.FunctionNotFound({ function: "h" })).message).toBe(
      'no exported function named "h"'
    )
    expect(Instance.toDomainError(new Errors.InstantiationError({ reason: "r" })).message).toBe(
      "instantiation failed: r"
    )
  })
})
