/**
 * The call path between the host thread and one worker (DESIGN.md
 * "Platforms": Node and Browser — SharedArrayBuffer + Atomics, the host never
 * blocks). The one place the transport lives: both worker engines use it.
 *
 * A channel carries one request at a time from the host to the worker
 * (`Protocol.Request`), the worker's synchronous *host calls* back to the
 * host while it runs (a guest calling a host import: host functions stay on
 * the host thread), and the reply. Layout: one `SharedArrayBuffer` — a
 * 16-byte header of `Int32` words ([0] state, [1] payload length in bytes or
 * -1 = "posted as a message", [2..3] reserved) and the payload region
 * (`channelBytes`, default 256 KiB) in the compact binary codec (`Codec.ts`).
 * Two transports, same behaviour:
 *
 * - `"shared"` (default, needs `Atomics.waitAsync`): the state word moves
 *   IDLE → REQUEST (host) → [HOSTCALL (worker) → HOSTRESULT (host)]* →
 *   RESPONSE (worker) → IDLE (host). The worker blocks in `Atomics.wait`
 *   between and during requests; the host waits with `Atomics.waitAsync`
 *   (the call's deadline as the wait timeout), so its event loop keeps
 *   serving other workers, timers and I/O while a guest runs, and runs host
 *   imports inside that loop — a guest waiting for its host call and the host
 *   waiting for the guest's reply cannot deadlock. A payload the codec cannot
 *   carry (a `WebAssembly.Module`) or that does not fit (large memory reads,
 *   snapshots) is posted (`postMessage`, structured clone) *before* the state
 *   word changes and the length word says so: the worker then leaves its
 *   blocking loop to take the message from its event loop; the host awaits a
 *   posted reply the same way.
 * - `"message"` (the classic design, and the fallback where
 *   `Atomics.waitAsync` is missing): requests and replies are posted; a host
 *   call is posted by the worker, which then blocks in `Atomics.wait` on the
 *   state word until the host has written the result into the payload region
 *   (HOSTCALL → HOSTRESULT). The host still never blocks.
 *
 * A request ends with a reply, a timeout (its deadline passed: the caller
 * then terminates the worker), `aborted` (the caller was interrupted) or
 * `lost` (the worker died: `fail(reason)` wakes the waiting host).
 *
 * Platform-free: time and timers come from the `ChannelPort` the
 * `WorkerHost` gives (`now()` in ms, a cancellable timer).
 *
 * Sources: ECMAScript §25.4 `Atomics.wait` / `Atomics.waitAsync` /
 * `Atomics.notify`; HTML §"Cross-origin isolation" (SharedArrayBuffer in a
 * page needs COOP `same-origin` + COEP `require-corp`).
 *
 * @since 0.2.0
 */
import { decode, encode, Overflow, Unencodable, type Wire } from "./Codec.js"
import type { HostCall, HostReply, Reply, ReplyTo, Request } from "./Protocol.js"

/** Which transport a channel uses. */
export type ChannelKind = "shared" | "message"

/** Default payload region, in bytes (256 KiB). */
export const DEFAULT_CHANNEL_BYTES = 256 * 1024

const HEADER_BYTES = 16
/** State word values. */
const IDLE = 0
const REQUEST = 1
const HOSTCALL = 2
const HOSTRESULT = 3
const RESPONSE = 4
/** Length word value: the payload was posted. */
const VIA_MESSAGE = -1

/** Runs a host import for the worker: call in, reply out. Never throws. */
export type HostCallHandler = (call: HostCall) => HostReply

/** How a request ended; `A` is the reply type. */
export type ChannelOutcome<A = Reply> =
  | { readonly kind: "response"; readonly value: A }
  | { readonly kind: "timeout" }
  | { readonly kind: "aborted" }
  | { readonly kind: "lost"; readonly reason: string }

/** What the worker needs to open its end (sent in its first message, `Protocol.WorkerInit`). */
export interface ChannelInit {
  readonly kind: ChannelKind
  readonly buffer: SharedArrayBuffer
}

/** Messages between the ends: `["req", request]` / `["res", reply]` / `["call", hostCall]`. */
export type ChannelMessage = readonly ["req" | "res" | "call", unknown]

/** What the host's end needs from its platform (`WorkerHost`): sending, time in ms, a cancellable timer. */
export interface ChannelPort {
  /** Posts a message to the worker. */
  readonly post: (message: ChannelMessage) => void
  /** A monotonic time in ms (`performance.now()`). */
  readonly now: () => number
  /** Calls `f` after `ms` ms; returns a function that cancels it. */
  readonly setTimer: (ms: number, f: () => void) => () => void
  /** The worker can take a posted message while it blocks (`WorkerScope.receive`): oversized host results are posted. */
  readonly syncReceive?: boolean | undefined
}

/** True when this realm can wait on shared memory without blocking (`Atomics.waitAsync`). */
export const hasWaitAsync = (): boolean =>
  typeof (Atomics as unknown as { waitAsync?: unknown }).waitAsync === "function"

type WaitAsync = (a: Int32Array, i: number, v: number, t: number) => { async: boolean; value: Promise<string> | string }

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

/**
 * Writes a host call's reply. One that does not fit is posted when the worker
 * can take a message while it blocks (`ChannelPort.syncReceive`); otherwise,
 * or when it cannot be encoded at all, it becomes a failure the guest sees as
 * a trap (shortened to fit).
 */
const writeHostResult = (r: Region, result: HostReply, post: ((m: ChannelMessage) => void) | undefined): void => {
  const capacity = r.bytes.byteLength
  let length: number
  try {
    length = encode(result, r.bytes, r.view, HEADER_BYTES, capacity) - HEADER_BYTES
  } catch (e) {
    if (post !== undefined && e instanceof Overflow) {
      post(["res", result])
      r.header[1] = VIA_MESSAGE
      return
    }
    let reason = `host function result cannot cross to the worker: ${e instanceof Error ? e.message : String(e)}`
    for (;;) {
      try {
        length = encode([0, reason], r.bytes, r.view, HEADER_BYTES, capacity) - HEADER_BYTES
        break
      } catch {
        reason = reason.slice(0, Math.floor(reason.length / 2))
      }
    }
  }
  r.header[1] = length
}

/** The host's end of a channel. */
export interface HostChannel {
  readonly kind: ChannelKind
  /** What the worker needs to open its end. */
  readonly init: ChannelInit
  /** Feed every message the worker posts here. */
  readonly onMessage: (message: ChannelMessage) => void
  /**
   * Sends `request` and waits (never blocking) for its reply, running host
   * calls on the way. `deadline` is a `ChannelPort.now()` time in ms.
   */
  readonly request: <R extends Request>(
    request: R,
    onHostCall: HostCallHandler,
    deadline: number | undefined,
    signal: AbortSignal | undefined
  ) => Promise<ChannelOutcome<ReplyTo<R>>>
  /** The worker died: the pending and every later request end with `lost`. */
  readonly fail: (reason: string) => void
}

/** Opens the host's end. `channelBytes` sizes the payload region. */
export const openHost = (kind: ChannelKind, port: ChannelPort, channelBytes = DEFAULT_CHANNEL_BYTES): HostChannel => {
  const buffer = new SharedArrayBuffer(HEADER_BYTES + channelBytes)
  const r = region(buffer)
  const { now, post } = port
  const postResult = port.syncReceive === true ? post : undefined
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
      let cancel: (() => void) | undefined
      wake = () => {
        cancel?.()
        resolve()
      }
      if (deadline !== undefined) cancel = port.setTimer(Math.max(0, deadline - now()), poke)
    })

  const onMessage = (message: ChannelMessage) => {
    if (message[0] === "call") {
      // message transport: a host call posted by the blocked worker
      const result: HostReply = onHostCall === undefined
        ? [0, "host function threw: no request in flight"]
        : onHostCall(message[1] as HostCall)
      writeHostResult(r, result, undefined)
      Atomics.store(r.header, 0, HOSTRESULT)
      Atomics.notify(r.header, 0)
      return
    }
    inbox.push(message[1])
    poke()
  }

  const ended = (deadline: number | undefined, signal: AbortSignal | undefined): ChannelOutcome<never> | undefined => {
    if (lost !== undefined) return { kind: "lost", reason: lost }
    if (signal?.aborted) return { kind: "aborted" }
    if (deadline !== undefined && deadline - now() <= 0) return { kind: "timeout" }
    return undefined
  }

  const requestShared = async (
    message: Request,
    handler: HostCallHandler,
    deadline: number | undefined,
    signal: AbortSignal | undefined
  ): Promise<ChannelOutcome<unknown>> => {
    send(r, post, "req", message)
    Atomics.store(r.header, 0, REQUEST)
    Atomics.notify(r.header, 0)
    for (;;) {
      const state = Atomics.load(r.header, 0)
      if (state === HOSTCALL) {
        writeHostResult(r, handler(readPayload(r) as unknown as HostCall), postResult)
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
          return { kind: "response", value: inbox.shift() }
        }
        const value = readPayload(r)
        Atomics.store(r.header, 0, IDLE)
        return { kind: "response", value }
      }
      const end = ended(deadline, signal)
      if (end !== undefined) return end
      const remaining = deadline === undefined ? Infinity : deadline - now()
      const waited = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(r.header, 0, state, remaining)
      if (waited.async) await waited.value
    }
  }

  const requestMessage = async (
    message: Request,
    handler: HostCallHandler,
    deadline: number | undefined,
    signal: AbortSignal | undefined
  ): Promise<ChannelOutcome<unknown>> => {
    onHostCall = handler
    try {
      post(["req", message])
      while (inbox.length === 0) {
        const end = ended(deadline, signal)
        if (end !== undefined) return end
        await nextPosted(deadline, signal)
      }
      return { kind: "response", value: inbox.shift() }
    } finally {
      onHostCall = undefined
    }
  }

  const request = async (
    message: Request,
    handler: HostCallHandler,
    deadline: number | undefined,
    signal: AbortSignal | undefined
  ): Promise<ChannelOutcome<unknown>> => {
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
  }

  return {
    kind,
    init: { kind, buffer },
    onMessage,
    // the reply's type follows from the request's (`Protocol.ReplyTo`): the executor answers each request with it
    request: request as HostChannel["request"],
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
  /** Feed every message the host posts here (after the init message). */
  readonly onMessage: (message: ChannelMessage) => void
  /** Sends a host call and blocks (`Atomics.wait`) until the host's reply arrives. */
  readonly hostCall: (call: HostCall) => HostReply
}

/**
 * Opens the worker's end. `handler` serves one request; `post` sends a
 * message to the host; `receive`, where the platform has it, takes the next
 * posted message synchronously (an oversized host result).
 */
export const openWorker = <W>(
  init: ChannelInit,
  handler: (request: Request<W>) => Reply,
  post: (message: ChannelMessage) => void,
  receive?: (() => unknown) | undefined
): WorkerChannel => {
  const r = region(init.buffer)

  const respondShared = (value: Reply) => {
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
        respondShared(handler(readPayload(r) as unknown as Request<W>))
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
      const response = handler(message[1] as Request<W>)
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
        if (r.header[1] === VIA_MESSAGE) {
          const posted = receive?.() as ChannelMessage | undefined
          if (posted === undefined) return [0, "host function threw: the posted host result is missing"]
          return posted[1] as HostReply
        }
        return readPayload(r) as unknown as HostReply
      }
      Atomics.store(r.header, 0, HOSTCALL)
      post(["call", call])
      // loop on the value read, not on the wake-up: the state may change between a load and the wait
      for (let state = Atomics.load(r.header, 0); state !== HOSTRESULT; state = Atomics.load(r.header, 0)) {
        Atomics.wait(r.header, 0, state)
      }
      const result = readPayload(r) as unknown as HostReply
      Atomics.store(r.header, 0, IDLE)
      return result
    }
  }
}
