/**
 * Cases that prove the in-workerd runner (`VitestShim.ts`) reports what it
 * should: failing assertions fail, `Effect` failures fail, skips skip,
 * timeouts fail, async `describe` collects, asymmetric matchers and
 * `TestClock` work. The test Worker serves their results at `GET /selftest`;
 * a Node test checks each state.
 *
 * @since 0.1.0
 */
import { describe, expect, it } from "@effect/vitest"
import * as Clock from "effect/Clock"
import * as Effect from "effect/Effect"
import { TestClock } from "effect/testing"

export const registerSelfTest = (): void => {
  describe("selftest", async () => {
    await Promise.resolve()
    it("passes", () => {
      expect({ a: [1, 2n] }).toEqual({ a: [1, 2n] })
      expect(["x", "y"]).toEqual(expect.arrayContaining(["y"]))
    })
    it("fails on a wrong value", () => {
      expect(1).toBe(2)
    })
    it("fails on a wrong shape", () => {
      expect({ _tag: "Trap" }).toMatchObject({ _tag: "FuelExhausted" })
    })
    it.effect("effect passes with the TestClock", () =>
      Effect.gen(function* () {
        yield* TestClock.adjust(60_000)
        expect(yield* Clock.currentTimeMillis).toBe(60_000)
      })
    )
    it.effect("effect fails", () => Effect.fail("boom"))
    it.effect.skipIf(true)("skipped by skipIf", () => Effect.die("never run"))
    it("times out", { timeout: 100 }, () => new Promise(() => {}))
    describe("nested", () => {
      it("passes too", () => expect(3).toBeGreaterThan(2))
    })
  })
}
