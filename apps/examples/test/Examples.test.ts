import { describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import { program } from "../src/effect-example.js"
import { main } from "../src/promise-example.js"

describe("README examples", () => {
  it.effect("the Effect API example runs", () =>
    Effect.gen(function* () {
      expect(yield* program).toEqual({ total: 41, mistake: "SignatureMismatch", health: "Healthy" })
    })
  )

  it("the Promise facade example runs", async () => {
    expect(await main()).toEqual({ count: 1, refusedWhilePaused: true })
  })
})
