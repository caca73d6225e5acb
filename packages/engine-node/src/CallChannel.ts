/**
 * The call path between the host thread and one worker (DESIGN.md
 * "Platforms": Node — "SharedArrayBuffer + Atomics call path").
 *
 * A channel carries one request at a time from the host to the worker, the
 * worker's synchronous *host calls* back to the host while that request runs
 * (a guest calling a host import), and the final response. Two transports,
 * selected by `NodeEngineOptions.channel`, with the same behaviour:
 *
 * - `"shared"` (default): a `SharedArrayBuffer` per worker — a 16-byte header
 *   (`Int32` words: [0] state, [1] payload length in bytes or -1 = "sent with
 *   postMessage", [2..3] reserved) followed by the payload region
 *   (`channelBytes`, default 256 KiB). Payloads use the compact binary codec
 *   (`internal/Codec.ts`: i64 as 8 bytes, f64 as 8, int32 as 4, strings as
 *   UTF-8). The state word moves IDLE → REQUEST (host) → [HOSTCALL (worker) →
 *   HOSTRESULT (host)]* → RESPONSE (worker) → IDLE (host). The worker blocks in
 *   `Atomics.wait`; the host never blocks: it waits with `Atomics.waitAsync`
 *   (with the call's deadline as the wait timeout), so its event loop keeps
 *   serving other workers, timers and I/O while a guest runs — and a host
 *   import runs on the host thread inside that loop, which is why a guest
 *   waiting for its host call and the host waiting for the guest's response
 *   cannot deadlock. A message that cannot be encoded (a `WebAssembly.Module`,
 *   a shared `WebAssembly.Memory`) or does not fit the buffer (large memory
 *   reads, snapshots) is posted on a `MessagePort` *before* the state word
 *   changes, and the receiver takes it synchronously with
 *   `receiveMessageOnPort` — same ordering, no event-loop turn.
 * - `"message"`: one `postMessage` per request and per response
 *   (structured clone), the classic design, kept so the benchmark can compare
 *   both. Host calls still need the worker to block: the worker posts the call
 *   and `Atomics.wait`s on a one-word signal buffer; the host runs the import,
 *   posts the result on a second port and notifies; the worker takes it with
 *   `receiveMessageOnPort`.
 *
 * A request ends with a response, a timeout (its deadline passed: the caller
 * then terminates the worker), `aborted` (the caller was interrupted) or
 * `lost` (the worker died: `fail(reason)` wakes the waiting host).
 *
 * Sources: ECMAScript §25.4 `Atomics.wait` / `Atomics.waitAsync` /
 * `Atomics.notify`; Node `worker_threads` (`receiveMessageOnPort`,
 * `MessageChannel`).
 *
 * @since 0.1.0
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort } from "node:worker_threads"
import { decode, encode, Overflow, Unencodable, type Wire } from "./internal/Codec.js"

/** Which transport a channel uses. */
export type ChannelKind = "shared" | "message"

/** Default payload region of a shared channel, in bytes. */
export const DEFAULT_CHANNEL_BYTES = 256 * 1024

const HEADER_BYTES = 16
/** State word values of a shared channel. */
const IDLE = 0
const REQUEST = 1
const HOSTCALL = 2
const HOSTRESULT = 3
const RESPONSE = 4
/** Length word value: the payload was posted on the port. */
const VIA_PORT = -1

/** Runs a host import for the worker: `call` in, result out. Never throws. */
export type HostCallHandler = (call: Wire) => unknown

/** How a request ended. */
export type ChannelOutcome =
  | { readonly kind: "response"; readonly value: Wire }
  | { readonly kind: "timeout" }
  | { readonly kind: "aborted" }
  | { readonly kind: "lost"; readonly reason: string }

/** What the worker needs to open its end (posted in `workerData`). */
export type ChannelData =
  | {
    readonly kind: "shared"
    readonly buffer: SharedArrayBuffer
    readonly toWorker: MessagePort
    readonly toHost: MessagePort
  }
  | {
    readonly kind: "message"
    readonly requests: MessagePort
    readonly results: MessagePort
    readonly signal: SharedArrayBuffer
  }

/** The host's end of a channel. */
export interface HostChannel {
  readonly kind: ChannelKind
  /** The worker's end, and the ports to transfer with it. */
  readonly workerData: ChannelData
  readonly transferList: ReadonlyArray<MessagePort>
  /**
   * Sends `message` and waits (asynchronously) for the response, running host
   * calls on the way. `deadline` is a `performance.now()` time in ms.
   */
  readonly request: (
    message: unknown,
    onHostCall: HostCallHandler,
    deadline: number | undefined,
    signal: AbortSignal | undefined
  ) => Promise<ChannelOutcome>
  /** The worker died: the pending and every later request end with `lost`. */
  readonly fail: (reason: string) => void
  /** Releases the ports. */
  readonly close: () => void
}

/** The worker's end of a channel. */
export interface WorkerChannel {
  /** Serves requests forever (`"shared"`: a blocking loop; `"message"`: a port listener). */
  readonly serve: (handler: (request: Wire) => unknown) => void
  /** Sends a host call and blocks until the host's result arrives. */
  readonly hostCall: (call: Wire) => Wire
}

// -- shared (SharedArrayBuffer + Atomics) -----------------------------------

/** Writes `message` into the payload region, or posts it on `port` when it cannot be encoded there. */
const sendShared = (
  header: Int32Array,
  bytes: Uint8Array,
  view: DataView,
  port: MessagePort,
  message: unknown
): void => {
  let length: number
  try {
    length = encode(message, bytes, view, HEADER_BYTES, bytes.byteLength) - HEADER_BYTES
  } catch (e) {
    if (!(e instanceof Overflow) && !(e instanceof Unencodable)) throw e
    port.postMessage(message)
    length = VIA_PORT
  }
  header[1] = length
}

const receiveShared = (header: Int32Array, bytes: Uint8Array, view: DataView, port: MessagePort): Wire => {
  const length = header[1]!
  if (length === VIA_PORT) {
    const received = receiveMessageOnPort(port)
    if (received === undefined) throw new Error("channel: the posted payload is missing")
    return received.message as Wire
  }
  return decode(bytes, view, HEADER_BYTES, HEADER_BYTES + length)
}

const sharedHost = (channelBytes: number): HostChannel => {
  const buffer = new SharedArrayBuffer(HEADER_BYTES + channelBytes)
  const header = new Int32Array(buffer, 0, HEADER_BYTES / 4)
  const bytes = new Uint8Array(buffer)
  const view = new DataView(buffer)
  const toWorker = new MessageChannel()
  const toHost = new MessageChannel()
  let lost: string | undefined

  const request: HostChannel["request"] = async (message, onHostCall, deadline, signal) => {
    if (lost !== undefined) return { kind: "lost", reason: lost }
    const wake = () => Atomics.notify(header, 0)
    signal?.addEventListener("abort", wake)
    try {
      sendShared(header, bytes, view, toWorker.port1, message)
      Atomics.store(header, 0, REQUEST)
      Atomics.notify(header, 0)
      for (;;) {
        if (lost !== undefined) return { kind: "lost", reason: lost }
        if (signal?.aborted) return { kind: "aborted" }
        const state = Atomics.load(header, 0)
        if (state === HOSTCALL) {
          const result = onHostCall(receiveShared(header, bytes, view, toHost.port1))
          sendShared(header, bytes, view, toWorker.port1, result)
          Atomics.store(header, 0, HOSTRESULT)
          Atomics.notify(header, 0)
          continue
        }
        if (state === RESPONSE) {
          const value = receiveShared(header, bytes, view, toHost.port1)
          Atomics.store(header, 0, IDLE)
          return { kind: "response", value }
        }
        const remaining = deadline === undefined ? Infinity : deadline - performance.now()
        if (remaining <= 0) return { kind: "timeout" }
        const waited = Atomics.waitAsync(header, 0, state, remaining)
        if (waited.async) await waited.value
      }
    } finally {
      signal?.removeEventListener("abort", wake)
    }
  }

  return {
    kind: "shared",
    workerData: { kind: "shared", buffer, toWorker: toWorker.port2, toHost: toHost.port2 },
    transferList: [toWorker.port2, toHost.port2],
    request,
    fail: (reason) => {
      lost ??= reason
      Atomics.notify(header, 0)
    },
    close: () => {
      toWorker.port1.close()
      toHost.port1.close()
    }
  }
}

const sharedWorker = (data: Extract<ChannelData, { kind: "shared" }>): WorkerChannel => {
  const header = new Int32Array(data.buffer, 0, HEADER_BYTES / 4)
  const bytes = new Uint8Array(data.buffer)
  const view = new DataView(data.buffer)
  return {
    serve: (handler) => {
      for (;;) {
        const state = Atomics.load(header, 0)
        if (state !== REQUEST) {
          Atomics.wait(header, 0, state)
          continue
        }
        const response = handler(receiveShared(header, bytes, view, data.toWorker))
        sendShared(header, bytes, view, data.toHost, response)
        Atomics.store(header, 0, RESPONSE)
        Atomics.notify(header, 0)
      }
    },
    hostCall: (call) => {
      sendShared(header, bytes, view, data.toHost, call)
      Atomics.store(header, 0, HOSTCALL)
      Atomics.notify(header, 0)
      while (Atomics.load(header, 0) === HOSTCALL) Atomics.wait(header, 0, HOSTCALL)
      return receiveShared(header, bytes, view, data.toWorker)
    }
  }
}

// -- message (postMessage per call) -------------------------------------------

const M_HOSTCALL = 0
const M_RESPONSE = 1

const messageHost = (): HostChannel => {
  const requests = new MessageChannel()
  const results = new MessageChannel()
  const signalBuffer = new SharedArrayBuffer(4)
  const signalWord = new Int32Array(signalBuffer)
  let lost: string | undefined
  let pending: ((outcome: ChannelOutcome) => void) | undefined
  let onHostCall: HostCallHandler | undefined

  requests.port1.on("message", (message: [number, Wire]) => {
    if (message[0] === M_HOSTCALL) {
      const result = onHostCall === undefined ? [0, "no request in flight"] : onHostCall(message[1])
      results.port1.postMessage(result)
      Atomics.store(signalWord, 0, 1)
      Atomics.notify(signalWord, 0)
    } else {
      pending?.({ kind: "response", value: message[1] })
    }
  })
  // the worker keeps the process alive while a request is in flight, not the port
  requests.port1.unref()

  const request: HostChannel["request"] = (message, handler, deadline, signal) => {
    if (lost !== undefined) return Promise.resolve({ kind: "lost", reason: lost })
    return new Promise<ChannelOutcome>((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const abort = () => finish({ kind: "aborted" })
      const finish = (outcome: ChannelOutcome) => {
        if (pending !== finish) return
        pending = undefined
        onHostCall = undefined
        if (timer !== undefined) clearTimeout(timer)
        signal?.removeEventListener("abort", abort)
        resolve(outcome)
      }
      pending = finish
      onHostCall = handler
      if (deadline !== undefined) {
        timer = setTimeout(() => finish({ kind: "timeout" }), Math.max(0, deadline - performance.now()))
      }
      signal?.addEventListener("abort", abort)
      requests.port1.postMessage(message)
    })
  }

  return {
    kind: "message",
    workerData: { kind: "message", requests: requests.port2, results: results.port2, signal: signalBuffer },
    transferList: [requests.port2, results.port2],
    request,
    fail: (reason) => {
      lost ??= reason
      pending?.({ kind: "lost", reason })
    },
    close: () => {
      requests.port1.close()
      results.port1.close()
    }
  }
}

const messageWorker = (data: Extract<ChannelData, { kind: "message" }>): WorkerChannel => {
  const signalWord = new Int32Array(data.signal)
  return {
    serve: (handler) => {
      data.requests.on("message", (request: Wire) => {
        data.requests.postMessage([M_RESPONSE, handler(request)])
      })
    },
    hostCall: (call) => {
      data.requests.postMessage([M_HOSTCALL, call])
      // loop on the value, not on the wake-up: a late notify of the previous call may wake this wait early
      while (Atomics.load(signalWord, 0) === 0) Atomics.wait(signalWord, 0, 0)
      Atomics.store(signalWord, 0, 0)
      const received = receiveMessageOnPort(data.results)
      if (received === undefined) throw new Error("channel: the host call result is missing")
      return received.message as Wire
    }
  }
}

/** Opens the host's end of a new channel. `channelBytes` sizes the shared payload region. */
export const openHost = (kind: ChannelKind, channelBytes = DEFAULT_CHANNEL_BYTES): HostChannel =>
  kind === "shared" ? sharedHost(channelBytes) : messageHost()

/** Opens the worker's end from what the host posted in `workerData`. */
export const openWorker = (data: ChannelData): WorkerChannel =>
  data.kind === "shared" ? sharedWorker(data) : messageWorker(data)
