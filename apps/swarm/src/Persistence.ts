/**
 * A persistent swarm run (`--db`, `SwarmOptions.persistence`): durable
 * repositories instead of the in-memory ones, with the runtime's
 * `persistence: { snapshotAfterCalls: true, restoreOnStart: true }` — every
 * call's resulting state is saved before the call returns, and every saved
 * agent comes back when the runtime starts.
 *
 * - **Open** (`openStore`): a fresh run discards (deletes) the agents an
 *   earlier run saved; a resumed one (`--resume`) keeps them and sizes its
 *   pool by what they will hold once back.
 * - **Checkpoint** (`Checkpoints`, `saveCheckpoint`): after every round the
 *   run records how far its workload got (seed, rounds, rounds completed,
 *   the PRNG's state), so `--resume` continues the workload where a stopped
 *   run was (`resumePosition`) instead of starting it again at round 1.
 * - **Restore** (`restoreSaved`): `restoreOnStart` brought the saved agents
 *   back while the runtime started; `restoreAll` retries whichever did not
 *   and says why.
 *
 * Errors: opening or reading the repositories or the checkpoint fails the
 * run with `RepositoryError`; a failed checkpoint or metrics write later is
 * counted in the report (`persistence.failed`), not fatal.
 *
 * @since 0.1.0
 */
import {
  type AgentId,
  InstanceRepository,
  type MetricsRepository,
  type ModuleRepository,
  type RepositoryError
} from "@agent-runtime/domain"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import { bump } from "./EventTally.js"
import { attempt, note, type Run } from "./Ledger.js"
import { DEFAULT_ROUNDS } from "./Plan.js"
import type { RestoreFailure } from "./Report.js"

/**
 * Where a persistent run keeps modules, agent snapshots and metrics. The
 * runtime then runs with `persistence: { snapshotAfterCalls: true,
 * restoreOnStart: true }`: every call's resulting state is saved before the
 * call returns, and every saved agent comes back when the runtime starts.
 */
export interface SwarmPersistence {
  /** Where the repositories keep their data, for the report (e.g. the SQLite file's path). */
  readonly location: string
  /** The module, instance and metrics repositories (e.g. `SqliteRepositories.layer({ path })`). */
  readonly repositories: Layer.Layer<ModuleRepository | InstanceRepository | MetricsRepository, RepositoryError>
  /**
   * Where the workload's checkpoint is kept (e.g. `SqliteCheckpoints.layer`
   * on the same database; built together with `repositories`, so a layer
   * both share is built once). Without it a resumed run starts its
   * workload at round 1.
   */
  readonly checkpoints?: Layer.Layer<Checkpoints, RepositoryError> | undefined
  /**
   * `true`: spawn nothing — continue the workload on the agents the runtime
   * restored from the repositories (an earlier run's, possibly killed), at
   * the round its checkpoint says it had reached.
   * `false` (default): a fresh run; agents saved by an earlier run are
   * discarded (deleted from the repository) before the runtime starts.
   */
  readonly resume?: boolean | undefined
}

/** How far a workload got: written after every round of a persistent run. */
export interface Checkpoint {
  readonly seed: number
  /** Rounds of the whole workload. */
  readonly rounds: number
  /** Rounds finished (0..rounds). */
  readonly completed: number
  /** The workload PRNG's state after those rounds (`Prng.state()`, a u32). */
  readonly prngState: number
}

/** A store for one workload's checkpoint. */
export interface CheckpointsShape {
  /** The last checkpoint saved, if any. */
  readonly load: Effect.Effect<Option.Option<Checkpoint>, RepositoryError>
  /** Replaces the checkpoint. */
  readonly save: (checkpoint: Checkpoint) => Effect.Effect<void, RepositoryError>
}

/** The checkpoint store of a persistent run. */
export class Checkpoints extends Context.Service<Checkpoints, CheckpointsShape>()("@agent-runtime/swarm/Checkpoints") {}

/** No checkpoint store: nothing is loaded, saves are dropped (a resumed run starts its workload at round 1). */
export const noCheckpoints: CheckpointsShape = { load: Effect.succeed(Option.none()), save: () => Effect.void }

/** A checkpoint store in memory (tests: several runs over one store). */
export const makeMemoryCheckpoints = (): CheckpointsShape => {
  let saved: Option.Option<Checkpoint> = Option.none()
  return {
    load: Effect.sync(() => saved),
    save: (checkpoint) => Effect.sync(() => void (saved = Option.some(checkpoint)))
  }
}

/** What a persistent run found in its repositories before the runtime started. */
export interface StoredState {
  readonly location: string
  readonly resume: boolean
  /** Agents saved when the run began. */
  readonly saved: number
  /** Saved agents deleted because the run is a fresh one. */
  readonly discarded: number
  /** The checkpoint store (`noCheckpoints` when the persistence has none). */
  readonly checkpoints: CheckpointsShape
}

/** The opened store: the repositories (to provide to the runtime), what was found, and the bytes the saved agents will hold. */
export interface OpenedStore {
  readonly repositories: Context.Context<ModuleRepository | InstanceRepository | MetricsRepository | Checkpoints>
  readonly stored: StoredState
  /** What the saved agents will hold once back (resumed runs; 0 otherwise): each one's reservation, or the memory it had grown to. */
  readonly savedBytes: number
  /** The checkpoint found (resumed runs). */
  readonly checkpoint: Option.Option<Checkpoint>
}

/**
 * Opens the repositories (and the checkpoint store) in the current scope: a
 * fresh run discards what an earlier run saved, a resumed one measures it
 * and reads the checkpoint.
 */
export const openStore = (persistence: SwarmPersistence): Effect.Effect<OpenedStore, RepositoryError, Scope.Scope> =>
  Effect.gen(function* () {
    const resume = persistence.resume === true
    const repositories = yield* Layer.build(
      Layer.merge(persistence.repositories, persistence.checkpoints ?? Layer.succeed(Checkpoints, noCheckpoints))
    )
    const checkpoints = Context.get(repositories, Checkpoints)
    const instances = Context.get(repositories, InstanceRepository)
    const saved = yield* instances.listSaved
    let savedBytes = 0
    if (resume) {
      for (const agentId of saved) {
        const snapshot = yield* instances.loadState(agentId)
        if (Option.isSome(snapshot))
          savedBytes += Math.max(snapshot.value.memoryReservation, snapshot.value.state.memoryBytes)
      }
    } else {
      for (const agentId of saved) yield* instances.deleteState(agentId)
    }
    const checkpoint = resume ? yield* checkpoints.load : Option.none<Checkpoint>()
    return {
      repositories,
      savedBytes,
      checkpoint,
      stored: {
        location: persistence.location,
        resume,
        saved: saved.length,
        discarded: resume ? 0 : saved.length,
        checkpoints
      }
    }
  })

/** Where a resumed workload continues. */
export interface Position {
  readonly seed: number
  readonly rounds: number
  /** The first round to work: the one the stopped run was in. */
  readonly startRound: number
  readonly prngState: number
}

/**
 * Where a resumed run continues: at the round after the checkpoint's last
 * completed one, with its seed and PRNG state, up to `rounds` (when given,
 * at least 12) or the stopped workload's own rounds. `None` — start a new
 * workload at round 1 — when there is no checkpoint or the workload has no
 * round left.
 */
export const resumePosition = (
  checkpoint: Option.Option<Checkpoint>,
  rounds: number | undefined
): Option.Option<Position> => {
  if (Option.isNone(checkpoint)) return Option.none()
  const { seed, completed, prngState } = checkpoint.value
  const total = rounds === undefined ? checkpoint.value.rounds : Math.max(DEFAULT_ROUNDS, Math.floor(rounds))
  return completed >= total ? Option.none() : Option.some({ seed, rounds: total, startRound: completed + 1, prngState })
}

/** Saves the checkpoint "`completed` rounds done" of a persistent run with a checkpoint store (a failure is counted, not fatal). */
export const saveCheckpoint = (run: Run, completed: number): Effect.Effect<void> =>
  Effect.gen(function* () {
    const checkpoints = run.settings.stored?.checkpoints
    if (checkpoints === undefined) return // a run in memory
    const { seed, rounds, prng } = run.settings
    const saved = yield* attempt(
      run,
      "checkpoint",
      checkpoints.save({ seed, rounds, completed, prngState: prng.state() })
    )
    if (Option.isNone(saved.value)) bump(run.ledger.persistenceFailures, `checkpoint:${saved.tag}`)
  })

/** The agents a persistent run got back from its store. */
export interface Restored {
  /** Brought back by `restoreOnStart` while the runtime started, or by the `restoreAll` retry. */
  readonly agents: ReadonlyArray<AgentId>
  readonly failed: ReadonlyArray<RestoreFailure>
}

/**
 * The restore phase: the agents `restoreOnStart` brought back, plus a
 * `restoreAll` retry of the others (a restored agent is live, so it is
 * skipped), each failure with its reason; a note says what came back (or
 * what a fresh run discarded).
 */
export const restoreSaved = Effect.fn("Swarm.restoreSaved")(function* (run: Run) {
  const restoredAtStart = (yield* run.runtime.agents).map((i) => i.agentId)
  const failed: Array<RestoreFailure> = []
  let restoredLater: ReadonlyArray<AgentId> = []
  const stored = run.settings.stored
  if (stored !== undefined) {
    const retry = yield* attempt(run, "restoreAll", run.runtime.restoreAll)
    if (Option.isSome(retry.value)) {
      restoredLater = retry.value.value.restored
      for (const f of retry.value.value.failed) failed.push({ agentId: f.agentId, reason: f.reason })
    } else if (retry.tag !== "Defect") run.ledger.crash(`restoreAll failed: ${retry.tag}`)
    if (stored.resume) {
      yield* note(
        run,
        `restored ${restoredAtStart.length + restoredLater.length} of ${stored.saved} saved agents from ${stored.location}` +
          (failed.length > 0 ? `; ${failed.length} failed (${failed[0]!.agentId}: ${failed[0]!.reason})` : "")
      )
    } else if (stored.discarded > 0) {
      yield* note(
        run,
        `discarded ${stored.discarded} agents saved in ${stored.location} by an earlier run (a fresh run; --resume continues one)`
      )
    }
  }
  const restored: Restored = { agents: [...restoredAtStart, ...restoredLater], failed }
  return restored
})
