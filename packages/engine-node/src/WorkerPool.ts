/**
 * The pool of `worker_threads` workers behind the Node engine, and the
 * bookkeeping that lets it survive the loss of a worker.
 *
 * - `size` slots (default `os.availableParallelism()`); a slot starts its
 *   worker lazily, on the first agent assigned to it. A new agent goes to the
 *   slot with the fewest live agents (ties: the lowest index — round-robin
 *   while the load is even).
 * - A worker runs one request at a time, so each slot has a FIFO queue; the
 *   agents of one worker share it, agents of different workers run in
 *   parallel. A request's deadline starts when it leaves the queue.
 * - When a request runs past its deadline (or its caller is interrupted), the
 *   slot terminates the worker (`worker.terminate()`); the caller gets its
 *   outcome at once and that agent is left terminated. Before the slot's next
 *   request, the *other* agents of the slot are brought back on a fresh worker:
 *   re-instantiated (start function included), then — when the engine kept a
 *   state for them — restored from it. Their queued calls just wait. The same
 *   happens when a worker dies on its own (`error`/`exit` events): the request
 *   in flight fails with `lost` and its agent is terminated, since it may be
 *   the cause. An agent that cannot be brought back (its start function times
 *   out or traps this time) is marked lost; its later calls fail with a
 *   reason. Each round of recovery removes at least one agent or ends, so it
 *   terminates.
 * - Recovery state: per agent, the engine state after its last completed
 *   call (see `RecoveryPolicy` in `NodeEngine.ts`), kept as changed-page diffs
 *   from the worker (`NodeWorker.ts`).
 *
 * Host functions run here, on the host thread, when the worker proxies a
 * guest's call to them (`CallChannel.ts`). Workers are `unref`'d while idle,
 * so a forgotten engine never keeps a process alive; during a request the
 * worker is `ref`'d so the process waits for the result.
 *
 * @since 0.1.0
 */
import { availableParallelism } from "node:os"
import { Worker } from "node:worker_threads"
import { type ChannelKind, type ChannelOutcome, type HostChannel, openHost } from "./CallChannel.js"
import type { Wire } from "./internal/Codec.js"
import {
  type ErrorWire,
  type ImportSpec,
  OP_CRASH,
  OP_DROP,
  OP_INSTANTIATE,
  OP_RESTORE,
  type Response,
  type StateWire,
  type Tracking,
  type WasiSpec
} from "./internal/Protocol.js"
import type { WasiFiles } from "./NodeWasi.js"

/** Where the worker script is: a file (URL or path) or bundled source (`eval`). */
export interface WorkerEntry {
  readonly filename: string | URL
  readonly eval: boolean
}

/** Settings of a pool. */
export interface PoolOptions {
  readonly size: number
  readonly channel: ChannelKind
  readonly channelBytes: number
  readonly entry: () => WorkerEntry
  readonly fuelExport: string
  /** Called once a retired record's worker no longer runs it (its files may be closed). */
  readonly release: (record: AgentRecord) => void
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
export interface AgentRecord {
  readonly id: number
  readonly agentId: string
  readonly module: WebAssembly.Module
  readonly imports: ReadonlyArray<ImportSpec>
  readonly hostFunctions: ReadonlyArray<HostFn>
  readonly wasi: WasiSpec | null
  readonly wasiFiles: WasiFiles | undefined
  readonly instantiateTimeoutMs: number | undefined
  readonly tracking: Tracking
  readonly slot: WorkerSlot
  status: "live" | "terminated" | "lost"
  /** Why the agent is no longer live. */
  reason: string
  /** Linear memory size after the last request, in bytes. */
  memoryBytes: number
  /** State after the last completed call, when tracked. */
  kept: KeptState | undefined
}

/** What a request ended with, for the engine to map to typed errors. */
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
    readonly threadId: number | undefined
    readonly agents: number
    readonly queued: number
    readonly replaced: number
  }>
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e))

/** The reason a host function's exception becomes, as `NativeEngine.mapCallError` words it. */
const hostErrorReason = (e: unknown): string => {
  if (e instanceof WebAssembly.RuntimeError) return e.message
  if (e instanceof RangeError && /call stack/i.test(e.message)) return `call stack exhausted (${e.message})`
  if (e instanceof TypeError) return `type error at the JS boundary: ${e.message}`
  return `host function threw: ${message(e)}`
}

/** Applies a worker's diff to the kept state (`false`: tracking stopped, the state is dropped). */
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

/** The kept state as a restore request's payload. */
const keptToWire = (kept: KeptState): StateWire => {
  const indexes = [...kept.pages.keys()].sort((a, b) => a - b)
  return [kept.memoryBytes, indexes, indexes.map((i) => kept.pages.get(i)!), [...kept.globals.keys()], [
    ...kept.globals.values()
  ]]
}

/** One worker of the pool, replaced when it is lost. */
export class WorkerSlot {
  worker: Worker | undefined
  private channel: HostChannel | undefined
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

  private spawn(): { worker: Worker; channel: HostChannel } {
    const options = this.pool.options
    const channel = openHost(options.channel, options.channelBytes)
    const entry = options.entry()
    const worker = new Worker(entry.filename, {
      eval: entry.eval,
      workerData: { channel: channel.workerData, fuelExport: options.fuelExport },
      transferList: [...channel.transferList]
    })
    worker.unref()
    worker.on("error", (e) => this.onDeath(worker, `worker error: ${message(e)}`))
    worker.on("exit", (code) => this.onDeath(worker, `worker exited with code ${code}`))
    this.worker = worker
    this.channel = channel
    return { worker, channel }
  }

  /** The worker died without being asked to: wake its request, or recover its agents if it was idle. */
  private onDeath(worker: Worker, reason: string): void {
    if (worker !== this.worker) return
    this.discard(reason)
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
    channel?.close()
    if (worker === undefined) return Promise.resolve()
    this.replaced++
    worker.ref() // keep the event loop alive until the worker has exited (workers are unref'd while idle)
    return worker.terminate().catch(() => undefined)
  }

  /**
   * Sends one request to the worker (spawning it if needed) and waits for its
   * outcome. Never rejects: a worker that cannot start, or a channel failure,
   * is a `lost` outcome.
   */
  async exec(request: unknown, timeoutMs: number | undefined, signal: AbortSignal | undefined): Promise<ChannelOutcome> {
    let worker: Worker
    let channel: HostChannel
    try {
      ;({ channel, worker } = this.worker !== undefined && this.channel !== undefined
        ? { channel: this.channel, worker: this.worker }
        : this.spawn())
    } catch (e) {
      return { kind: "lost", reason: `cannot start a worker: ${message(e)}` }
    }
    const deadline = timeoutMs === undefined ? undefined : performance.now() + timeoutMs
    this.inflight = true
    worker.ref()
    try {
      return await channel.request(request, this.pool.onHostCall, deadline, signal)
    } catch (e) {
      return { kind: "lost", reason: `call channel failure: ${message(e)}` }
    } finally {
      this.inflight = false
      worker.unref()
    }
  }

  /**
   * Runs one request for `record` under the queue. A timeout, an interruption
   * or the loss of the worker terminates `record` and schedules the recovery
   * of the slot's other agents.
   */
  call(
    record: AgentRecord,
    request: unknown,
    timeoutMs: number | undefined,
    signal: AbortSignal | undefined
  ): Promise<OpResult> {
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
      void this.discard(reason).then(() => this.pool.options.release(record))
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
          void this.discard(reason).then(() => this.pool.options.release(record))
          break
        }
        this.pool.options.release(record)
      }
      if (!workerLost) return
    }
  }

  /** Re-instantiates `record` on the current worker and restores its kept state. */
  private async reinstantiate(
    record: AgentRecord
  ): Promise<{ readonly reason: string; readonly workerLost: boolean } | undefined> {
    const saved = record.kept === undefined ? undefined : keptToWire(record.kept)
    const steps: Array<[unknown, number | undefined]> = [[instantiateRequest(record), record.instantiateTimeoutMs]]
    if (saved !== undefined) steps.push([[OP_RESTORE, record.id, saved], undefined])
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
      const outcome = await this.exec([OP_CRASH], undefined, undefined)
      if (outcome.kind === "lost" && this.agents.size > 0 && !this.pool.closed) this.startRecovery(outcome.reason)
    })
  }

  /** Terminates the worker for good (engine shutdown). */
  async close(): Promise<void> {
    const worker = this.worker
    const channel = this.channel
    this.worker = undefined
    this.channel = undefined
    channel?.fail("the engine was shut down")
    channel?.close()
    if (worker !== undefined) {
      worker.ref() // keep the event loop alive until the worker has exited (workers are unref'd while idle)
      await worker.terminate()
    }
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
    const size = Math.max(1, Math.floor(options.size))
    this.slots = Array.from({ length: size }, (_, i) => new WorkerSlot(i, this))
  }

  /** Default pool size: the number of logical CPUs Node may use. */
  static defaultSize(): number {
    return availableParallelism()
  }

  /** The least-loaded slot (ties: lowest index). */
  assign(): WorkerSlot {
    let best = this.slots[0]!
    for (const slot of this.slots) if (slot.agents.size < best.agents.size) best = slot
    return best
  }

  /** A fresh engine-wide instance number. */
  nextRecordId(): number {
    return this.nextId++
  }

  /** Registers a record with its slot (before its instantiate request, so its host calls resolve). */
  register(record: AgentRecord): void {
    this.records.set(record.id, record)
    record.slot.agents.set(record.id, record)
  }

  /** Ends a record: it leaves its slot and is never recovered. */
  retire(record: AgentRecord, status: "terminated" | "lost", reason: string): void {
    if (record.status !== "live") return
    record.status = status
    record.reason = reason
    record.slot.agents.delete(record.id)
    this.records.delete(record.id)
  }

  /** Drops a record's instance in its worker (queued; not awaited by callers). */
  drop(record: AgentRecord, reason: string): void {
    if (record.status !== "live") return
    this.retire(record, "terminated", reason)
    void record.slot.enqueue(async () => {
      if (record.slot.worker !== undefined) await record.slot.exec([OP_DROP, record.id], undefined, undefined)
    }).finally(() => this.options.release(record))
  }

  /** Runs a host import for a worker (see `CallChannel.HostCallHandler`). */
  readonly onHostCall = (call: Wire): unknown => {
    const [id, index, args] = call as readonly [number, number, ReadonlyArray<unknown>]
    const fn = this.records.get(id)?.hostFunctions[index]
    if (fn === undefined) return [0, "host function threw: the agent is no longer live"]
    let result: unknown
    try {
      result = fn(...args)
    } catch (e) {
      return [0, hostErrorReason(e)]
    }
    const values = result === undefined ? [] : Array.isArray(result) ? result : [result]
    for (let i = 0; i < values.length; i++) {
      const v = values[i]
      if (typeof v === "boolean") values[i] = Number(v)
      else if (v !== null && v !== undefined && typeof v !== "number" && typeof v !== "bigint") {
        return [0, `type error at the JS boundary: a host function returned a ${typeof v}`]
      }
    }
    return [1, values]
  }

  /** Reads a worker response into an `OpResult`, updating the record's memory size and kept state. */
  applyResponse(record: AgentRecord, value: Wire): OpResult {
    const response = value as unknown as Response
    record.memoryBytes = response[2]
    if (response[0] === 1) {
      applyDiff(record, response[4])
      return { kind: "ok", value: response[1], memoryBytes: response[2], fuelRemaining: response[3] }
    }
    applyDiff(record, response[3])
    const error = response[1]
    if (error[0] === "Exit" && record.wasiFiles !== undefined) record.wasiFiles.exitCode = error[2]
    return { kind: "error", error, memoryBytes: response[2] }
  }

  /** Counts per worker. */
  stats(): PoolStats {
    return {
      workers: this.slots.map((s) => ({
        slot: s.index,
        threadId: s.worker?.threadId,
        agents: s.agents.size,
        queued: s.queued,
        replaced: s.replaced
      }))
    }
  }

  /** Terminates every worker; later requests end with `lost`. */
  async close(): Promise<void> {
    this.closed = true
    const records = [...this.records.values()]
    for (const record of records) this.retire(record, "terminated", "the engine was shut down")
    await Promise.all(this.slots.map((s) => s.close()))
    for (const record of records) this.options.release(record)
  }
}
