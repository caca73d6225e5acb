/**
 * The swarm's workload checkpoint (`Persistence.Checkpoints`) in the same
 * SQLite file as the runtime's repositories (`--db`): one row of a
 * `swarm_checkpoint` table (created when missing; the repositories'
 * versioned schema does not know it and is not changed by it), replaced
 * after every round in its own transaction — so after a crash the file
 * holds both every acknowledged call's state and how far the workload got.
 *
 * Node only (better-sqlite3 through `@agent-runtime/repository-sqlite`).
 * Errors: `RepositoryError { operation: "checkpoint.open" | "checkpoint.load" | "checkpoint.save" }`.
 *
 * @since 0.1.0
 */
import { RepositoryError } from "@agent-runtime/domain"
import { SqliteDatabase } from "@agent-runtime/repository-sqlite"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { type Checkpoint, Checkpoints } from "./Persistence.js"

const SCHEMA = `CREATE TABLE IF NOT EXISTS swarm_checkpoint (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  seed INTEGER NOT NULL,
  rounds INTEGER NOT NULL,
  completed INTEGER NOT NULL,
  prng_state INTEGER NOT NULL
)`

interface Row {
  readonly seed: number
  readonly rounds: number
  readonly completed: number
  readonly prng_state: number
}

const attempt = <A>(operation: string, f: () => A): Effect.Effect<A, RepositoryError> =>
  Effect.try({
    try: f,
    catch: (e) => new RepositoryError({ operation, reason: e instanceof Error ? e.message : String(e) })
  })

/** `Checkpoints` on the shared `SqliteDatabase` (give the repositories the same one: one connection, one file). */
export const layerFromDatabase: Layer.Layer<Checkpoints, RepositoryError, SqliteDatabase.SqliteDatabase> = Layer.effect(
  Checkpoints,
  Effect.gen(function* () {
    const { db } = yield* SqliteDatabase.SqliteDatabase
    const { select, upsert } = yield* attempt("checkpoint.open", () => {
      db.exec(SCHEMA)
      return {
        select: db.prepare<[], Row>("SELECT seed, rounds, completed, prng_state FROM swarm_checkpoint WHERE id = 1"),
        upsert: db.prepare<[number, number, number, number]>(
          "INSERT INTO swarm_checkpoint (id, seed, rounds, completed, prng_state) VALUES (1, ?, ?, ?, ?) " +
            "ON CONFLICT (id) DO UPDATE SET seed = excluded.seed, rounds = excluded.rounds, " +
            "completed = excluded.completed, prng_state = excluded.prng_state"
        )
      }
    })
    return {
      load: attempt("checkpoint.load", () => {
        const row = select.get()
        return row === undefined
          ? Option.none<Checkpoint>()
          : Option.some<Checkpoint>({
              seed: row.seed,
              rounds: row.rounds,
              completed: row.completed,
              prngState: row.prng_state
            })
      }),
      save: (c: Checkpoint) =>
        attempt("checkpoint.save", () => void upsert.run(c.seed, c.rounds, c.completed, c.prngState))
    }
  })
)

/** `Checkpoints` on its own connection to the database at `options.path`. */
export const layer = (options: SqliteDatabase.Options): Layer.Layer<Checkpoints, RepositoryError> =>
  Layer.provide(layerFromDatabase, SqliteDatabase.layer(options))
