/**
 * The `WorkerHost` port: the only thing the Node and browser worker engines
 * implement differently (DESIGN.md "Shape": "what differs between Node and
 * the browser is only its `WorkerHost` and WASI"). Structural on purpose —
 * the kit imports no platform type; `engine-node/NodeWorkerHost.ts`
 * (`worker_threads`) and `engine-browser/BrowserWorkerHost.ts` (module Web
 * Workers) implement it.
 *
 * Host side (`WorkerHost`): start a worker, post to it, hear its messages
 * and its death, terminate it and await its exit; `now()` (ms, monotonic)
 * and a cancellable timer for deadlines; the default thread count.
 * Worker side (`WorkerScope`): post to the host and listen to it — what the
 * worker entry script (`NodeWorker.ts`, `BrowserWorker.ts`) hands to
 * `WorkerExecutor.serve`.
 *
 * @since 0.2.0
 */

/** What a worker tells its host. */
export interface WorkerEvents {
  /** A message the worker posted. */
  readonly onMessage: (message: unknown) => void
  /** The worker died without being asked to (uncaught error, exit, a script that failed to load); `reason` in words. */
  readonly onDeath: (reason: string) => void
}

/** One running worker, as its host sees it. */
export interface WorkerHandle {
  /** Posts a message (structured clone; a `SharedArrayBuffer` is shared, a `WebAssembly.Module` keeps its code). */
  readonly post: (message: unknown) => void
  /** Terminates the worker (also inside `Atomics.wait` or a running guest); resolves once its thread has exited. */
  readonly terminate: () => Promise<void>
  /**
   * `true` while a request waits asynchronously for the worker (`false`
   * once it has ended; a reply the host caught while spinning calls
   * neither — see `CallChannel.ChannelPort.hold`): a platform whose idle
   * workers must not keep the process alive (Node: `ref`/`unref`) uses it;
   * others ignore it.
   */
  readonly hold: (busy: boolean) => void
  /** The platform's id of the worker's thread (Node `threadId`), when it has one. */
  readonly threadId: number | undefined
}

/** The host side of a worker platform. */
export interface WorkerHost {
  /** Starts one worker running the platform's worker entry; throws when it cannot start. */
  readonly start: (events: WorkerEvents) => WorkerHandle
  /** A monotonic time in ms (`performance.now()`). */
  readonly now: () => number
  /** Calls `f` after `ms` ms; returns a function that cancels it. */
  readonly setTimer: (ms: number, f: () => void) => () => void
  /** Its workers can take a posted message while they block (their `WorkerScope` has `receive`). */
  readonly syncReceive?: boolean | undefined
}

/** The worker side: the worker's global scope, as the executor uses it. */
export interface WorkerScope {
  /** Posts a message to the host. */
  readonly post: (message: unknown) => void
  /** Calls `handler` with every message the host posts. */
  readonly listen: (handler: (message: unknown) => void) => void
  /** Takes the next posted message synchronously, while blocked (Node `receiveMessageOnPort`); absent in browsers. */
  readonly receive?: (() => unknown) | undefined
}
