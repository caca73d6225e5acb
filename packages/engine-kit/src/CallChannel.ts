/**
 * The call path between the host thread and one worker (DESIGN.md
 * "Platforms": Node and Browser — SharedArrayBuffer + Atomics; the host blocks
 * only for bounded microseconds). The one place the transport lives: both worker engines use it.
 *
 * A channel carries one request at a time from the host to the worker
 * (`Protocol.Request`), the worker's synchronous *host calls* back to the
 * host while it runs (a guest calling a host import: host functions stay on
 * the host thread), and the reply. Layout: one `SharedArrayBuffer` — a
 * 32-byte header of `Int32` words ([0] state, [1] payload length in bytes or
 * -1 = "posted as a message", [2] the worker sleeps in `Atomics.wait` (1) or
 * not (0), [3] the host sleeps in `Atomics.wait`/`waitAsync` (1) or not (0), [4]
 * how long the worker ran before its last answer, in µs, [5] the host's
 * spins catch replies lately (1) or not (0), [6] a request is coming (1:
 * `HostChannel.prefetch`) or not (0), [7] reserved) and the
 * payload region (`channelBytes`, default 256 KiB) in the compact binary
 * codec (`Codec.ts`). Two transports, same behaviour:
 *
 * - `"shared"` (default, needs `Atomics.waitAsync`): the state word moves
 *   IDLE → REQUEST (host) → [HOSTCALL (worker) → HOSTRESULT (host)]* →
 *   RESPONSE (worker) → IDLE (host). Each side waits for the other
 *   *adaptively*: first it spins on the state word (`Atomics.load` in a
 *   loop) for a short budget, then it sleeps — the worker in `Atomics.wait`,
 *   the host in `Atomics.waitAsync` (the call's deadline as the wait
 *   timeout), so its event loop keeps serving other workers, timers and I/O
 *   while a guest runs, and runs host imports inside that loop — a guest
 *   waiting for its host call and the host waiting for the guest's reply
 *   cannot deadlock. A side raises its sleep word before it sleeps and reads
 *   the state word again before sleeping on it; the other side calls
 *   `Atomics.notify` only when it reads the sleep word raised (all
 *   sequentially consistent atomics: a wake-up is never lost, and a spinning
 *   side never costs a futex wake-up). With hints on (`SpinLimits.prefetchMaxMs`
 *   above 0; off by default since wave 9) a caller that knows a request is
 *   coming (`prefetch`: the runtime's hint at the start of a queued invoke) raises
 *   header word 6 and wakes a sleeping worker at once, so the worker's
 *   wake-up overlaps the host's work before the request; the worker then
 *   spins for that request at most `WORKER_PREFETCH_MAX_MS` before it sleeps
 *   again, the request needs no second notify, and the host meets the reply
 *   of a worker found spinning for it spinning too (as a page does after
 *   waking a worker). Hints are given only while they pay off
 *   (`PrefetchGate`: on busy cores a woken worker lands on the host's own
 *   core and only delays it). Budgets adapt to the call rate: the
 *   worker spins for the next request (or a host call's result) about twice
 *   the gap it last observed (at least 50 µs, so a host late by a minor GC
 *   costs no wake-up) while gaps stay within `WORKER_SPIN_MAX_MS`, and
 *   halves its budget on each longer gap; the host spins synchronously
 *   (its event loop blocked) only while the worker is awake and its last run
 *   (header word 4) was short — about twice that run, at most
 *   `HOST_SPIN_MAX_MS`, scaled down on misses and back up on hits. The
 *   worker spins for requests only while the host's spins hit (header word
 *   5; and on every 16th request, a probe): on busy cores a spinning worker
 *   only takes CPU time from the host, so both sides then sleep. Between
 *   spinning and sleeping asynchronously, the host waits for a worker whose
 *   runs are short *synchronously*, at most `HOST_WAKE_MAX_MS` (adaptive:
 *   twice the recent wake-ups): in `Atomics.wait` where its thread may block
 *   (Node's main thread), else — only right after waking a sleeping worker —
 *   spinning. A reply caught so (the usual hot and idle no-op) is taken in
 *   the caller's own step (`begin`): no promise, no event-loop wake-up. An
 *   idle runtime spins nowhere: after its last call the worker spins once,
 *   then sleeps; the host spins only inside a request. A payload the codec cannot
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

const HEADER_BYTES = 32
/** State word values. */
const IDLE = 0
const REQUEST = 1
const HOSTCALL = 2
const HOSTRESULT = 3
const RESPONSE = 4
/** Length word value: the payload was posted. */
const VIA_MESSAGE = -1
/** What `drive` returns when the reply was posted (a state word is never negative). */
const POSTED = -1
/** Header words: the worker sleeps in `Atomics.wait` / the host sleeps in `Atomics.waitAsync` (1) or not (0). */
const WORKER_SLEEPS = 2
const HOST_SLEEPS = 3
/** Header word: how long the worker ran (request or host result in → host call or reply out) before its last answer, µs. */
const WORKER_RAN_US = 4
/** Header word: the host's spins catch the worker's replies lately (1) or miss (0): the worker spins for requests only then. */
const HOST_SPINS = 5
/** Header word: a request is coming (1, set by `HostChannel.prefetch`; the worker clears it) or not (0). */
const COMING = 6

/**
 * The most the worker spins waiting for the host, in ms (200 µs): for the
 * next request after a reply, for a host call's result. Past it, the worker
 * sleeps in `Atomics.wait`.
 */
export const WORKER_SPIN_MAX_MS = 0.2
/**
 * The most the host spins synchronously (its event loop blocked) waiting for
 * the worker, in ms (50 µs), before it yields to `Atomics.waitAsync`.
 */
export const HOST_SPIN_MAX_MS = 0.05
/**
 * The most the host waits synchronously (its event loop blocked) for a
 * worker it has just woken from `Atomics.wait`, in ms (500 µs): the worker's
 * wake-up plus its short run, taken without a second wake-up of the host
 * through its event loop. Where the host thread may block (Node's main
 * thread, a worker) it sleeps in `Atomics.wait` meanwhile, else it spins.
 */
export const HOST_WAKE_MAX_MS = 0.5
/**
 * The most a worker woken by `HostChannel.prefetch` spins for the request
 * that is coming, in ms: **0 by default — hints off** (wave 9: hints showed
 * no gain in paired runs at any load, and the runtime now writes an idle
 * agent's request within a few µs of the call's start —
 * `WasmInstance.invokeStart` — leaving nothing for a hint to overlap).
 * `SpinLimits.prefetchMaxMs` turns them on (0.2, i.e. 200 µs, was the
 * default): the woken worker spins that long for the request, then sleeps
 * again; the request then wakes it as usual.
 */
export const WORKER_PREFETCH_MAX_MS = 0
/** How long each side may spin at most, in ms (adaptive below that). */
export interface SpinLimits {
  /** The worker's cap (`WORKER_SPIN_MAX_MS` by default). */
  readonly workerMaxMs: number
  /** The host's cap, its event loop blocked (`HOST_SPIN_MAX_MS` by default). */
  readonly hostMaxMs: number
  /** The host's cap on a synchronous wait for a worker it has just woken (`HOST_WAKE_MAX_MS` by default; 0: none). */
  readonly hostWakeMaxMs?: number | undefined
  /** The worker's cap on its spin for a request announced by `prefetch` (`WORKER_PREFETCH_MAX_MS` by default; 0: `prefetch` does nothing). */
  readonly prefetchMaxMs?: number | undefined
}

/**
 * The default caps: 200 µs for the worker, 50 µs for the host, 500 µs for the host after waking the worker, no
 * `prefetch` hints (`WORKER_PREFETCH_MAX_MS`).
 */
export const DEFAULT_SPIN: SpinLimits = {
  workerMaxMs: WORKER_SPIN_MAX_MS,
  hostMaxMs: HOST_SPIN_MAX_MS,
  hostWakeMaxMs: HOST_WAKE_MAX_MS,
  prefetchMaxMs: WORKER_PREFETCH_MAX_MS
}

/** The longest the host runs one request synchronously (spins and host calls) before it sleeps once, ms. */
const MAX_SYNC_MS = 1

/** The worker spins for the next request after a reply its host slept for on every this many requests (a power of 2). */
const PROBE_EVERY = 16

/** While hints do not pay off (`PrefetchGate`), `prefetch` still wakes the worker on every this many chances (a power of 2). */
const PREFETCH_PROBE_EVERY = 64

/** How the worker stands when the host has written a request (`drive`): awake, just notified, or spinning for it after a `prefetch`. */
const AWAKE = 0
const WOKE = 1
const ANNOUNCED = 2
type WorkerStand = typeof AWAKE | typeof WOKE | typeof ANNOUNCED

/** The smallest budget in ms (2 µs): below it a side does not spin. */
const SPIN_FLOOR_MS = 0.002

/**
 * The worker's budget after a gap within `WORKER_SPIN_MAX_MS` is at least
 * this, ms (50 µs): a host whose next request comes a little late (a minor
 * GC, a burst of microtasks) must not cost a futex wake-up of the worker.
 */
const GAP_SPIN_LEAST_MS = 0.05

/**
 * Polls the state word for at most `budget` ms until it is `value` (`until`)
 * or no longer `value` (`!until`): `true` when it is / it changed. The clock
 * is read every 64 polls, the first time after the first 64 (a reply that
 * comes within them costs no clock read: `performance.now()` is ≈ 70 ns, a
 * poll a few ns), so the budget may overrun by one such stretch.
 */
const spin = (header: Int32Array, value: number, until: boolean, budget: number, now: () => number): boolean => {
  if (budget <= 0) return (Atomics.load(header, 0) === value) === until
  let start = 0
  for (let i = 1; ; i++) {
    if ((Atomics.load(header, 0) === value) === until) return true
    if ((i & 63) === 0) {
      if (i === 64) start = now()
      else if (now() - start >= budget) return false
    }
  }
}

/** Polls the state word while it is `from`, for at most `budget` ms (`spin`): `true` when it changed. */
const spinWhile = (header: Int32Array, from: number, budget: number, now: () => number): boolean =>
  spin(header, from, false, budget, now)

/** Polls the state word until it is `to`, for at most `budget` ms (`spin`): `true` when it is. */
const spinUntil = (header: Int32Array, to: number, budget: number, now: () => number): boolean =>
  spin(header, to, true, budget, now)

/**
 * The worker's budget (ms) for one kind of wait, from the gaps it observes:
 * after each wait, a gap of at most `WORKER_SPIN_MAX_MS` sets the budget to
 * twice that gap (capped), a longer one halves it (below `SPIN_FLOOR_MS`:
 * 0, no spin). Sparse requests thus stop the spinning after a few of them.
 */
class GapSpin {
  budget = 0
  private readonly least: number
  constructor(private readonly max: number) {
    this.least = Math.min(max, GAP_SPIN_LEAST_MS)
  }
  observed(gapMs: number): void {
    const max = this.max
    const next = gapMs <= max ? Math.min(max, Math.max(this.least, gapMs * 2)) : this.budget / 2
    this.budget = next < SPIN_FLOOR_MS ? 0 : next
  }
}

/**
 * The host's budget (ms) for a synchronous wait on the worker: none while
 * the worker sleeps (its wake-up alone costs more) or when its last run
 * took longer than `HOST_SPIN_MAX_MS`; else twice that run plus 5 µs
 * (capped), scaled by the recent success: a hit sets the scale to 1, a miss
 * halves it (at least `SPIN_FLOOR_MS`). The host publishes whether its spins
 * hit (header word 5: the scale is at least 1/4); while they miss, the worker
 * spins only on its probes, and the host meets a probe with the full budget,
 * so spinning resumes when replies get fast again.
 */
class HostSpin {
  private scale = 1
  constructor(
    private readonly max: number,
    private readonly header: Int32Array
  ) {
    Atomics.store(header, HOST_SPINS, max > 0 ? 1 : 0)
  }
  budget(header: Int32Array): number {
    const max = this.max
    if (max <= 0 || Atomics.load(header, WORKER_SLEEPS) !== 0) return 0
    const ran = Atomics.load(header, WORKER_RAN_US) / 1000
    if (ran > max) return 0
    // the worker is awake although the host's spins missed: its probe, met with a full budget
    const scale = Atomics.load(header, HOST_SPINS) === 0 ? 1 : this.scale
    return Math.max(SPIN_FLOOR_MS, Math.min(max, 2 * ran + 0.005) * scale)
  }
  hit(): void {
    this.scale = 1
    Atomics.store(this.header, HOST_SPINS, 1)
  }
  missed(): void {
    this.scale = Math.max(1 / 1024, this.scale / 2)
    if (this.scale < 0.25) Atomics.store(this.header, HOST_SPINS, 0)
  }
}

/**
 * The host's budget (ms) for a synchronous wait on a worker it has just
 * woken: none when the worker's last run (header word 4) took longer than
 * the cap; else twice the wake-ups it caught lately (a moving average, the
 * cap to start with) plus that run, capped. A miss doubles the estimate (up
 * to the cap), so a slow machine waits up to the cap, never more.
 */
class WakeWait {
  private expected: number
  constructor(private readonly max: number) {
    this.expected = max / 2
  }
  budget(header: Int32Array): number {
    const max = this.max
    if (max <= 0) return 0
    const ran = Atomics.load(header, WORKER_RAN_US) / 1000
    if (ran > max) return 0
    return Math.min(max, 2 * this.expected + ran)
  }
  caught(ms: number): void {
    this.expected = this.expected * 0.75 + ms * 0.25
  }
  missed(): void {
    this.expected = Math.min(this.max, this.expected * 2)
  }
}

/**
 * Whether `prefetch` wakes a sleeping worker: while its hints pay off — the
 * woken worker was already spinning when the request came, and the host got
 * there within half the worker's budget (a woken worker scheduled onto the
 * host's own core, as on busy cores, finds no request and delays the host
 * instead). A hit opens the gate, a miss halves its score; below 1/4 only
 * every `PREFETCH_PROBE_EVERY`th chance is taken (a probe), so hints resume
 * once they pay again — rarely, since a probe on busy cores costs up to the
 * worker's budget.
 */
class PrefetchGate {
  private score = 1
  private probe = 0
  open(): boolean {
    return this.score >= 0.25 || (++this.probe & (PREFETCH_PROBE_EVERY - 1)) === 0
  }
  hit(): void {
    this.score = 1
  }
  missed(): void {
    this.score = Math.max(1 / 1024, this.score / 2)
  }
}

let blocking: boolean | undefined
/**
 * Whether this thread may block in `Atomics.wait` (ECMAScript
 * AgentCanSuspend: Node's main thread and workers may, a page's main thread
 * may not — it throws a `TypeError` even when the value differs).
 */
const canBlock = (): boolean => {
  if (blocking === undefined) {
    try {
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 1, 0)
      blocking = true
    } catch {
      blocking = false
    }
  }
  return blocking
}

/** `performance.now()` where the realm has it (Node, browsers, workerd), else a counter: 64 polls ≈ 1 µs. */
const defaultNow = (): (() => number) => {
  const performance = (globalThis as { performance?: { now: () => number } }).performance
  if (performance !== undefined) return () => performance.now()
  let ticks = 0
  return () => ++ticks / 1000
}

/**
 * What a request waiting for its reply listens to for its caller's
 * interruption (`PendingReply.wait`, `HostChannel.request`): an
 * `AbortSignal`, or the lighter `CallAbort` — a DOM `AbortSignal` costs an
 * `AbortController` and event-target bindings per call (≈ 1 µs per
 * asynchronous call in Chromium's profile).
 */
export interface CallSignal {
  readonly aborted: boolean
  /** `options.once`: as on an `AbortSignal` (a `CallAbort` calls every listener once anyway). */
  addEventListener(type: "abort", listener: () => void, options?: { readonly once?: boolean }): void
  removeEventListener(type: "abort", listener: () => void): void
}

/**
 * A `CallSignal` its owner aborts (`abort()`): plain fields, listeners
 * called once, in order, on the first `abort`; one added after it is not
 * called (check `aborted` first, as with an `AbortSignal`).
 */
export class CallAbort implements CallSignal {
  aborted = false
  private listeners: Array<() => void> | undefined = undefined
  addEventListener(_type: "abort", listener: () => void, _options?: { readonly once?: boolean }): void {
    ;(this.listeners ??= []).push(listener)
  }
  removeEventListener(_type: "abort", listener: () => void): void {
    const listeners = this.listeners
    const at = listeners === undefined ? -1 : listeners.indexOf(listener)
    if (at >= 0) listeners!.splice(at, 1)
  }
  abort(): void {
    if (this.aborted) return
    this.aborted = true
    const listeners = this.listeners
    this.listeners = undefined
    if (listeners !== undefined) for (const listener of listeners) listener()
  }
}

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
  /** The spin caps (`SpinLimits`); `false`: neither side spins, every wait sleeps. Default `DEFAULT_SPIN`. */
  readonly spin?: SpinLimits | false | undefined
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
  /**
   * `true` when a request starts to wait asynchronously for the worker,
   * `false` once it has ended (`WorkerHandle.hold`: Node keeps the process
   * alive meanwhile). A reply caught while spinning calls neither.
   */
  readonly hold?: ((busy: boolean) => void) | undefined
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

/** A request that could not finish synchronously (`HostChannel.begin`). */
export interface PendingReply<A = Reply> {
  /** Waits (never blocking) for the outcome; call it once, right away: the channel stays busy until it settles. */
  readonly wait: (signal: CallSignal | undefined) => Promise<ChannelOutcome<A>>
}

/** The host's end of a channel. */
export interface HostChannel {
  readonly kind: ChannelKind
  /** What the worker needs to open its end. */
  readonly init: ChannelInit
  /** Feed every message the worker posts here. */
  readonly onMessage: (message: ChannelMessage) => void
  /**
   * Sends `request` and takes its reply synchronously when the worker
   * answers within the spin budgets (running host calls on the way): the
   * outcome; otherwise a `PendingReply` to await. `deadline` is a
   * `ChannelPort.now()` time in ms. The hot path of `request`: a reply
   * caught here costs no promise, no abort listener and no `hold`.
   */
  readonly begin: <R extends Request>(
    request: R,
    onHostCall: HostCallHandler,
    deadline: number | undefined
  ) => ChannelOutcome<ReplyTo<R>> | PendingReply<ReplyTo<R>>
  /**
   * Sends `request` and waits (never blocking) for its reply, running host
   * calls on the way. `deadline` is a `ChannelPort.now()` time in ms.
   */
  readonly request: <R extends Request>(
    request: R,
    onHostCall: HostCallHandler,
    deadline: number | undefined,
    signal: CallSignal | undefined
  ) => Promise<ChannelOutcome<ReplyTo<R>>>
  /**
   * A request is coming soon (`WasmInstance.prefetch`): when no request is
   * in flight and the worker sleeps, raises the "coming" word and wakes it,
   * so it spins for the request (at most `SpinLimits.prefetchMaxMs`) instead
   * of paying its wake-up after the request is written. Does nothing on the
   * `"message"` transport, with `spin: false`, or when the worker is awake.
   */
  readonly prefetch: () => void
  /** The worker died: the pending and every later request end with `lost`. */
  readonly fail: (reason: string) => void
}

/**
 * Opens the host's end. `channelBytes` sizes the payload region; `spin`
 * caps both sides' spinning (`false`: every wait sleeps).
 */
export const openHost = (
  kind: ChannelKind,
  port: ChannelPort,
  channelBytes = DEFAULT_CHANNEL_BYTES,
  spin: SpinLimits | false = DEFAULT_SPIN
): HostChannel => {
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
  const nextPosted = (deadline: number | undefined, signal: CallSignal | undefined) =>
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
      const result: HostReply =
        onHostCall === undefined ? [0, "host function threw: no request in flight"] : onHostCall(message[1] as HostCall)
      writeHostResult(r, result, undefined)
      Atomics.store(r.header, 0, HOSTRESULT)
      Atomics.notify(r.header, 0)
      return
    }
    inbox.push(message[1])
    poke()
  }

  const ended = (deadline: number | undefined, signal: CallSignal | undefined): ChannelOutcome<never> | undefined => {
    if (lost !== undefined) return { kind: "lost", reason: lost }
    if (signal?.aborted) return { kind: "aborted" }
    if (deadline !== undefined && deadline - now() <= 0) return { kind: "timeout" }
    return undefined
  }

  const hostSpin = new HostSpin(spin === false ? 0 : spin.hostMaxMs, r.header)
  const wakeWait = new WakeWait(spin === false ? 0 : (spin.hostWakeMaxMs ?? HOST_WAKE_MAX_MS))
  /** Tells the worker the state word changed, waking it only when it sleeps: `true` when it had to. */
  const wakeWorker = (): boolean => {
    if (Atomics.load(r.header, WORKER_SLEEPS) === 0) return false
    Atomics.notify(r.header, 0)
    return true
  }

  const prefetchMax = spin === false || kind !== "shared" ? 0 : (spin.prefetchMaxMs ?? WORKER_PREFETCH_MAX_MS)
  const prefetchGate = new PrefetchGate()
  /** `prefetch` woke the worker for the next request, at `announcedAt` (`begin` then needs no notify). */
  let announced = false
  let announcedAt = 0
  const prefetch = (): void => {
    if (prefetchMax <= 0 || lost !== undefined) return
    const header = r.header
    // a request in flight (the worker is busy or about to be), or an awake worker: nothing to gain
    if (Atomics.load(header, 0) !== IDLE || Atomics.load(header, WORKER_SLEEPS) === 0 || !prefetchGate.open()) return
    Atomics.store(header, COMING, 1)
    announcedAt = now()
    // the worker was in its wait (woken: 1) — else the hint is lost and the request wakes it as usual
    announced = Atomics.notify(header, 0) > 0
  }
  /**
   * How the worker stands at a request after `prefetch` woke it (`begin`): still on its way (header word 6
   * raised: it reads the state word next, so it needs no second notify — a futex wake-up the host pays, ≈
   * 10–30 µs on a VM), spinning for it (`ANNOUNCED`), or asleep again (its spin ran out: notified now). The
   * hint paid off when the worker was spinning and the host was not held up meanwhile (`PrefetchGate`).
   */
  const announcedStand = (): WorkerStand => {
    announced = false
    const header = r.header
    if (Atomics.load(header, COMING) !== 0) {
      prefetchGate.missed()
      return WOKE
    }
    if (Atomics.load(header, WORKER_SLEEPS) === 0) {
      if (now() - announcedAt < prefetchMax / 2) prefetchGate.hit()
      else prefetchGate.missed()
      return ANNOUNCED
    }
    prefetchGate.missed()
    Atomics.notify(header, 0)
    return WOKE
  }

  /**
   * Waits for a worker whose runs are short synchronously for the `WakeWait`
   * budget: in `Atomics.wait` where this thread may block (the sleep word
   * raised, so the worker's answer wakes it directly — no wake-up through
   * the event loop), else — only right after waking a sleeping worker
   * (`WOKE`) — spinning; for a worker already spinning for this request
   * (`ANNOUNCED`: woken by `prefetch`) spinning on every platform, so its
   * reply costs the host no wake-up either. `true`: the state word changed.
   */
  const awaitShort = (state: number, stand: WorkerStand, deadline: number | undefined): boolean => {
    const block = canBlock() && stand !== ANNOUNCED
    if (!block && stand === AWAKE) return false
    const start = now()
    const budget = Math.min(wakeWait.budget(r.header), deadline === undefined ? Infinity : deadline - start)
    if (budget <= 0) return false
    let changed: boolean
    if (block) {
      Atomics.store(r.header, HOST_SLEEPS, 1)
      for (;;) {
        if (Atomics.load(r.header, 0) !== state) {
          changed = true
          break
        }
        const left = budget - (now() - start)
        if (left <= 0) {
          changed = false
          break
        }
        Atomics.wait(r.header, 0, state, left)
      }
      Atomics.store(r.header, HOST_SLEEPS, 0)
    } else {
      changed = spinWhile(r.header, state, budget, now)
    }
    if (changed) wakeWait.caught(now() - start)
    else wakeWait.missed()
    return changed
  }

  /**
   * The synchronous part of a shared request: runs host calls and takes the
   * reply while the worker answers within the spin budgets. Returns the
   * outcome, or the state word to sleep on (`POSTED`: the reply was posted).
   * `awake`: when this synchronous stretch began (-1: at the request's first host call); `stand`: the worker was
   * awake, asleep and has just been notified (`WOKE`), or woken by `prefetch` for this request (`ANNOUNCED`).
   */
  const drive = (
    handler: HostCallHandler,
    deadline: number | undefined,
    signal: CallSignal | undefined,
    awake: number,
    stand: WorkerStand
  ): ChannelOutcome<unknown> | number => {
    for (;;) {
      const state = Atomics.load(r.header, 0)
      if (state === HOSTCALL) {
        if (awake < 0) awake = now()
        writeHostResult(r, handler(readPayload(r) as unknown as HostCall), postResult)
        Atomics.store(r.header, 0, HOSTRESULT)
        stand = wakeWorker() ? WOKE : AWAKE
        continue
      }
      if (state === RESPONSE) {
        if (r.header[1] === VIA_MESSAGE) return POSTED
        const value = readPayload(r)
        Atomics.store(r.header, 0, IDLE)
        return { kind: "response", value }
      }
      // the worker has not answered yet: wait for it synchronously while that is cheap, then sleep
      const end = ended(deadline, signal)
      if (end !== undefined) return end
      // a guest calling host functions back to back must not hold the event loop: past
      // MAX_SYNC_MS without a sleep, the next wait sleeps (timers, I/O and other workers run);
      // a request's stretch starts at its first host call (`awake` < 0 until then: no clock read for a plain call)
      if (awake >= 0 && now() - awake > MAX_SYNC_MS) return state
      // an awake worker that answers fast: spin; then wait for it synchronously, blocked (`awaitShort`)
      const budget = stand !== AWAKE ? 0 : hostSpin.budget(r.header)
      if (budget > 0) {
        if (spinWhile(r.header, state, budget, now)) {
          hostSpin.hit()
          continue
        }
        hostSpin.missed()
      }
      if (!awaitShort(state, stand, deadline)) return state
      stand = AWAKE
    }
  }

  /** The asynchronous rest of a shared request that could not finish in `drive`. */
  const waitShared = async (
    handler: HostCallHandler,
    deadline: number | undefined,
    signal: CallSignal | undefined,
    first: number
  ): Promise<ChannelOutcome<unknown>> => {
    let state = first
    /** When the request last resumed from a sleep (or started): the start of its synchronous stretch. */
    let awake = now()
    for (;;) {
      hold(signal)
      if (state === POSTED) {
        while (inbox.length === 0) {
          const end = ended(deadline, signal)
          if (end !== undefined) return end
          await nextPosted(deadline, signal)
        }
        Atomics.store(r.header, 0, IDLE)
        return { kind: "response", value: inbox.shift() }
      }
      const end = ended(deadline, signal)
      if (end !== undefined) return end
      Atomics.store(r.header, HOST_SLEEPS, 1)
      const waited = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync(
        r.header,
        0,
        state,
        deadline === undefined ? Infinity : deadline - now()
      )
      if (waited.async) {
        await waited.value
        awake = now()
      }
      Atomics.store(r.header, HOST_SLEEPS, 0)
      const next = drive(handler, deadline, signal, awake, AWAKE)
      if (typeof next !== "number") return next
      state = next
    }
  }

  const waitMessage = async (
    deadline: number | undefined,
    signal: CallSignal | undefined
  ): Promise<ChannelOutcome<unknown>> => {
    hold(signal)
    try {
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

  // what the request in flight registered before its first sleep (one request at a time per channel)
  let sleeping: { readonly signal: CallSignal | undefined; readonly abort: () => void } | undefined
  const abort = () => {
    Atomics.notify(r.header, 0)
    poke()
  }
  /**
   * The request in flight is about to sleep (waitAsync, a posted message):
   * keep the process alive (`ChannelPort.hold`) and listen to its signal.
   * Replies caught synchronously never pay for either.
   */
  const hold = (signal: CallSignal | undefined) => {
    if (sleeping !== undefined) return
    sleeping = { signal, abort }
    port.hold?.(true)
    signal?.addEventListener("abort", abort)
  }
  const release = () => {
    const slept = sleeping
    if (slept !== undefined) {
      sleeping = undefined
      slept.signal?.removeEventListener("abort", slept.abort)
      port.hold?.(false)
    }
  }

  /** A request that went asynchronous: `wait` must be called once, at once. */
  const pending = (
    run: (signal: CallSignal | undefined) => Promise<ChannelOutcome<unknown>>
  ): PendingReply<unknown> => ({
    wait: async (signal) => {
      try {
        return await run(signal)
      } finally {
        release()
      }
    }
  })

  const begin = (
    message: Request,
    handler: HostCallHandler,
    deadline: number | undefined
  ): ChannelOutcome<unknown> | PendingReply<unknown> => {
    if (lost !== undefined) return { kind: "lost", reason: lost }
    if (kind === "message") {
      onHostCall = handler
      post(["req", message])
      return pending((signal) => waitMessage(deadline, signal))
    }
    send(r, post, "req", message)
    Atomics.store(r.header, 0, REQUEST)
    const stand = announced ? announcedStand() : wakeWorker() ? WOKE : AWAKE
    const first = drive(handler, deadline, undefined, -1, stand)
    if (typeof first !== "number") return first
    return pending((signal) => waitShared(handler, deadline, signal, first))
  }

  const request = (
    message: Request,
    handler: HostCallHandler,
    deadline: number | undefined,
    signal: CallSignal | undefined
  ): Promise<ChannelOutcome<unknown>> => {
    if (signal?.aborted) return Promise.resolve({ kind: "aborted" })
    const started = begin(message, handler, deadline)
    return "wait" in started ? started.wait(signal) : Promise.resolve(started)
  }

  return {
    kind,
    init: { kind, buffer, spin },
    onMessage,
    // the reply's type follows from the request's (`Protocol.ReplyTo`): the executor answers each request with it
    begin: begin as HostChannel["begin"],
    request: request as HostChannel["request"],
    prefetch,
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
  receive?: (() => unknown) | undefined,
  now: () => number = defaultNow()
): WorkerChannel => {
  const r = region(init.buffer)
  const header = r.header
  /** Budgets for waiting on the next request and on a host call's result. */
  const workerMax = init.spin === false ? 0 : (init.spin ?? DEFAULT_SPIN).workerMaxMs
  /** The spin for a request announced by `prefetch` (header word 6). */
  const prefetchMax = init.spin === false ? 0 : ((init.spin ?? DEFAULT_SPIN).prefetchMaxMs ?? WORKER_PREFETCH_MAX_MS)
  const requestSpin = new GapSpin(workerMax)
  const resultSpin = new GapSpin(workerMax)
  /** When the worker last picked up a request or a host result (ms). */
  let running = 0
  /** Records how long the worker ran before this answer (`WORKER_RAN_US`). */
  const ran = () => {
    Atomics.store(header, WORKER_RAN_US, Math.min(0x7fffffff, Math.round((now() - running) * 1000)))
  }

  /** Tells the host the state word changed, waking it only when it sleeps. */
  const wakeHost = () => {
    if (Atomics.load(header, HOST_SLEEPS) !== 0) Atomics.notify(header, 0)
  }
  /** Counts requests taken while the host's spins missed (`HOST_SPINS` 0): every `PROBE_EVERY`th, the worker spins anyway. */
  let probe = 0

  /** Sleeps in `Atomics.wait` until `done(state)`, with the sleep word raised. */
  const sleep = (done: (state: number) => boolean) => {
    Atomics.store(header, WORKER_SLEEPS, 1)
    // loop on the value read, not on the wake-up: the state may change between a load and the wait
    for (let state = Atomics.load(header, 0); !done(state); state = Atomics.load(header, 0)) {
      Atomics.wait(header, 0, state)
    }
    Atomics.store(header, WORKER_SLEEPS, 0)
  }
  /**
   * Sleeps until a request arrives (`sleep`), except that a wake-up by
   * `prefetch` (header word 6 raised) turns into a spin, awake, for the
   * announced request — at most `prefetchMax` ms, then asleep again.
   */
  const sleepForRequest = () => {
    Atomics.store(header, WORKER_SLEEPS, 1)
    for (let state = Atomics.load(header, 0); state !== REQUEST; state = Atomics.load(header, 0)) {
      if (Atomics.load(header, COMING) !== 0) {
        Atomics.store(header, COMING, 0)
        Atomics.store(header, WORKER_SLEEPS, 0)
        if (spinUntil(header, REQUEST, prefetchMax, now)) return
        // the request did not come within the budget: sleep again (the state is read again after the sleep word)
        Atomics.store(header, WORKER_SLEEPS, 1)
        continue
      }
      Atomics.wait(header, 0, state)
    }
    Atomics.store(header, WORKER_SLEEPS, 0)
  }
  const notHostCall = (state: number) => state !== HOSTCALL

  const respondShared = (value: Reply) => {
    send(r, post, "res", value)
    ran()
    Atomics.store(header, 0, RESPONSE)
    wakeHost()
  }

  /** Serves requests — spinning, then blocked in `Atomics.wait` between them — until one arrives as a message. */
  const loop = () => {
    for (;;) {
      const since = now()
      // spin only while the host's spins catch replies (or to probe): when they miss, the cores are
      // busy and a spinning worker only takes CPU time from the host; both sides then sleep
      const budget =
        Atomics.load(header, HOST_SPINS) !== 0 || (++probe & (PROBE_EVERY - 1)) === 0 ? requestSpin.budget : 0
      if (!spinUntil(header, REQUEST, budget, now)) sleepForRequest()
      running = now()
      // a hint whose notify came before the worker's wait (it slept through it) is spent with this request
      Atomics.store(header, COMING, 0)
      requestSpin.observed(running - since)
      if (header[1] === VIA_MESSAGE) return // the posted request is waiting in the event loop
      respondShared(handler(readPayload(r) as unknown as Request<W>))
    }
  }

  return {
    serve: () => {
      if (init.kind === "shared") loop()
    },
    onMessage: (message) => {
      if (message[0] !== "req") return
      running = now()
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
        send(
          r,
          () => {
            throw new Overflow()
          },
          "req",
          call
        )
        ran()
        Atomics.store(header, 0, HOSTCALL)
        wakeHost()
        const since = now()
        if (!spinWhile(header, HOSTCALL, resultSpin.budget, now)) sleep(notHostCall)
        running = now()
        resultSpin.observed(running - since)
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
