/**
 * The pool of module Web Workers behind the browser engine, and the
 * bookkeeping that lets it survive the loss of a worker. Also runs agents
 * in-page (no workers) when the page is not cross-origin isolated.
 *
 * - `size` slots (default `navigator.hardwareConcurrency`, at most 8); a slot
 *   starts its worker lazily. A new agent goes to the slot with the fewest
 *   live agents (ties: lowest index).
 * - A worker runs one request at a time: each slot has a FIFO queue; agents
 *   of different workers run in parallel. A request's deadline starts when it
 *   leaves the queue.
 * - A request past its deadline (or whose caller was interrupted) gets its
 *   outcome at once — the page never waits for the guest — and the slot
 *   terminates the worker (`worker.terminate()`). Chromium may let a
 *   terminated worker's WebAssembly loop run for about 2 s more; that only
 *   costs a CPU core, never the page, and calls with fuel stop exactly
 *   (`agent-runtime:fuel`). The agent is left terminated. Before the slot's
 *   next request, the *other* agents of the slot are brought back on a fresh
 *   worker: re-instantiated, then restored from the state kept after their
 *   last completed call (`RecoveryPolicy` in `BrowserEngine.ts`). A worker
 *   that dies on its own (`error` event: an uncaught exception, a script that
 *   failed to load) is handled the same way; its request in flight fails
 *   with `lost`.
 * - In-page mode: one slot, no worker; requests run synchronously on the
 *   page's executor. Nothing can preempt them (fuel still stops runaways).
 *
 * Host functions run here, on the page, when a worker proxies a guest's call
 * (`CallChannel.ts`).
 *
 * @since 0.1.0
 */
import { type ChannelKind, type ChannelMessage, type ChannelOutcome, openPage, type PageChannel } from "./CallChannel.js"
import type { Wire } from "./internal/Codec.js"
import { callErrorReason, type Executor, HostCallError, makeExecutor } from "./internal/Executor.js"
import {
  type ErrorWire,
  type ImportSpec,
  OP_CRASH,
  OP_DROP,
  OP_INSTANTIATE,
  OP_RESTORE,
  type OutputWire,
  type Response,
  type StateWire,
  type Tracking,
  type WasiSpec
} from "./internal/Protocol.js"

/** The structural part of a `Worker` the pool uses. */
export interface WorkerLike {
  postMessage(message: unknown, transfer?: Array<unknown>): void
  terminate(): void
  onmessage: ((event: { readonly data: unknown }) => void) | null
  onerror: ((event: { readonly message?: string; preventDefault?: () => void }) => void) | null
  onmessageerror: ((event: unknown) => void) | null
}

/** Settings of a pool. */
export interface PoolOptions {
  readonly size: number
  /** `"inPage"`: no workers, the page's own executor. */
  readonly transport: ChannelKind | "inPage"
  readonly channelBytes: number
  /** Starts one worker running `BrowserWorker`. */
  readonly createWorker: () => WorkerLike
  readonly fuelExport: string
  /** WASI output of a request, per record. */
  readonly onOutput: (record: AgentRecord, output: OutputWire) => void
}

/** A host function as the pool calls it. */
export type HostFn = (...args: Array<any>) => unknown

/** The engine state kept for recovery: pages by index, globals by name. */
export interface KeptState {
  memoryBytes: number
  readonly pages: Map<number, Uint8Array>
  readonly globals: Map<string, number | bigint>
}

/** One agent instance as the page sees it. */
export interface AgentRecord {
  readonly id: number
  readonly agentId: string
  readonly module: WebAssembly.Module
  readonly imports: ReadonlyArray<ImportSpec>
  readonly hostFunctions: ReadonlyArray<HostFn>
  readonly wasi: WasiSpec | null
  readonly instantiateTimeoutMs: number | undefined
  readonly tracking: Tracking
  readonly slot: WorkerSlot
  status: "live" | "terminated" | "lost"
  reason: string
  memoryBytes: number
  kept: KeptState | undefined
}

/** What a request ended with. */
export type OpResult =
  | { readonly kind: "ok"; readonly value: unknown; readonly memoryBytes: number; readonly fuelRemaining: number | null }
  | { readonly kind: "error"; readonly error: ErrorWire; readonly memoryBytes: number }
  | { readonly kind: "timeout" }
  | { readonly kind: "lost"; readonly reason: string }
  | { readonly kind: "gone"; readonly reason: string }
  | { readonly kind: "interrupted" }

/** A snapshot of the pool for tests and dashboards. */
export interface PoolStats {
  readonly workers: ReadonlyArray<{
    readonly slot: number
    readonly running: boolean
    readonly agents: number
    readonly queued: number
    readonly replaced: number
  }>
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

const applyDiff = (record: AgentRecord, diff: StateWire | null | false): void => {
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

const keptToWire = (kept: KeptState): StateWire => {
  const indexes = [...kept.pages.keys()].sort((a, b) => a - b)
  return [kept.memoryBytes, indexes, indexes.map((i) => kept.pages.get(i)!), [...kept.globals.keys()], [
    ...kept.globals.values()
  ]]
}

/** One worker of the pool (or the page itself in in-page mode), replaced when it is lost. */
export class WorkerSlot {
  worker: WorkerLike | undefined
  private channel: PageChannel | undefined
  private executor: Executor | undefined
  readonly agents = new Map<number, AgentRecord>()
  private tail: Promise<unknown> = Promise.resolve()
  private recovering: Promise<void> | undefined
  private inflight = false
  queued = 0
  replaced = 0

  constructor(readonly index: number, private readonly pool: WorkerPool) {}

  /** Runs `task` after every earlier task of this slot and any pending recovery. */
  enqueue<A>(task: () => Promise<A>): Promise<A> {
    this.queued++
    const run = async (): Promise<A> => {
      while (this.recovering !== undefined) await this.recovering
      this.queued--
      return task()
    }
    const result = this.tail.then(run, run)
    this.tail = result.catch(() => undefined)
    return result
  }

  private spawn(): { worker: WorkerLike; channel: PageChannel } {
    const options = this.pool.options
    const worker = options.createWorker()
    const channel = openPage(options.transport as ChannelKind, (m) => worker.postMessage(m), options.channelBytes)
    worker.onmessage = (event) => channel.onMessage(event.data as ChannelMessage)
    worker.onerror = (event) => {
      event.preventDefault?.()
      this.onDeath(worker, `worker error: ${event.message ?? "the worker script failed"}`)
    }
    worker.onmessageerror = () => this.onDeath(worker, "worker message could not be deserialized")
    worker.postMessage(["init", channel.init, options.fuelExport])
    this.worker = worker
    this.channel = channel
    return { worker, channel }
  }

  /** The worker died without being asked to: wake its request, or recover its agents if it was idle. */
  private onDeath(worker: WorkerLike, reason: string): void {
    if (worker !== this.worker) return
    this.discard(reason)
    if (!this.inflight && !this.pool.closed && this.agents.size > 0 && this.recovering === undefined) {
      this.startRecovery(reason)
    }
  }

  /** Forgets the current worker (terminating it) and fails its pending request. */
  private discard(reason: string): void {
    const worker = this.worker
    const channel = this.channel
    this.worker = undefined
    this.channel = undefined
    channel?.fail(reason)
    if (worker === undefined) return
    this.replaced++
    worker.onmessage = null
    worker.onerror = null
    worker.terminate()
  }

  /** Sends one request and waits for its outcome. Never rejects. */
  async exec(request: unknown, timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<ChannelOutcome> {
    if (this.pool.options.transport === "inPage") {
      this.executor ??= this.pool.inPageExecutor()
      try {
        return { kind: "response", value: this.executor.handle(request) as unknown as Wire }
      } catch (e) {
        return { kind: "lost", reason: `executor failure: ${message(e)}` }
      }
    }
    let channel: PageChannel
    try {
      channel = this.channel ?? this.spawn().channel
    } catch (e) {
      return { kind: "lost", reason: `cannot start a worker: ${message(e)}` }
    }
    const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs
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
  call(record: AgentRecord, request: unknown, timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<OpResult> {
    return this.enqueue(async (): Promise<OpResult> => {
      if (signal?.aborted) return { kind: "interrupted" }
      if (record.status !== "live") return { kind: "gone", reason: record.reason }
      const outcome = await this.exec(request, timeoutMs, signal)
      if (outcome.kind === "response") return this.pool.applyResponse(record, outcome.value)
      const reason = outcome.kind === "timeout"
        ? `timed out after ${timeoutMs} ms; its worker was terminated`
        : outcome.kind === "aborted"
        ? "the call was interrupted; its worker was terminated"
        : `the worker running it was lost (${outcome.reason})`
      this.pool.retire(record, "terminated", reason)
      this.discard(reason)
      if (this.agents.size > 0) this.startRecovery(reason)
      return outcome.kind === "timeout"
        ? { kind: "timeout" }
        : outcome.kind === "aborted"
        ? { kind: "interrupted" }
        : { kind: "lost", reason: outcome.reason }
    })
  }

  private startRecovery(reason: string): void {
    const recovery = this.recover(reason).finally(() => {
      if (this.recovering === recovery) this.recovering = undefined
    })
    this.recovering = recovery
  }

  /** Brings the slot's live agents back on a fresh worker. */
  private async recover(reason: string): Promise<void> {
    this.discard(reason)
    while (!this.pool.closed) {
      let workerLost = false
      for (const record of [...this.agents.values()]) {
        if (record.status !== "live") continue
        const failure = await this.reinstantiate(record)
        if (failure === undefined) continue
        this.pool.retire(record, "lost", `${reason}; it could not be recovered: ${failure.reason}`)
        if (failure.workerLost) {
          workerLost = true
          this.discard(reason)
          break
        }
      }
      if (!workerLost) return
    }
  }

  private async reinstantiate(record: AgentRecord): Promise<{ readonly reason: string; readonly workerLost: boolean } | undefined> {
    const saved = record.kept === undefined ? undefined : keptToWire(record.kept)
    const steps: Array<[unknown, number | undefined]> = [[instantiateRequest(record), record.instantiateTimeoutMs]]
    if (saved !== undefined) steps.push([[OP_RESTORE, record.id, saved], undefined])
    for (const [request, timeoutMs] of steps) {
      const outcome = await this.exec(request, timeoutMs, undefined)
      if (outcome.kind !== "response") return { reason: outcome.kind === "lost" ? outcome.reason : outcome.kind, workerLost: true }
      const result = this.pool.applyResponse(record, outcome.value)
      if (result.kind === "error") return { reason: result.error.join(": "), workerLost: false }
    }
    return undefined
  }

  /** Fault injection: makes the worker throw an uncaught error (tests of crash recovery). */
  crash(): Promise<void> {
    return this.enqueue(async () => {
      if (this.worker === undefined) return
      const outcome = await this.exec([OP_CRASH], undefined, undefined)
      if (outcome.kind === "lost" && this.agents.size > 0 && !this.pool.closed) this.startRecovery(outcome.reason)
    })
  }

  /** Terminates the worker for good (engine shutdown). */
  close(): void {
    const worker = this.worker
    const channel = this.channel
    this.worker = undefined
    this.channel = undefined
    channel?.fail("the engine was shut down")
    worker?.terminate()
  }
}

/** The instantiate request of a record (also used to bring it back on a fresh worker). */
export const instantiateRequest = (record: AgentRecord): unknown => [
  OP_INSTANTIATE,
  record.id,
  record.module,
  record.imports,
  record.tracking,
  record.wasi
]

/** The pool: slots, agent records, host calls. */
export class WorkerPool {
  readonly slots: ReadonlyArray<WorkerSlot>
  readonly records = new Map<number, AgentRecord>()
  closed = false
  private nextId = 1

  constructor(readonly options: PoolOptions) {
    const size = options.transport === "inPage" ? 1 : Math.max(1, Math.floor(options.size))
    this.slots = Array.from({ length: size }, (_, i) => new WorkerSlot(i, this))
  }

  /** The least-loaded slot (ties: lowest index). */
  assign(): WorkerSlot {
    let best = this.slots[0]!
    for (const slot of this.slots) if (slot.agents.size < best.agents.size) best = slot
    return best
  }

  nextRecordId(): number {
    return this.nextId++
  }

  register(record: AgentRecord): void {
    this.records.set(record.id, record)
    record.slot.agents.set(record.id, record)
  }

  retire(record: AgentRecord, status: "terminated" | "lost", reason: string): void {
    if (record.status !== "live") return
    record.status = status
    record.reason = reason
    record.slot.agents.delete(record.id)
    this.records.delete(record.id)
  }

  /** Drops a record's instance in its executor (queued; not awaited by callers). */
  drop(record: AgentRecord, reason: string): void {
    if (record.status !== "live") return
    this.retire(record, "terminated", reason)
    void record.slot.enqueue(async () => {
      if (record.slot.worker !== undefined || this.options.transport === "inPage") {
        await record.slot.exec([OP_DROP, record.id], undefined, undefined)
      }
    })
  }

  /** The executor of in-page mode: host functions are called directly. */
  inPageExecutor(): Executor {
    return makeExecutor({
      fuelExport: this.options.fuelExport,
      hostFunction: (id, index) => (...args: Array<unknown>): unknown => {
        const fn = this.records.get(id)?.hostFunctions[index]
        if (fn === undefined) throw new HostCallError("host function threw: the agent is no longer live")
        try {
          return fn(...args)
        } catch (e) {
          throw new HostCallError(callErrorReason(e))
        }
      }
    })
  }

  /** Runs a host import for a worker (see `CallChannel.HostCallHandler`). Never throws. */
  readonly onHostCall = (call: Wire): unknown => {
    const [id, index, args] = call as readonly [number, number, ReadonlyArray<unknown>]
    const fn = this.records.get(id)?.hostFunctions[index]
    if (fn === undefined) return [0, "host function threw: the agent is no longer live"]
    let result: unknown
    try {
      result = fn(...args)
    } catch (e) {
      return [0, callErrorReason(e)]
    }
    const values = result === undefined ? [] : Array.isArray(result) ? [...result] : [result]
    for (let i = 0; i < values.length; i++) {
      const v = values[i]
      if (typeof v === "boolean") values[i] = Number(v)
      else if (v !== null && v !== undefined && typeof v !== "number" && typeof v !== "bigint") {
        return [0, `type error at the JS boundary: a host function returned a ${typeof v}`]
      }
    }
    return [1, values]
  }

  /** Reads a response into an `OpResult`, updating the record's memory size, kept state and WASI output. */
  applyResponse(record: AgentRecord, value: Wire): OpResult {
    const response = value as unknown as Response
    record.memoryBytes = response[2]
    if (response[0] === 1) {
      applyDiff(record, response[4])
      this.options.onOutput(record, response[5])
      return { kind: "ok", value: response[1], memoryBytes: response[2], fuelRemaining: response[3] }
    }
    applyDiff(record, response[3])
    this.options.onOutput(record, response[4])
    return { kind: "error", error: response[1], memoryBytes: response[2] }
  }

  stats(): PoolStats {
    return {
      workers: this.slots.map((s) => ({
        slot: s.index,
        running: s.worker !== undefined,
        agents: s.agents.size,
        queued: s.queued,
        replaced: s.replaced
      }))
    }
  }

  /** Terminates every worker; later requests end with `lost`. */
  close(): void {
    this.closed = true
    for (const record of [...this.records.values()]) this.retire(record, "terminated", "the engine was shut down")
    for (const slot of this.slots) slot.close()
  }
}
