import { describe, expect, it } from "@effect/vitest"
import { openHost } from "../src/CallChannel.js"
import {
  type DropRequest,
  type InvokeRequest,
  Op,
  type ReadRequest,
  stateFromWire,
  stateToWire,
  type ValueOf
} from "../src/Protocol.js"
import { trackingFor } from "../src/WorkerEngine.js"

describe("Protocol", () => {
  it("requests and replies are typed: the compiler refuses a malformed request and names each reply's value", () => {
    const channel = openHost("message", { post: () => undefined, now: () => 0, setTimer: () => () => undefined })
    const noHostCalls = () => [0, "none"] as const
    // @ts-expect-error an unknown opcode is not a request
    const unknownOp = () => channel.request([99, 1], noHostCalls, undefined, undefined)
    // @ts-expect-error an invoke needs its function name, arguments and fuel
    const shortInvoke = () => channel.request([Op.Invoke, 1], noHostCalls, undefined, undefined)
    // @ts-expect-error arguments are numbers, bigints or null
    const badArgs = () => channel.request([Op.Invoke, 1, "f", ["x"], null], noHostCalls, undefined, undefined)
    expect([unknownOp, shortInvoke, badArgs]).toHaveLength(3)
    const bytes: ValueOf<ReadRequest> = new Uint8Array(8)
    const results: ValueOf<InvokeRequest> = [1, 2n, null]
    const none: ValueOf<DropRequest> = null
    expect([bytes.byteLength, results.length, none]).toEqual([8, 3, null])
  })

  it("engine state round-trips through its wire form", () => {
    const state = {
      memoryBytes: 2 * 65536,
      pages: [{ index: 1, data: new Uint8Array(65536).fill(7) }],
      globals: { n: 5, big: 2n ** 40n }
    }
    expect(stateFromWire(stateToWire(state))).toEqual(state)
  })

  it("recovery policies map to tracking modes", () => {
    expect(trackingFor("restart")).toEqual([0, 0])
    expect(trackingFor("snapshot")).toEqual([1, 0])
    expect(trackingFor("auto")).toEqual([2, 1024 * 1024])
    expect(trackingFor("auto", 4096)).toEqual([2, 4096])
  })
})
