/**
 * The pool of workers behind a worker engine, and the bookkeeping that lets
 * it survive the loss of a worker. Workers come from the platform's
 * `WorkerHost`; in the browser's in-page mode the pool has one slot and no
 * worker: requests run synchronously on an in-thread executor.
 *
 * - `size` slots — the resource pool's `maxThreads` (one setting: the engine
 *   never runs more workers than that); a slot starts its worker lazily, on
 *   the first agent assigned to it. A new agent goes to the slot with the
 *   fewest live agents (ties: the lowest index — round-robin while the load
 *   is even).
 * - A worker runs one request at a time, so each slot has a FIFO queue; the
 *   agents of one worker share it, agents of different workers run in
 *   parallel. A request's deadline starts when it leaves the queue, and on a
 *   fresh worker once the worker has started (`BOOT_TIMEOUT_MS`).
 * - When a request runs past its deadline (or its caller is interrupted), the
 *   slot terminates the worker; the caller gets its outcome at once and that
 *   agent is left terminated. Before the slot's next request, the *other*
 *   agents of the slot are brought back on a fresh worker: re-instantiated
 *   (start function included), then — when the engine kept a state for them
 *   — restored from it. Their queued calls just wait. The same happens when
 *   a worker dies on its own (`WorkerEvents.onDeath`): the request in flight
 *   fails with `lost` and its agent is terminated, since it may be the cause.
 *   An agent that cannot be brought back (its start function times out or
 *   traps this time) is marked lost; its later calls fail with a reason.
 *   Each round of recovery removes at least one agent or ends, so it
 *   terminates.
 * - Recovery state: per agent, the engine state after its last completed
 *   call, kept as changed-page diffs from the executor (`Tracking`).
 *
 * Host functions run here, on the host thread, when a worker proxies a
 * guest's call to them (`CallChannel.ts`). Their results follow the
 * WebAssembly JS API: the value crosses as it is (an object as its
 * primitive value, an array copied, never modified) and the worker's engine
 * converts it as it would in-process (`ToWebAssemblyValue`: a void import's
 * value is ignored, `true` → 1, `"2.5"` → 2.5 for an f64, a bigint for an
 * f64 → `Trap`).
 *
 * @since 0.2.0
 */
import {
  CallAbort,
  type CallSignal,
  type ChannelKind,
  type ChannelMessage,
  type ChannelOutcome,
  DEFAULT_SPIN,
  type HostChannel,
  openHost,
  type PendingReply,
  type SpinLimits
} from "./CallChannel.js"
import type { Wire } from "./Codec.js"
import { callErrorReason } from "./Instance.js"
import {
  type ErrorWire,
  type HostCall,
  type HostReply,
  type InstantiateRequest,
  Op,
  type OutputWire,
  type Reply,
  type ReplyTo,
  type Request,
  type StateWire
} from "./Protocol.js"
import * as WorkerExecutor from "./WorkerExecutor.js"
import type { WorkerHandle, WorkerHost } from "./WorkerHost.js"

/** Settings of a pool. `W` is the platform's WASI setup. */
export interface PoolOptions<W> {
  /** Number of slots (workers), at least 1. */
  readonly size: number
  /** `"inPage"`: no workers, one slot running `inPage` on the host thread. */
  readonly transport: ChannelKind | "inPage"
  /** Payload region of each channel, in bytes. */
  readonly channelBytes: number
  /** Spin caps of the shared channels (`CallChannel.SpinLimits`; `false`: every wait sleeps); default `DEFAULT_SPIN`. */
  readonly spin?: SpinLimits | false | undefined
  /** Starts workers, tells time. */
  readonly host: WorkerHost
  /** The executor's platform for in-page mode. */
  readonly inPage?: WorkerExecutor.ExecutorPlatform<W> | undefined
}

/** The host side of one instance's WASI (from the engine's `WasiHost`). */
export interface WasiHandle {
  /** What a reply carried: output written during the request, the exit code. */
  readonly onOutput: (output: OutputWire) => void
  /** Called once the instance's worker no longer runs it (its files may be closed). Idempotent. */
  readonly release: () => void
}

/** A host function as the pool calls it. */
export type HostFn = (...args: Array<any>) => unknown

/** The engine state the host keeps for recovery: pages by index, globals by name. */
export interface KeptState {
  memoryBytes: number
  readonly pages: Map<number, Uint8Array>
  readonly globals: Map<string, number | bigint>
}

/** One agent instance as the host sees it. */
export interface AgentRecord<W = unknown> {
  readonly id: number
  readonly agentId: string
  /** Its instantiate request (sent again to bring it back on a fresh worker). */
  readonly instantiate: InstantiateRequest<W>
  readonly hostFunctions: ReadonlyArray<HostFn>
  /** Its WASI, when the module imports it. */
  readonly wasi: WasiHandle | undefined
  readonly instantiateTimeoutMs: number | undefined
  readonly slot: WorkerSlot<W>
  status: "live" | "terminated" | "lost"
  /** Why the agent is no longer live. */
  reason: string
  /** Linear memory size after the last request, in bytes. */
  memoryBytes: number
  /** State after the last completed call, when tracked. */
  kept: KeptState | undefined
}

/** What a request ended with, for the engine to map to typed errors; `V` is the request's success value. */
export type OpResult<V = unknown> =
  | { readonly kind: "ok"; readonly value: V; readonly memoryBytes: number; readonly fuelRemaining: number | null }
  | { readonly kind: "error"; readonly error: ErrorWire; readonly memoryBytes: number }
  | { readonly kind: "timeout" }
  | { readonly kind: "lost"; readonly reason: string }
  | { readonly kind: "gone"; readonly reason: string }
  | { readonly kind: "interrupted" }

/** A request that could not finish synchronously (`WorkerSlot.begin`): it runs on; `wait` follows it. */
export interface PendingCall<V = unknown> {
  /** Its result; `signal` aborting interrupts it (its worker is terminated, as for `call`). Call it at most once. */
  readonly wait: (signal: CallSignal | undefined) => Promise<OpResult<V>>
}

/** A snapshot of the pool for tests and dashboards. */
export interface PoolStats {
  readonly workers: ReadonlyArray<{
    readonly slot: number
    /** The worker's thread id where the platform has one (Node). */
    readonly threadId: number | undefined
    /** A worker is started. */
    readonly running: boolean
    readonly agents: number
    readonly queued: number
    readonly replaced: number
  }>
}

/** The success value in a reply to `R`. */
type ValueTo<R> = ReplyTo<R> extends Reply<infer V> ? V : never

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/**
 * How long a fresh worker may take to answer its first request (`Op.Ping`),
 * ms. Its start-up (thread, script, channel) is charged to this bound, not
 * to the deadline of the request that started it, so an agent's start
 * function gets its whole `timeoutMs`. 30 s: in a browser the worker's
 * script is fetched (and, from a dev server, transformed) first — 10 s was
 * exceeded by the first workers of a Chromium page on a loaded 2-core
 * machine, which then failed every spawn waiting for them.
 */
export const BOOT_TIMEOUT_MS = 30_000

/** Applies an executor's diff to the kept state (`false`: tracking stopped, the state is dropped). */
const applyDiff = (record: AgentRecord<any>, diff: StateWire | null | false): void => {
  if (diff === null) return
  if (diff === false) {
    record.kept = undefined
    return
  }
  const [bytes, indexes, data, names, values] = diff
  const kept = (record.kept ??= { memoryBytes: 0, pages: new Map(), globals: new Map() })
  kept.memoryBytes = bytes
  for (let i = 0; i < indexes.length; i++) {
    const page = data[i]
    if (page) kept.pages.set(indexes[i]!, page)
    else kept.pages.delete(indexes[i]!)
  }
  for (let i = 0; i < names.length; i++) kept.globals.set(names[i]!, values[i]!)
}

/** `ToPrimitive(value, number)` (ECMAScript §7.1.1): what `ToNumber` / `ToBigInt` would convert an object through. */
const toPrimitive = (value: object): unknown => {
  const o = value as Record<PropertyKey, unknown>
  const exotic = o[Symbol.toPrimitive]
  if (typeof exotic === "function") return exotic.call(value, "number")
  for (const method of ["valueOf", "toString"]) {
    const f = o[method]
    if (typeof f !== "function") continue
    const r: unknown = f.call(value)
    if (r === null || (typeof r !== "object" && typeof r !== "function")) return r
  }
  throw new TypeError("Cannot convert object to primitive value")
}

/**
 * A host function's return value as it crosses to the worker, where the
 * guest's engine converts it (`ToWebAssemblyValue`): primitives as they are,
 * an array (multi-value, or a one-result value read through `ToPrimitive`)
 * copied element by element — the host's own array is never modified —, any
 * other object as its primitive value. A symbol throws (`TypeError` at the
 * boundary, as `ToNumber` would).
 */
const crossable = (value: unknown): Wire => {
  switch (typeof value) {
    case "undefined":
    case "number":
    case "bigint":
    case "string":
    case "boolean":
      return value
    case "symbol":
      throw new TypeError("a host function returned a symbol")
    default:
      if (value === null) return null
      if (value instanceof Uint8Array) return value
      return Array.isArray(value) ? value.map(crossable) : crossable(toPrimitive(value as object))
  }
}

/** Tells a record's WASI its worker no longer runs it. */
const release = (record: AgentRecord<any>): void => record.wasi?.release()

/** The kept state as a restore request's payload. */
const keptToWire = (kept: KeptState): StateWire => {
  const indexes = [...kept.pages.keys()].sort((a, b) => a - b)
  return [
    kept.memoryBytes,
    indexes,
    indexes.map((i) => kept.pages.get(i)!),
    [...kept.globals.keys()],
    [...kept.globals.values()]
  ]
}

/** One worker of the pool (or the host thread itself in in-page mode), replaced when it is lost. */
export class WorkerSlot<W = unknown> {
  worker: WorkerHandle | undefined
  private channel: HostChannel | undefined
  private executor: WorkerExecutor.Executor<W> | undefined
  readonly agents = new Map<number, AgentRecord<W>>()
  private tail: Promise<unknown> = Promise.resolve()
  private recovering: Promise<void> | undefined
  private inflight = false
  /** A request `begin` left running asynchronously while tasks queued during its send wait for it (see `begin`). */
  private beginning: Promise<unknown> | undefined
  /** Requests queued or running (the queue's and `begin`'s): `begin` takes its fast path only at 0. */
  private busy = 0
  queued = 0
  replaced = 0

  constructor(
    readonly index: number,
    private readonly pool: WorkerPool<W>
  ) {}

  /** Runs `task` after every earlier task of this slot and any pending recovery. */
  enqueue<A>(task: () => Promise<A>): Promise<A> {
    this.queued++
    this.busy++
    const run = async (): Promise<A> => {
      for (;;) {
        const before = this.recovering ?? this.beginning
        if (before === undefined) break
        await before.then(undefined, () => undefined)
      }
      this.queued--
      return task()
    }
    const result = this.tail.then(run, run)
    const done = () => {
      this.busy--
    }
    this.tail = result.then(done, done)
    return result
  }

  private spawn(): { worker: WorkerHandle; channel: HostChannel } {
    const { host, transport, channelBytes } = this.pool.options
    let channel: HostChannel | undefined
    const worker = host.start({
      onMessage: (m) => channel?.onMessage(m as ChannelMessage),
      onDeath: (reason) => this.onDeath(worker, reason)
    })
    channel = openHost(
      transport as ChannelKind,
      {
        post: worker.post,
        now: host.now,
        setTimer: host.setTimer,
        syncReceive: host.syncReceive,
        hold: worker.hold // only while a request sleeps: a reply caught spinning costs no ref/unref
      },
      channelBytes,
      this.pool.options.spin ?? DEFAULT_SPIN
    )
    worker.post(["init", channel.init])
    this.worker = worker
    this.channel = channel
    return { worker, channel }
  }

  /** The worker died without being asked to: wake its request, or recover its agents if it was idle. */
  private onDeath(worker: WorkerHandle, reason: string): void {
    if (worker !== this.worker) return
    void this.discard(reason)
    if (!this.inflight && !this.pool.closed && this.agents.size > 0 && this.recovering === undefined) {
      this.startRecovery(reason)
    }
  }

  /**
   * Forgets the current worker (terminating it) and fails its pending request.
   * Resolves once the thread is gone, so files it held can be closed safely.
   */
  private discard(reason: string): Promise<unknown> {
    const worker = this.worker
    const channel = this.channel
    this.worker = undefined
    this.channel = undefined
    channel?.fail(reason)
    if (worker === undefined) return Promise.resolve()
    this.replaced++
    return worker.terminate().catch(() => undefined)
  }

  /**
   * Sends one request to the worker (spawning it if needed) and waits for its
   * outcome. Never rejects: a worker that cannot start, or a channel failure,
   * is a `lost` outcome.
   */
  async exec<R extends Request<W>>(
    request: R,
    timeoutMs: number | undefined,
    signal: CallSignal | undefined
  ): Promise<ChannelOutcome<ReplyTo<R>>> {
    const options = this.pool.options
    if (options.transport === "inPage") {
      this.executor ??= this.pool.inPageExecutor()
      try {
        return { kind: "response", value: this.executor(request) as ReplyTo<R> }
      } catch (e) {
        return { kind: "lost", reason: `executor failure: ${message(e)}` }
      }
    }
    let worker: WorkerHandle
    let channel: HostChannel
    const fresh = this.worker === undefined || this.channel === undefined
    try {
      ;({ channel, worker } = fresh ? this.spawn() : { channel: this.channel!, worker: this.worker! })
    } catch (e) {
      return { kind: "lost", reason: `cannot start a worker: ${message(e)}` }
    }
    if (fresh) {
      // the worker's start-up is not the request's: its deadline starts once the worker answers
      const booted = await this.send(worker, channel, [Op.Ping], options.host.now() + BOOT_TIMEOUT_MS, signal)
      if (booted.kind === "timeout")
        return { kind: "lost", reason: `the worker did not start within ${BOOT_TIMEOUT_MS} ms` }
      if (booted.kind !== "response") return booted
    }
    return this.send(
      worker,
      channel,
      request,
      timeoutMs === undefined ? undefined : options.host.now() + timeoutMs,
      signal
    )
  }

  /** Sends one request on the worker's channel and waits for its outcome (never rejects). */
  private async send<R extends Request<W>>(
    worker: WorkerHandle,
    channel: HostChannel,
    request: R,
    deadline: number | undefined,
    signal: CallSignal | undefined
  ): Promise<ChannelOutcome<ReplyTo<R>>> {
    this.inflight = true
    try {
      return await channel.request(request, this.pool.onHostCall, deadline, signal)
    } catch (e) {
      return { kind: "lost", reason: `call channel failure: ${message(e)}` }
    } finally {
      this.inflight = false
    }
  }

  /**
   * Runs one request for `record` under the queue. A timeout, an interruption
   * or the loss of the worker terminates `record` and schedules the recovery
   * of the slot's other agents.
   */
  call<R extends Request<W>>(
    record: AgentRecord<W>,
    request: R,
    timeoutMs: number | undefined,
    signal: CallSignal | undefined
  ): Promise<OpResult<ValueTo<R>>> {
    let started = false
    const result = this.enqueue(async (): Promise<OpResult<ValueTo<R>>> => {
      started = true
      if (signal?.aborted) return { kind: "interrupted" }
      if (record.status !== "live") return { kind: "gone", reason: record.reason }
      return this.settle(record, await this.exec(request, timeoutMs, signal), timeoutMs)
    })
    if (signal === undefined) return result
    // aborted while still queued: it is over now (it will not run), not once the requests before it are
    return new Promise((resolve, reject) => {
      result.then(resolve, reject)
      signal.addEventListener("abort", () => started || resolve({ kind: "interrupted" }), { once: true })
    })
  }

  /**
   * `call` without the queue's promises when nothing else is queued or
   * running on this slot and its worker is up: sends the request now and
   * returns its result when the worker answers within the channel's spin
   * budgets (`HostChannel.begin`); otherwise — or when the slot is busy — a
   * `PendingCall` (the request goes on in the background; later requests
   * queue behind it).
   */
  begin<R extends Request<W>>(
    record: AgentRecord<W>,
    request: R,
    timeoutMs: number | undefined
  ): OpResult<ValueTo<R>> | PendingCall<ValueTo<R>> {
    const channel = this.channel
    if (
      this.busy !== 0 ||
      // a request of this slot is being sent synchronously right now (a host function called back into the
      // runtime while the guest waits for it): queue behind it, never enter the channel twice
      this.inflight ||
      this.recovering !== undefined ||
      channel === undefined ||
      this.worker === undefined ||
      record.status !== "live"
    ) {
      return { wait: (signal) => this.call(record, request, timeoutMs, signal) }
    }
    const deadline = timeoutMs === undefined ? undefined : this.pool.options.host.now() + timeoutMs
    this.inflight = true
    this.busy++ // the slot is taken from now: a host function calling back into the runtime queues behind this
    const tailBefore = this.tail
    let started: ChannelOutcome<ReplyTo<R>> | PendingReply<ReplyTo<R>>
    try {
      started = channel.begin(request, this.pool.onHostCall, deadline)
    } catch (e) {
      started = { kind: "lost", reason: `call channel failure: ${message(e)}` }
    }
    if (!("wait" in started)) {
      this.inflight = false
      this.busy--
      return this.settle(record, started, timeoutMs) // tasks queued meanwhile run after this step: it is over
    }
    // asynchronous from here: it runs on whether or not anyone waits; the slot is busy until it settles
    const controller = new CallAbort()
    const pending = started
    const result = (async (): Promise<OpResult<ValueTo<R>>> => {
      let outcome: ChannelOutcome<ReplyTo<R>>
      try {
        outcome = await pending.wait(controller)
      } catch (e) {
        outcome = { kind: "lost", reason: `call channel failure: ${message(e)}` }
      }
      this.inflight = false
      return this.settle(record, outcome, timeoutMs)
    })()
    const done = () => {
      if (this.beginning === result) this.beginning = undefined
      this.busy--
    }
    const finished = result.then(done, done)
    if (this.tail === tailBefore) this.tail = finished
    else {
      // tasks were queued while the request was being sent (a host function called back into the runtime): they
      // were chained to the queue before it was known this request would not settle at once — they wait for it
      // (`enqueue`), and later tasks wait for both
      this.beginning = result
      this.tail = Promise.all([this.tail, finished])
    }
    return {
      wait: (signal) => {
        if (signal !== undefined) {
          if (signal.aborted) controller.abort()
          else signal.addEventListener("abort", () => controller.abort(), { once: true })
        }
        return result
      }
    }
  }

  /**
   * A request of this slot is coming soon (`WasmInstance.prefetch`): when
   * nothing is queued or running here and no recovery is pending, the
   * channel wakes its sleeping worker now (`HostChannel.prefetch`).
   */
  prefetch(): void {
    if (this.busy === 0 && this.recovering === undefined) this.channel?.prefetch()
  }

  /** What a request's channel outcome means for `record`: its result, or the end of its worker. */
  private settle<V>(
    record: AgentRecord<W>,
    outcome: ChannelOutcome<unknown>,
    timeoutMs: number | undefined
  ): OpResult<V> {
    if (outcome.kind === "response") return this.pool.applyResponse(record, outcome.value as Reply<V>)
    const reason =
      outcome.kind === "timeout"
        ? `timed out after ${timeoutMs} ms; its worker was terminated`
        : outcome.kind === "aborted"
          ? "the call was interrupted; its worker was terminated"
          : `the worker running it was lost (${outcome.reason})`
    this.pool.retire(record, "terminated", reason)
    void this.discard(reason).then(() => release(record))
    if (this.agents.size > 0) this.startRecovery(reason)
    return outcome.kind === "timeout"
      ? { kind: "timeout" }
      : outcome.kind === "aborted"
        ? { kind: "interrupted" }
        : { kind: "lost", reason: outcome.reason }
  }

  private startRecovery(reason: string): void {
    const recovery = this.recover(reason).finally(() => {
      if (this.recovering === recovery) this.recovering = undefined
    })
    this.recovering = recovery
  }

  /** Brings the slot's live agents back on a fresh worker. */
  private async recover(reason: string): Promise<void> {
    void this.discard(reason)
    while (!this.pool.closed) {
      let workerLost = false
      for (const record of [...this.agents.values()]) {
        if (record.status !== "live") continue
        const failure = await this.reinstantiate(record)
        if (failure === undefined) continue
        this.pool.retire(record, "lost", `${reason}; it could not be recovered: ${failure.reason}`)
        if (failure.workerLost) {
          workerLost = true
          void this.discard(reason).then(() => release(record))
          break
        }
        release(record)
      }
      if (!workerLost) return
    }
  }

  /** Re-instantiates `record` on the current worker and restores its kept state. */
  private async reinstantiate(
    record: AgentRecord<W>
  ): Promise<{ readonly reason: string; readonly workerLost: boolean } | undefined> {
    const saved = record.kept === undefined ? undefined : keptToWire(record.kept)
    const steps: Array<readonly [Request<W>, number | undefined]> = [[record.instantiate, record.instantiateTimeoutMs]]
    if (saved !== undefined) steps.push([[Op.Restore, record.id, saved], undefined])
    for (const [request, timeoutMs] of steps) {
      const outcome = await this.exec(request, timeoutMs, undefined)
      if (outcome.kind !== "response") {
        return { reason: outcome.kind === "lost" ? outcome.reason : outcome.kind, workerLost: true }
      }
      const result = this.pool.applyResponse(record, outcome.value)
      if (result.kind === "error") return { reason: result.error.join(": "), workerLost: false }
    }
    return undefined
  }

  /** Fault injection: makes the worker throw an uncaught error (tests of crash recovery). */
  crash(): Promise<void> {
    return this.enqueue(async () => {
      if (this.worker === undefined) return
      const outcome = await this.exec([Op.Crash], undefined, undefined)
      if (outcome.kind === "lost" && this.agents.size > 0 && !this.pool.closed) this.startRecovery(outcome.reason)
    })
  }

  /** Terminates the worker for good (engine shutdown); resolves once its thread has exited. */
  async close(): Promise<void> {
    const worker = this.worker
    const channel = this.channel
    this.worker = undefined
    this.channel = undefined
    channel?.fail("the engine was shut down")
    if (worker !== undefined) await worker.terminate()
  }
}

/** The pool: slots, agent records, host calls. */
export class WorkerPool<W = unknown> {
  readonly slots: ReadonlyArray<WorkerSlot<W>>
  readonly records = new Map<number, AgentRecord<W>>()
  closed = false
  private nextId = 1

  constructor(readonly options: PoolOptions<W>) {
    const size = options.transport === "inPage" ? 1 : Math.max(1, Math.floor(options.size))
    this.slots = Array.from({ length: size }, (_, i) => new WorkerSlot<W>(i, this))
  }

  /** The least-loaded slot (ties: lowest index). */
  assign(): WorkerSlot<W> {
    let best = this.slots[0]!
    for (const slot of this.slots) if (slot.agents.size < best.agents.size) best = slot
    return best
  }

  /** A fresh engine-wide instance number. */
  nextRecordId(): number {
    return this.nextId++
  }

  /** Registers a record with its slot (before its instantiate request, so its host calls resolve). */
  register(record: AgentRecord<W>): void {
    this.records.set(record.id, record)
    record.slot.agents.set(record.id, record)
  }

  /** Ends a record: it leaves its slot and is never recovered. */
  retire(record: AgentRecord<W>, status: "terminated" | "lost", reason: string): void {
    if (record.status !== "live") return
    record.status = status
    record.reason = reason
    record.slot.agents.delete(record.id)
    this.records.delete(record.id)
  }

  /** Drops a record's instance in its executor (queued; not awaited by callers). */
  drop(record: AgentRecord<W>, reason: string): void {
    if (record.status !== "live") return
    this.retire(record, "terminated", reason)
    void record.slot
      .enqueue(async () => {
        if (record.slot.worker !== undefined || this.options.transport === "inPage") {
          await record.slot.exec([Op.Drop, record.id], undefined, undefined)
        }
      })
      .finally(() => release(record))
  }

  /** The in-page executor, made on first use (`inPageExecutor`). */
  private inPage: WorkerExecutor.InPageExecutor<W> | undefined

  /**
   * The executor of in-page mode — one per pool, made on first use, so the
   * slot's requests and the engine's direct calls (`InPageExecutor.instance`)
   * reach the same instances: host functions are called directly, their
   * exceptions mapped as in a worker.
   */
  inPageExecutor(): WorkerExecutor.InPageExecutor<W> {
    if (this.inPage !== undefined) return this.inPage
    const platform = this.options.inPage
    if (platform === undefined) throw new Error("in-page mode needs an executor platform")
    return (this.inPage = WorkerExecutor.make<W>({
      platform,
      hostFunction:
        (id, index) =>
        (...args: Array<unknown>): unknown => {
          const fn = this.records.get(id)?.hostFunctions[index]
          if (fn === undefined)
            throw new WorkerExecutor.HostCallError("host function threw: the agent is no longer live")
          try {
            return fn(...args)
          } catch (e) {
            throw new WorkerExecutor.HostCallError(callErrorReason(e))
          }
        }
    }))
  }

  /** Runs a host import for a worker (see `CallChannel.HostCallHandler`). Never throws. */
  readonly onHostCall = (call: HostCall): HostReply => {
    const [id, index, args] = call
    const fn = this.records.get(id)?.hostFunctions[index]
    if (fn === undefined) return [0, "host function threw: the agent is no longer live"]
    let result: unknown
    try {
      result = fn(...args)
    } catch (e) {
      return [0, callErrorReason(e)]
    }
    try {
      return [1, crossable(result)]
    } catch (e) {
      return [0, `type error at the JS boundary: ${message(e)}`]
    }
  }

  /** Reads a reply into an `OpResult`, updating the record's memory size, kept state and WASI output. */
  applyResponse<V>(record: AgentRecord<W>, reply: Reply<V>): OpResult<V> {
    record.memoryBytes = reply[2]
    if (reply[0] === 1) {
      applyDiff(record, reply[4])
      record.wasi?.onOutput(reply[5])
      return { kind: "ok", value: reply[1], memoryBytes: reply[2], fuelRemaining: reply[3] }
    }
    applyDiff(record, reply[3])
    record.wasi?.onOutput(reply[4])
    return { kind: "error", error: reply[1], memoryBytes: reply[2] }
  }

  /** Counts per worker. */
  stats(): PoolStats {
    return {
      workers: this.slots.map((s) => ({
        slot: s.index,
        threadId: s.worker?.threadId,
        running: s.worker !== undefined,
        agents: s.agents.size,
        queued: s.queued,
        replaced: s.replaced
      }))
    }
  }

  /** Terminates every worker; later requests end with `lost`. Resolves once every thread has exited. */
  async close(): Promise<void> {
    this.closed = true
    const records = [...this.records.values()]
    for (const record of records) this.retire(record, "terminated", "the engine was shut down")
    await Promise.all(this.slots.map((s) => s.close()))
    for (const record of records) release(record)
  }
}
