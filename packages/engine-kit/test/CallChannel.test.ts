/**
 * The call channel between two real threads (a `worker_threads` worker
 * running the TypeScript sources through tsx), on both transports: replies
 * typed by their request, host calls in order, payloads larger than the
 * buffer, deadlines and a lost worker.
 */
import { afterEach, describe, expect, it } from "@effect/vitest"
import { createRequire } from "node:module"
import { pathToFileURL } from "node:url"
import { Worker } from "node:worker_threads"
import {
  CallAbort,
  type ChannelKind,
  DEFAULT_SPIN,
  type HostChannel,
  openHost,
  type SpinLimits,
  WORKER_PREFETCH_MAX_MS
} from "../src/CallChannel.js"
import { Op, type Reply } from "../src/Protocol.js"

// the worker runs the TypeScript sources through tsx (a workspace dev dependency), loaded with `import()`:
// Node 20's `require()` of that ES module crashed a worker once (FATAL "IsGraphAsync must be used on an instantiated module")
const tsxApi = pathToFileURL(createRequire(import.meta.url).resolve("tsx/esm/api")).href
const workerUrl = new URL("./fixtures/channel-worker.ts", import.meta.url).href
const workers: Array<Worker> = []
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()))
})

const start = (
  kind: ChannelKind,
  channelBytes?: number,
  spin: SpinLimits | false = DEFAULT_SPIN
): { channel: HostChannel; worker: Worker } => {
  const worker = new Worker(
    `import(${JSON.stringify(tsxApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(workerUrl)}) })`,
    { eval: true }
  )
  workers.push(worker)
  const channel = openHost(
    kind,
    {
      post: (m) => worker.postMessage(m),
      now: () => performance.now(),
      setTimer: (ms, f) => {
        const t = setTimeout(f, ms)
        return () => clearTimeout(t)
      },
      syncReceive: true
    },
    channelBytes,
    spin
  )
  worker.on("message", (m) => channel.onMessage(m))
  worker.postMessage(["init", channel.init])
  return { channel, worker }
}

const noHostCalls = () => [0, "no host calls expected"] as const

for (const [kind, bytes] of [
  ["shared", undefined],
  ["shared", 64],
  ["message", undefined]
] as const) {
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
      const outcome = await channel.request(
        [Op.Invoke, 1, "sum_host", [200], null],
        (call) => {
          seen.push(call[2][0])
          return [1, (call[2][0] as number) * 2]
        },
        undefined,
        undefined
      )
      expect((outcome as { value: Reply }).value[1]).toEqual([199 * 200])
      expect(seen).toEqual(Array.from({ length: 200 }, (_, i) => i))
    })

    it("a large request and reply cross (posted when they do not fit)", async () => {
      const { channel } = start(kind, bytes)
      const big = "ü".repeat(100_000)
      const outcome = await channel.request(
        [Op.Invoke, 1, "echo", [big as never], null],
        noHostCalls,
        undefined,
        undefined
      )
      expect((outcome as { value: Reply }).value[1]).toEqual([big])
      const reason = "x".repeat(1000)
      const failed = await channel.request(
        [Op.Invoke, 1, "sum_host", [1], null],
        () => [0, reason],
        undefined,
        undefined
      )
      expect((failed as { value: Reply }).value[1]).toEqual(["Trap", "sum_host", reason])
    })

    it("a deadline ends the request with timeout; fail() ends it and every later one with lost", async () => {
      const { channel } = start(kind, bytes)
      const t0 = performance.now()
      const outcome = await channel.request(
        [Op.Invoke, 1, "spin", [], null],
        noHostCalls,
        performance.now() + 100,
        undefined
      )
      expect(outcome.kind).toBe("timeout")
      expect(performance.now() - t0).toBeGreaterThanOrEqual(99)
      channel.fail("gone")
      expect(await channel.request([Op.Drop, 1], noHostCalls, undefined, undefined)).toEqual({
        kind: "lost",
        reason: "gone"
      })
    })
  })
}

/** A pause between calls: none, a microtask, a macrotask, or a sleep long enough for any spin to run out. */
const pause = (i: number): Promise<void> =>
  i % 4 === 0 ? Promise.resolve() : new Promise((resolve) => setTimeout(resolve, i % 4 === 1 ? 0 : i % 4 === 2 ? 1 : 3))

/** Blocks the host thread for `ms` (a slow host function: the worker must fall asleep waiting for it). */
const busy = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end);
}

// the generous caps keep both sides spinning even on a loaded machine, where gaps outgrow the default caps
const spinModes: ReadonlyArray<readonly [string, SpinLimits | false]> = [
  ["default spin caps", DEFAULT_SPIN],
  ["default spin caps, hints on", { ...DEFAULT_SPIN, prefetchMaxMs: 0.2 }],
  ["generous spin caps", { workerMaxMs: 2, hostMaxMs: 1, prefetchMaxMs: 2 }],
  ["spinning off", false]
]
for (const [mode, spin] of spinModes) {
  describe(`CallChannel: shared, ${mode} (races between a spinning and a sleeping side)`, () => {
    it("requests in a row with every kind of pause between them: each gets its own reply, none is lost", async () => {
      const { channel } = start("shared", undefined, spin)
      for (let i = 0; i < 400; i++) {
        // a lost wake-up would leave the request waiting: the deadline turns it into a failure instead of a hang
        const outcome = await channel.request(
          [Op.Invoke, 1, "echo", [i], null],
          noHostCalls,
          performance.now() + 10_000,
          undefined
        )
        expect(outcome.kind).toBe("response")
        expect((outcome as { value: Reply }).value[1]).toEqual([i])
        if (i % 3 !== 0) await pause(i)
      }
    })

    it("pauses around the end of the worker's spin (it falls asleep at any moment): no wake-up is lost", async () => {
      const { channel } = start("shared", undefined, spin)
      const cap = spin === false ? 0.2 : spin.workerMaxMs
      let seed = 7
      const wrong: Array<unknown> = []
      for (let i = 0; i < 2000; i++) {
        const outcome = await channel.request(
          [Op.Invoke, 1, "echo", [i], null],
          noHostCalls,
          performance.now() + 10_000,
          undefined
        )
        const value = outcome.kind === "response" ? (outcome.value as Reply)[1] : outcome.kind
        if (!Array.isArray(value) || value[0] !== i) wrong.push([i, value])
        seed = (seed * 1103515245 + 12345) % 2147483648
        busy(((seed % 1000) / 1000) * 2 * cap) // 0–2× the worker's cap: before, around and after its spin ends
      }
      expect(wrong).toEqual([])
      // 2,000 round trips with pauses: 5–8 s alone, 19 s on a loaded CI machine (the shared bound is 30 s)
    }, 180_000)

    it("host calls answered fast and slow (the worker spins, then sleeps, for their results) all arrive, in order", async () => {
      const { channel } = start("shared", undefined, spin)
      for (let round = 0; round < 6; round++) {
        const seen: Array<unknown> = []
        const outcome = await channel.request(
          [Op.Invoke, 1, "sum_host", [60], null],
          (call) => {
            const n = call[2][0] as number
            seen.push(n)
            if (n % 7 === round % 7) busy(1) // slower than any spin budget: the worker sleeps for this one
            return [1, n]
          },
          performance.now() + 10_000,
          undefined
        )
        expect(outcome.kind).toBe("response")
        expect((outcome as { value: Reply }).value[1]).toEqual([(59 * 60) / 2])
        expect(seen).toEqual(Array.from({ length: 60 }, (_, i) => i))
        await pause(round)
      }
    })

    it("an idle channel sleeps on both sides: the worker's sleep word is raised once calls stop", async () => {
      const { channel } = start("shared", undefined, spin)
      for (let i = 0; i < 200; i++)
        await channel.request([Op.Invoke, 1, "echo", [i], null], noHostCalls, undefined, undefined)
      const header = new Int32Array(channel.init.buffer, 0, 8)
      // the worker spins at most WORKER_SPIN_MAX_MS after its last reply; then it must sleep (no CPU burnt while idle)
      const since = performance.now()
      while (Atomics.load(header, 2) !== 1 && performance.now() - since < 5_000) {
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
      expect(Atomics.load(header, 2)).toBe(1)
      expect(Atomics.load(header, 3)).toBe(0) // and the host is not waiting on it
      // it still wakes for the next request
      const outcome = await channel.request(
        [Op.Invoke, 1, "echo", [4242], null],
        noHostCalls,
        performance.now() + 10_000,
        undefined
      )
      expect((outcome as { value: Reply }).value[1]).toEqual([4242])
    })

    it("prefetch hints before requests, at every distance, and hints with no request: every reply arrives", async () => {
      const { channel } = start("shared", undefined, spin)
      const cap = spin === false ? 0.2 : (spin.prefetchMaxMs ?? 0.2)
      let seed = 11
      const wrong: Array<unknown> = []
      for (let i = 0; i < 600; i++) {
        seed = (seed * 1103515245 + 12345) % 2147483648
        const r = seed % 1000
        // hints the worker takes asleep, awake, late, never followed by a request, or given twice
        if (r % 5 !== 0) channel.prefetch()
        if (r % 7 === 0) channel.prefetch()
        if (r % 11 === 0) continue // a hint with no request after it
        if (r % 3 === 0)
          busy((r / 1000) * 2 * cap) // before, around and after the end of the worker's prefetch spin
        else if (r % 4 === 0) await pause(i)
        const outcome = await channel.request(
          [Op.Invoke, 1, "echo", [i], null],
          noHostCalls,
          performance.now() + 10_000, // a lost wake-up becomes a timeout, not a hang
          undefined
        )
        const value = outcome.kind === "response" ? (outcome.value as Reply)[1] : outcome.kind
        if (!Array.isArray(value) || value[0] !== i) wrong.push([i, value])
        if (r % 13 === 0) await new Promise((resolve) => setTimeout(resolve, 2)) // the worker falls asleep
      }
      expect(wrong).toEqual([])
    })

    it("a hint wakes a sleeping worker, which takes it and sleeps again when no request comes", async () => {
      const { channel } = start("shared", undefined, spin)
      const header = new Int32Array(channel.init.buffer, 0, 8)
      const until = async (done: () => boolean) => {
        const since = performance.now()
        while (!done() && performance.now() - since < 5_000) await new Promise((resolve) => setTimeout(resolve, 1))
        return done()
      }
      await channel.request([Op.Invoke, 1, "echo", [1], null], noHostCalls, undefined, undefined)
      expect(await until(() => Atomics.load(header, 2) === 1)).toBe(true) // asleep
      channel.prefetch()
      if (spin === false || (spin.prefetchMaxMs ?? WORKER_PREFETCH_MAX_MS) <= 0) {
        // no spinning allowed, or hints off (the default): no hint, the worker sleeps on
        expect(Atomics.load(header, 6)).toBe(0)
        expect(Atomics.load(header, 2)).toBe(1)
      } else {
        expect(Atomics.load(header, 6)).toBe(1) // "a request is coming"
        expect(await until(() => Atomics.load(header, 6) === 0)).toBe(true) // the worker woke and took the hint
        expect(await until(() => Atomics.load(header, 2) === 1)).toBe(true) // no request: asleep again
      }
      // a request in flight: a hint does nothing
      const running = channel.begin([Op.Invoke, 1, "spin", [], null], noHostCalls, undefined)
      expect("wait" in running).toBe(true)
      channel.prefetch()
      expect(Atomics.load(header, 6)).toBe(0)
      // still answers after all that (a fresh channel: this one's worker spins forever)
      const other = start("shared", undefined, spin).channel
      other.prefetch()
      const outcome = await other.request(
        [Op.Invoke, 1, "echo", [7], null],
        noHostCalls,
        performance.now() + 10_000,
        undefined
      )
      expect((outcome as { value: Reply }).value[1]).toEqual([7])
    })

    it("interrupting a running call ends it with aborted; a deadline still ends one with timeout", async () => {
      const { channel } = start("shared", undefined, spin)
      await channel.request([Op.Invoke, 1, "echo", [1], null], noHostCalls, undefined, undefined)
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 50)
      const aborted = await channel.request([Op.Invoke, 1, "spin", [], null], noHostCalls, undefined, controller.signal)
      expect(aborted.kind).toBe("aborted")
      // the same with the engine's lighter signal
      const light = start("shared", undefined, spin).channel
      await light.request([Op.Invoke, 1, "echo", [1], null], noHostCalls, undefined, undefined)
      const abort = new CallAbort()
      setTimeout(() => abort.abort(), 50)
      const lightAborted = await light.request([Op.Invoke, 1, "spin", [], null], noHostCalls, undefined, abort)
      expect(lightAborted.kind).toBe("aborted")
      const other = start("shared", undefined, spin).channel
      await other.request([Op.Invoke, 1, "echo", [1], null], noHostCalls, undefined, undefined)
      const timedOut = await other.request(
        [Op.Invoke, 1, "spin", [], null],
        noHostCalls,
        performance.now() + 50,
        undefined
      )
      expect(timedOut.kind).toBe("timeout")
    })
  })
}

describe("CallAbort (the engine's interruption signal)", () => {
  it("calls each listener once, in order, on the first abort; removed listeners are not called", () => {
    const abort = new CallAbort()
    const seen: Array<string> = []
    const a = () => seen.push("a")
    const b = () => seen.push("b")
    const c = () => seen.push("c")
    abort.addEventListener("abort", a)
    abort.addEventListener("abort", b, { once: true })
    abort.addEventListener("abort", c)
    abort.removeEventListener("abort", b)
    abort.removeEventListener("abort", () => seen.push("never added"))
    expect(abort.aborted).toBe(false)
    abort.abort()
    abort.abort()
    expect(abort.aborted).toBe(true)
    expect(seen).toEqual(["a", "c"])
  })
})
