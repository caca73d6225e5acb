import { describe, expect, it } from "@effect/vitest"
import * as Progress from "../src/Progress.js"

describe("Progress", () => {
  it("writes one plain line per step when the stream is not a terminal", () => {
    const out: Array<string> = []
    const progress = Progress.make({ stream: { write: (s) => out.push(s) }, label: "bundle", total: 2 })
    progress.advance("counter.wasm")
    progress.advance()
    progress.stop()
    expect(out).toEqual(["bundle: 1/2 counter.wasm\n", "bundle: 2/2\n"])
  })

  it("draws a bar in place on a terminal and ends it with a newline", () => {
    const out: Array<string> = []
    const progress = Progress.make({
      stream: { write: (s) => out.push(s), isTTY: true, columns: 100 },
      label: "bench",
      total: 4
    })
    for (const suite of ["load", "invoke", "spawn", "edge"]) progress.advance(suite)
    progress.stop()
    const text = out.join("")
    expect(text).toMatch(/bench █{28} 100% 4\/4 edge/) // the final redraw, full
    expect(text).toMatch(/\x1b\[/) // cursor control: redrawn in place, not new lines
    expect(out.at(-1)).toBe("\n")
  })

  it("shows nothing when silent", () => {
    const out: Array<string> = []
    const progress = Progress.make({
      stream: { write: (s) => out.push(s), isTTY: true },
      label: "x",
      total: 1,
      mode: "silent"
    })
    progress.advance()
    progress.stop()
    expect(out).toEqual([])
  })
})
