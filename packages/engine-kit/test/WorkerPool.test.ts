/**
 * The pool's deadlines over a fake `WorkerHost` whose workers run in this
 * thread (postMessage transport) and take a while to start: a fresh
 * worker's start-up is not charged to the deadline of the request that
 * started it (issue 12 item 4: a start function gets its agent's whole
 * `timeoutMs`), while a request that really runs past its deadline still
 * times out.
 */
import { describe, expect, it } from "@effect/vitest"
import { type ChannelInit, type ChannelMessage, openWorker, type WorkerChannel } from "../src/CallChannel.js"
import { Op, type Reply, type Request } from "../src/Protocol.js"
import type { WorkerHost } from "../src/WorkerHost.js"
import { WorkerPool } from "../src/WorkerPool.js"

/** A host whose workers start answering after `bootMs`; `Invoke` of "echo" returns its arguments, "hang" never returns. */
const slowStartHost = (bootMs: number): WorkerHost => ({
  now: () => performance.now(),
  setTimer: (ms, f) => {
    const t = setTimeout(f, ms)
    return () => clearTimeout(t)
  },
  start: (events) => {
    let channel: WorkerChannel | undefined
    const pending: Array<ChannelMessage> = []
    const handle = (request: Request): Reply =>
      request[0] === Op.Invoke ? [1, request[3], 65536, null, null, null] : [1, null, 0, null, null, null]
    const hangs = (m: ChannelMessage) =>
      m[0] === "req" && (m[1] as Request)[0] === Op.Invoke && (m[1] as Request)[2] === "hang"
    const deliver = (m: ChannelMessage) => setTimeout(() => hangs(m) || channel!.onMessage(m), 0)
    return {
      threadId: undefined,
      hold: () => undefined,
      terminate: () => Promise.resolve(),
      post: (message) => {
        const m = message as readonly [string, unknown]
        if (m[0] === "init") {
          setTimeout(() => {
            channel = openWorker(m[1] as ChannelInit, handle, (reply) => events.onMessage(reply))
            pending.splice(0).forEach(deliver)
          }, bootMs)
        } else if (channel === undefined) {
          pending.push(message as ChannelMessage)
        } else {
          deliver(message as ChannelMessage)
        }
      }
    }
  }
})

describe("WorkerPool deadlines", () => {
  it("a fresh worker's start-up is not charged to the request's deadline", async () => {
    const pool = new WorkerPool({ size: 1, transport: "message", channelBytes: 4096, host: slowStartHost(300) })
    const slot = pool.slots[0]!
    const outcome = await slot.exec([Op.Invoke, 1, "echo", [5], null], 100, undefined)
    expect(outcome.kind).toBe("response")
    expect(outcome.kind === "response" && outcome.value[1]).toEqual([5])
    await pool.close()
  })

  it("a request that runs past its deadline on a started worker still times out", async () => {
    const pool = new WorkerPool({ size: 1, transport: "message", channelBytes: 4096, host: slowStartHost(50) })
    const slot = pool.slots[0]!
    expect((await slot.exec([Op.Invoke, 1, "echo", [1], null], undefined, undefined)).kind).toBe("response")
    expect((await slot.exec([Op.Invoke, 1, "hang", [], null], 100, undefined)).kind).toBe("timeout")
    await pool.close()
  })
})
