/**
 * The call path between the page and one agent worker (DESIGN.md
 * "Platforms": Browser — SharedArrayBuffer + Atomics, the page never blocks).
 *
 * A channel carries one request at a time from the page to the worker, the
 * worker's synchronous *host calls* back to the page while it runs (a guest
 * calling a host import: host functions stay on the page), and the response.
 * Layout: one `SharedArrayBuffer` — a 16-byte header of `Int32` words ([0]
 * state, [1] payload length in bytes or -1 = "posted as a message") and the
 * payload region (`channelBytes`, default 256 KiB) in the compact binary codec
 * (`internal/Codec.ts`). Two transports, same behaviour:
 *
 * - `"shared"` (default, needs `Atomics.waitAsync`): the state word moves
 *   IDLE → REQUEST (page) → [HOSTCALL (worker) → HOSTRESULT (page)]* →
 *   RESPONSE (worker) → IDLE (page). The worker blocks in `Atomics.wait`
 *   between and during requests; the page waits with `Atomics.waitAsync`
 *   (the call's deadline as the wait timeout), so it keeps rendering and
 *   serving other workers while a guest runs, and runs host imports inside
 *   its own event loop. A payload the codec cannot carry (a
 *   `WebAssembly.Module`) or that does not fit is posted (`postMessage`,
 *   structured clone) *before* the state word changes and the length word
 *   says so: the worker then leaves its blocking loop to take the message
 *   from its event loop; the page awaits a posted response the same way.
 * - `"message"` (fallback where `Atomics.waitAsync` is missing): requests and
 *   responses are posted; a host call is posted by the worker, which then
 *   blocks in `Atomics.wait` on the state word until the page has written the
 *   result into the payload region (HOSTCALL → HOSTRESULT). The page still
 *   never blocks.
 *
 * A request ends with a response, a timeout (the deadline passed: the caller
 * then terminates the worker), `aborted` (the caller was interrupted) or
 * `lost` (the worker died: `fail(reason)` wakes the waiting page).
 *
 * Sources: ECMAScript §25.4 `Atomics.wait` / `Atomics.waitAsync` /
 * `Atomics.notify`; HTML §"Cross-origin isolation" (SharedArrayBuffer needs
 * COOP `same-origin` + COEP `require-corp`).
 *
 * @since 0.1.0
 */
import { decode, encode, Overflow, Unencodable, type Wire } from "./internal/Codec.js"

/** Which transport a channel uses. */
export type ChannelKind = "shared" | "message"

/** Default payload region, in bytes. */
export const DEFAULT_CHANNEL_BYTES = 256 * 1024

const HEADER_BYTES = 16
const IDLE = 0
const REQUEST = 1
const HOSTCALL = 2
const HOSTRESULT = 3
const RESPONSE = 4
const VIA_MESSAGE = -1

/** Runs a host import for the worker: call in, result out. Never throws. */
export type HostCallHandler = (call: Wire) => unknown

/** How a request ended. */
export type ChannelOutcome =
  | { readonly kind: "response"; readonly value: Wire }
  | { readonly kind: "timeout" }
  | { readonly kind: "aborted" }
  | { readonly kind: "lost"; readonly reason: string }

/** What the worker needs to open its end (the first message it receives). */
export interface ChannelInit {
  readonly kind: ChannelKind
  readonly buffer: SharedArrayBuffer
}

/** Messages between the ends: `["req", m]` / `["res", m]` / `["call", m]`. */
export type ChannelMessage = readonly ["req" | "res" | "call", unknown]

/** True when this realm can wait on shared memory without blocking (`Atomics.waitAsync`). */
export const hasWaitAsync = (): boolean =>
  typeof (Atomics as unknown as { waitAsync?: unknown }).waitAsync === "function"

interface Region {
  readonly header: Int32Array
  readonly bytes: Uint8Array
  readonly view: DataView
}

const region = (buffer: SharedArrayBuffer): Region => ({
  header: new Int32Array(buffer, 0, HEADER_BYTES / 4),
  bytes: new Uint8Array(buffer),
  view: new DataView(buffer)
})

/** Writes `message` into the payload region, or posts it when it cannot be encoded there. */
const send = (r: Region, post: (m: ChannelMessage) => void, tag: "req" | "res", message: unknown): void => {
  let length: number
  try {
    length = encode(message, r.bytes, r.view, HEADER_BYTES, r.bytes.byteLength) - HEADER_BYTES
  } catch (e) {
    if (!(e instanceof Overflow) && !(e instanceof Unencodable)) throw e
    post([tag, message])
    length = VIA_MESSAGE
  }
  r.header[1] = length
}

const readPayload = (r: Region): Wire => decode(r.bytes, r.view, HEADER_BYTES, HEADER_BYTES + r.header[1]!)

/** Writes a host call result; one that cannot be encoded becomes a failure the guest sees as a trap. */
const writeHostResult = (r: Region, result: unknown): void => {
  let length: number
  try {
    length = encode(result, r.bytes, r.view, HEADER_BYTES, r.bytes.byteLength) - HEADER_BYTES
  } catch (e) {
    length = encode([0, `host function result cannot cross to the worker: ${e instanceof Error ? e.message : String(e)}`], r.bytes, r.view, HEADER_BYTES, r.bytes.byteLength) - HEADER_BYTES
  }
  r.header[1] = length
}

/** The page's end of a channel. */
export interface PageChannel {
  readonly kind: ChannelKind
  /** The first message for the worker. */
  readonly init: ChannelInit
  /** Feed every message the worker posts here. */
  readonly onMessage: (message: ChannelMessage) => void
  /** Sends `message` and waits (never blocking) for the response; `deadline` is a `performance.now()` time. */
  readonly request: (
    message: unknown,
    onHostCall: HostCallHandler,
    deadline: number | undefined,
    signal: AbortSignal | undefined
  ) => Promise<ChannelOutcome>
  /** The worker died: the pending and every later request end with `lost`. */
  readonly fail: (reason: string) => void
}

/** Opens the page's end. `post` sends a message to the worker. */
export const openPage = (
  kind: ChannelKind,
  post: (message: ChannelMessage) => void,
  channelBytes = DEFAULT_CHANNEL_BYTES
): PageChannel => {
  const buffer = new SharedArrayBuffer(HEADER_BYTES + channelBytes)
  const r = region(buffer)
  let lost: string | undefined
  // wakes whoever awaits a posted message (or the loss of the worker)
  const inbox: Array<unknown> = []
  let wake: (() => void) | undefined
  let onHostCall: HostCallHandler | undefined
  const poke = () => {
    const w = wake
    wake = undefined
    w?.()
  }
  const nextPosted = (deadline: number | undefined, signal: AbortSignal | undefined) =>
    new Promise<void>((resolve) => {
      if (inbox.length > 0 || lost !== undefined || signal?.aborted) return resolve()
      let timer: ReturnType<typeof setTimeout> | undefined
      wake = () => {
        if (timer !== undefined) clearTimeout(timer)
        resolve()
      }
      if (deadline !== undefined) timer = setTimeout(poke, Math.max(0, deadline - performance.now()))
    })

  const onMessage = (message: ChannelMessage) => {
    if (message[0] === "call") {
      // message transport: a host call posted by the blocked worker
      const result = onHostCall === undefined ? [0, "host function threw: no request in flight"] : onHostCall(message[1] as Wire)
      writeHostResult(r, result)
      Atomics.store(r.header, 0, HOSTRESULT)
      Atomics.notify(r.header, 0)
      return
    }
    inbox.push(message[1])
    poke()
  }

  const ended = (deadline: number | undefined, signal: AbortSignal | undefined): ChannelOutcome | undefined => {
    if (lost !== undefined) return { kind: "lost", reason: lost }
    if (signal?.aborted) return { kind: "aborted" }
    if (deadline !== undefined && deadline - performance.now() <= 0) return { kind: "timeout" }
    return undefined
  }

  const requestShared: PageChannel["request"] = async (message, handler, deadline, signal) => {
    send(r, post, "req", message)
    Atomics.store(r.header, 0, REQUEST)
    Atomics.notify(r.header, 0)
    for (;;) {
      const state = Atomics.load(r.header, 0)
      if (state === HOSTCALL) {
        writeHostResult(r, handler(readPayload(r)))
        Atomics.store(r.header, 0, HOSTRESULT)
        Atomics.notify(r.header, 0)
        continue
      }
      if (state === RESPONSE) {
        if (r.header[1] === VIA_MESSAGE) {
          while (inbox.length === 0) {
            const end = ended(deadline, signal)
            if (end !== undefined) return end
            await nextPosted(deadline, signal)
          }
          Atomics.store(r.header, 0, IDLE)
          return { kind: "response", value: inbox.shift() as Wire }
        }
        const value = readPayload(r)
        Atomics.store(r.header, 0, IDLE)
        return { kind: "response", value }
      }
      const end = ended(deadline, signal)
      if (end !== undefined) return end
      const remaining = deadline === undefined ? Infinity : deadline - performance.now()
      const waited = (Atomics as unknown as {
        waitAsync: (a: Int32Array, i: number, v: number, t: number) => { async: boolean; value: Promise<string> | string }
      }).waitAsync(r.header, 0, state, remaining)
      if (waited.async) await waited.value
    }
  }

  const requestMessage: PageChannel["request"] = async (message, handler, deadline, signal) => {
    onHostCall = handler
    try {
      post(["req", message])
      while (inbox.length === 0) {
        const end = ended(deadline, signal)
        if (end !== undefined) return end
        await nextPosted(deadline, signal)
      }
      return { kind: "response", value: inbox.shift() as Wire }
    } finally {
      onHostCall = undefined
    }
  }

  return {
    kind,
    init: { kind, buffer },
    onMessage,
    request: async (message, handler, deadline, signal) => {
      if (lost !== undefined) return { kind: "lost", reason: lost }
      const abort = () => {
        Atomics.notify(r.header, 0)
        poke()
      }
      signal?.addEventListener("abort", abort)
      try {
        return await (kind === "shared" ? requestShared : requestMessage)(message, handler, deadline, signal)
      } finally {
        signal?.removeEventListener("abort", abort)
      }
    },
    fail: (reason) => {
      lost ??= reason
      Atomics.notify(r.header, 0)
      poke()
    }
  }
}

/** The worker's end of a channel. */
export interface WorkerChannel {
  /** Starts serving requests (`"shared"`: the blocking loop). */
  readonly serve: () => void
  /** Feed every message the page posts here (after the init message). */
  readonly onMessage: (message: ChannelMessage) => void
  /** Sends a host call and blocks (`Atomics.wait`) until the page's result arrives. */
  readonly hostCall: (call: Wire) => Wire
}

/** Opens the worker's end. `handler` serves one request; `post` sends a message to the page. */
export const openWorker = (
  init: ChannelInit,
  handler: (request: unknown) => unknown,
  post: (message: ChannelMessage) => void
): WorkerChannel => {
  const r = region(init.buffer)

  const respondShared = (value: unknown) => {
    send(r, post, "res", value)
    Atomics.store(r.header, 0, RESPONSE)
    Atomics.notify(r.header, 0)
  }

  /** Serves requests, blocked in `Atomics.wait` between them, until one arrives as a message. */
  const loop = () => {
    for (;;) {
      const state = Atomics.load(r.header, 0)
      if (state === REQUEST) {
        if (r.header[1] === VIA_MESSAGE) return // the posted request is waiting in the event loop
        respondShared(handler(readPayload(r)))
        continue
      }
      Atomics.wait(r.header, 0, state)
    }
  }

  return {
    serve: () => {
      if (init.kind === "shared") loop()
    },
    onMessage: (message) => {
      if (message[0] !== "req") return
      const response = handler(message[1])
      if (init.kind === "shared") {
        respondShared(response)
        loop()
      } else {
        post(["res", response])
      }
    },
    hostCall: (call) => {
      if (init.kind === "shared") {
        send(r, () => {
          throw new Overflow()
        }, "req", call)
        Atomics.store(r.header, 0, HOSTCALL)
        Atomics.notify(r.header, 0)
        while (Atomics.load(r.header, 0) === HOSTCALL) Atomics.wait(r.header, 0, HOSTCALL)
        return readPayload(r)
      }
      Atomics.store(r.header, 0, HOSTCALL)
      post(["call", call])
      while (Atomics.load(r.header, 0) !== HOSTRESULT) Atomics.wait(r.header, 0, Atomics.load(r.header, 0))
      const result = readPayload(r)
      Atomics.store(r.header, 0, IDLE)
      return result
    }
  }
}
