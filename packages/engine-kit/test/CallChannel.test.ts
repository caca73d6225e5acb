/**
 * The call channel between two real threads (a `worker_threads` worker
 * running the TypeScript sources through tsx), on both transports: replies
 * typed by their request, host calls in order, payloads larger than the
 * buffer, deadlines and a lost worker.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { createRequire } from "node:module"
import { Worker } from "node:worker_threads"
import { type ChannelKind, type HostChannel, openHost } from "../src/CallChannel.js"
import { Op, type Reply } from "../src/Protocol.js"

// the worker runs the TypeScript sources through tsx (a workspace dev dependency)
const tsxApi = createRequire(import.meta.url).resolve("tsx/esm/api")
const workerUrl = new URL("./fixtures/channel-worker.ts", import.meta.url).href
const workers: Array<Worker> = []
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()))
})

const start = (kind: ChannelKind, channelBytes?: number): { channel: HostChannel; worker: Worker } => {
  const worker = new Worker(
    `require(${JSON.stringify(tsxApi)}).register(); import(${JSON.stringify(workerUrl)})`,
    { eval: true }
  )
  workers.push(worker)
  const channel = openHost(kind, {
    post: (m) => worker.postMessage(m),
    now: () => performance.now(),
    setTimer: (ms, f) => {
      const t = setTimeout(f, ms)
      return () => clearTimeout(t)
    },
    syncReceive: true
  }, channelBytes)
  worker.on("message", (m) => channel.onMessage(m))
  worker.postMessage(["init", channel.init])
  return { channel, worker }
}

const noHostCalls = () => [0, "no host calls expected"] as const

for (const [kind, bytes] of [["shared", undefined], ["shared", 64], ["message", undefined]] as const) {
  describe(`CallChannel: ${kind}${bytes === undefined ? "" : `, ${bytes}-byte buffer`}`, () => {
    it("a request gets the reply its type names", async () => {
      const { channel } = start(kind, bytes)
      const args = [1, -2, 2n ** 40n, 0.5, null]
      const outcome = await channel.request([Op.Invoke, 1, "echo", args, null], noHostCalls, undefined, undefined)
      expect(outcome.kind).toBe("response")
      const reply = (outcome as { value: Reply<ReadonlyArray<unknown>> }).value
      expect(reply[0]).toBe(1)
      expect(reply[1]).toEqual(args)
      expect(reply[2]).toBe(65536)
    })

    it("host calls run on the host thread, in order, and their results reach the worker", async () => {
      const { channel } = start(kind, bytes)
      const seen: Array<unknown> = []
      const outcome = await channel.request([Op.Invoke, 1, "sum_host", [200], null], (call) => {
        seen.push(call[2][0])
        return [1, (call[2][0] as number) * 2]
      }, undefined, undefined)
      expect((outcome as { value: Reply }).value[1]).toEqual([199 * 200])
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i))
    })

    it("a large request and reply cross (posted when they do not fit)", async () => {
      const { channel } = start(kind, bytes)
      const big = "ü".repeat(100_000)
      const outcome = await channel.request([Op.Invoke, 1, "echo", [big as never], null], noHostCalls, undefined, undefined)
      expect((outcome as { value: Reply }).value[1]).toEqual([big])
      const reason = "x".repeat(1000)
      const failed = await channel.request([Op.Invoke, 1, "sum_host", [1], null], () => [0, reason], undefined, undefined)
      expect((failed as { value: Reply }).value[1]).toEqual(["Trap", "sum_host", reason])
    })

    it("a deadline ends the request with timeout; fail() ends it and every later one with lost", async () => {
      const { channel } = start(kind, bytes)
      const t0 = performance.now()
      const outcome = await channel.request([Op.Invoke, 1, "spin", [], null], noHostCalls, performance.now() + 100, undefined)
      expect(outcome.kind).toBe("timeout")
      expect(performance.now() - t0).toBeGreaterThanOrEqual(99)
      channel.fail("gone")
      expect(await channel.request([Op.Drop, 1], noHostCalls, undefined, undefined)).toEqual({ kind: "lost", reason: "gone" })
    })
  })
}
