/**
 * `headerFits`, the fast header check `SnapshotCodec.encode` runs instead of
 * the `Header` schema: it may only say "fits" for a header the schema
 * accepts (else the schema decides and gives the reason), and says so for
 * every header `encode` normally writes.
 */
import { describe, expect, it } from "@effect/vitest"
import { decodeHeader, type Header, headerFits } from "../../src/internal/SnapshotFormat.js"

const valid = {
  version: 1,
  agentId: "agent-1",
  moduleId: "module-1",
  moduleHash: "ab".repeat(32),
  lifecycle: "Running",
  memoryLimit: 16 * 1_048_576,
  memoryReservation: 1_048_576,
  invocationCount: 42,
  takenAt: 1_765_000_000_000,
  timeoutMs: 1000,
  fuel: 1_000_000,
  critical: false,
  memoryBytes: 131_072,
  pageCount: 0,
  globalCount: 2,
  bodyLength: 40,
  compressed: false
} as unknown as Header

const without = (key: string): Header => {
  const { [key]: _dropped, ...rest } = valid as unknown as Record<string, unknown>
  return rest as unknown as Header
}
const withValue = (key: string, value: unknown): Header => ({ ...valid, [key]: value }) as unknown as Header

/** Valid headers and one broken field at a time: wrong types, non-finite and non-integer numbers, unknown literals. */
const cases: ReadonlyArray<readonly [string, Header]> = [
  ["valid", valid],
  ["no optional fields", without("timeoutMs")],
  ["no fuel", without("fuel")],
  ["no critical", without("critical")],
  ["critical true", withValue("critical", true)],
  ...["Starting", "Running", "Paused", "Stopping", "Stopped", "Failed", "Critical", "Degraded", "running", ""].map(
    (l) => [`lifecycle ${JSON.stringify(l)}`, withValue("lifecycle", l)] as const
  ),
  ...(["version", "memoryBytes", "pageCount", "globalCount", "bodyLength"] as const).flatMap((k) =>
    [1.5, -1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 53, "1", undefined].map(
      (v) => [`${k} = ${String(v)}`, withValue(k, v)] as const
    )
  ),
  ...(["memoryLimit", "memoryReservation", "invocationCount", "takenAt", "timeoutMs", "fuel"] as const).flatMap((k) =>
    [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, 1.25, "5", null, undefined].map(
      (v) => [`${k} = ${String(v)}`, withValue(k, v)] as const
    )
  ),
  ...(["agentId", "moduleId", "moduleHash"] as const).flatMap((k) =>
    [1, null, undefined, ""].map((v) => [`${k} = ${String(v)}`, withValue(k, v)] as const)
  ),
  ["critical = 1", withValue("critical", 1)],
  ["compressed = 0", withValue("compressed", 0)],
  ["no compressed", without("compressed")],
  ["no lifecycle", without("lifecycle")]
]

describe("SnapshotFormat.headerFits", () => {
  it("says a header fits only when the Header schema accepts it", () => {
    for (const [name, header] of cases) {
      const schema = decodeHeader(header)._tag === "Success"
      if (headerFits(header)) expect({ name, schema }).toEqual({ name, schema: true })
    }
  })

  it("vouches for every well-formed header (the schema is not run on them)", () => {
    const accepted = cases.filter(([, h]) => decodeHeader(h)._tag === "Success")
    const vouched = accepted.filter(([, h]) => headerFits(h)).map(([n]) => n)
    // the only accepted headers it leaves to the schema: an optional key present with `undefined`
    expect(accepted.map(([n]) => n).filter((n) => !vouched.includes(n))).toEqual(
      accepted.map(([n]) => n).filter((n) => /^(timeoutMs|fuel) = undefined$/.test(n))
    )
    expect(vouched).toContain("valid")
    expect(vouched).toContain("no optional fields")
    expect(vouched).toContain('lifecycle "Paused"')
  })
})
