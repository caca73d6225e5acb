/**
 * `InstanceRepository` on SQLite (spec "Repository Interfaces /
 * InstanceRepository"), paged so that a save after a call writes only what
 * the call changed (issue 13 item 7):
 *
 * - `instance_snapshots`: one header row per agent — the snapshot *without
 *   its pages* (metadata, `memoryBytes`, mutable globals with bigints and the
 *   exact bits of -0, NaN, ±Infinity) as a fixed binary header
 *   (`internal/header.ts`, `layout = 2`, schema version 7: versioned,
 *   CRC-32-checked, ≈ 150–250 bytes) or, where that format cannot vouch for
 *   the snapshot and in rows of versions 4–6, the domain's `SnapshotCodec`
 *   bytes (`layout = 1`) — its page count, and a generation counted up by
 *   every save;
 * - `instance_snapshot_pages`: one row per non-zero 64 KiB page — index,
 *   a hash, and the page — unless `compressSnapshots` is `false` — as runs
 *   of one repeated 32-bit word when they are few (a filled page), else its
 *   non-zero runs when they take at most a quarter of it (word scans, far
 *   cheaper than DEFLATE: an agent's pages are mostly zero or filled), else
 *   raw DEFLATE (RFC 1951, `node:zlib`, level 1) when that is smaller, else
 *   raw. Run-form rows carry a 64-bit hash of their stored bytes, the others
 *   the SHA-1 of the page; both cover the page index (schema version 7), so
 *   a row moved to another index fails the load (`internal/pages.ts`);
 * - `instance_snapshot_patches` (schema version 6): at most one row per page
 *   that has a run-form row of at least `PATCH_MIN_ROW` (1 KiB) — the runs of
 *   words where the page now differs from that row's page, at most
 *   `PATCH_LIMIT` (3,968 bytes: one B-tree cell of this rowid table, no
 *   overflow page) and half the row, with the 64-bit hash of its bytes and
 *   page index; the header row counts them (`patch_count`: a missing one is
 *   corruption).
 *
 * Delta saves (`savePages`, the runtime's saves after calls on an engine
 * with the dirty-page write barrier): only the pages the engine lists as
 * written are compared (with what this repository last saved of them) and
 * encoded — right away, as they may be views of the agent's live memory —
 * and the zeroed ones dropped. A changed page whose row is a run form of
 * 1 KiB or more is compared word by word with that row's page: when the
 * words that differ make a small patch (a call that rewrote a few hundred
 * bytes of a 13 KB heap page) only the patch row is written — always
 * against the row, so a page is at most its row plus one patch — else the
 * row is written again and its patch dropped. A whole save writes rows
 * only and drops every patch of the agent; the header row is replaced only where its
 * generation is still the one this repository wrote (one `UPDATE … WHERE
 * generation = ?`), else nothing is written and the save answers `false`
 * (the runtime then saves the whole snapshot). Nothing known of the agent
 * (never saved or loaded here, or a failed save since) is `false` too.
 *
 * A whole save compares each page with what this repository last saved of the
 * agent. A page that is the very `Uint8Array` object an earlier save was
 * given, and whose stored form then is still the agent's row at that index,
 * is unchanged without any compare or hash: snapshot pages are read-only
 * (the domain's `EngineState`), and an engine that tracks written pages
 * (engine-kit's write barrier) hands unchanged pages back as the same
 * objects. This is remembered in a `WeakMap` keyed by the page object, which
 * keeps no page alive. Other pages are compared with what was saved
 * (kept in memory with the generation it wrote: the run forms' bytes —
 * at most a quarter page each, the size of the rows themselves — compared
 * byte for byte, other pages by SHA-1; when another connection saved since,
 * or after a restart, what is known is read back from the page rows): only
 * new or changed pages are encoded and written, pages that became zero are
 * deleted, and the header row is replaced. A save identical to the last one
 * (same header bytes, same pages) writes nothing. Loads check every page
 * against its hash. Rows of schema version 3 (the whole snapshot as one
 * codec BLOB, gzip-compressed or not) are read as they are and paged by
 * their next save.
 *
 * The public snapshot format stays `SnapshotCodec`'s: the paging is this
 * store's layout, and what `loadState` returns is the whole snapshot.
 *
 * Group commit: comparing and encoding happen when `saveState` runs; the
 * write waits for the next flush (`setImmediate`), which writes every save
 * that arrived in the meantime — the agents that finished a call in the same
 * turn of the event loop — in one IMMEDIATE transaction (the changed pages,
 * the deleted ones and the header row of each), and only then completes each
 * waiting `saveState`. So a save still completes only once it is committed
 * (a caller that acknowledges after it loses nothing to a crash), and a
 * reader, a crash, a full disk or a lock timeout leaves each agent's
 * previous snapshot or its whole new one. When the group's transaction
 * fails, each save is retried alone, so one that cannot be stored fails only
 * its own caller. `loadState`, `deleteState` and `listSaved` flush first: they
 * see every save issued before them. A corrupt row (a header the codec
 * refuses, a missing page, a page that does not decode or match its hash)
 * fails the load with `RepositoryError`; it is never returned as a partial
 * snapshot.
 *
 * Errors: `RepositoryError { operation: "instance.saveState" |
 * "instance.loadState" | "instance.deleteState" | "instance.listSaved",
 * reason }` with SQLite's code (`SQLITE_BUSY`, `SQLITE_CORRUPT`,
 * `SQLITE_FULL`, `SQLITE_READONLY`), a corrupt row, or a snapshot the codec
 * could not give back unchanged (non-finite header numbers, pages that are
 * not 64 KiB in increasing order inside `memoryBytes`, globals outside i64).
 *
 * @since 0.1.0
 */
import {
  InstanceRepository,
  RepositoryError,
  SnapshotCodec,
  type AgentId,
  type InstanceRepositories,
  type InstanceSnapshot
} from "@agent-runtime/domain"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Header from "./internal/header.js"
import * as Pages from "./internal/pages.js"
import * as Snapshots from "./internal/snapshots.js"
import { attempt, describe, read, write } from "./internal/sql.js"
import * as SqliteDatabase from "./SqliteDatabase.js"

/** Options of the SQLite instance repository. */
export interface Options {
  /**
   * Store each written page compactly — its fills, its non-zero runs, or DEFLATE —
   * when that makes it smaller (default `true`). Rows written either way are
   * read back.
   */
  readonly compressSnapshots?: boolean | undefined
}

/** A save waiting for the next group commit: what to write, and whom to tell once it committed or failed. */
interface PendingSave {
  readonly agentId: AgentId
  /** The snapshot's non-zero pages by index, in increasing order. */
  readonly indexes: ReadonlyArray<number>
  /**
   * Per page, in the order of `indexes`: its stored form when it changed
   * since the last save this repository knows of (encoded outside the
   * transaction), else what is known of its row (the same object).
   */
  readonly entries: ReadonlyArray<KnownPage>
  /**
   * The page's bytes, kept only where its entry is known by hash alone (an
   * unchanged deflated or raw page: encoded again if the row turns out to
   * have been replaced). Every other page's bytes are let go at once: a
   * snapshot's pages are not held while the save waits for its commit.
   */
  readonly bytes: ReadonlyArray<Uint8Array | undefined>
  /** The codec bytes of the snapshot without its pages. */
  readonly header: Uint8Array
  /**
   * A delta save (`savePages`): `indexes`/`entries` hold only the pages that
   * changed (encoded), `zeroed` the pages to drop; applied on top of what
   * this repository last wrote of the agent, provided the row is still that
   * (its generation), else not applied at all (`done(undefined, false)`).
   */
  readonly zeroed?: ReadonlyArray<number> | undefined
  /** Pages (64 KiB) of the delta's memory: a known page row at or past it is dropped too. */
  readonly memoryPages?: number | undefined
  /** `applied`: false for a delta save that found no base it could apply to (nothing written). */
  readonly done: (error: RepositoryError | undefined, applied: boolean) => void
}

/** What is known of a page row: its stored form (run forms), or its hash only. */
type KnownPage = Pages.PageWrite | Pages.SavedHash

interface HeaderRow {
  readonly snapshot: Uint8Array
  readonly layout: number
  readonly page_count: number
  readonly patch_count: number
  readonly generation: number
}

/**
 * What this repository last wrote (or read) for an agent: its generation,
 * header bytes, page rows by index (with their patches), and how many of
 * them have a patch row.
 */
interface Saved {
  readonly generation: number
  readonly header: Uint8Array
  readonly pages: ReadonlyMap<number, KnownPage>
  readonly patches: number
}

/** `layout` of a paged row whose header is `SnapshotCodec` bytes (schema versions 4–6; still read, and written when the binary header cannot vouch). */
const PAGED = 1
/** Whether a `layout` is paged: codec header (1) or binary header (2, `internal/header.ts`). */
const isPaged = (layout: number): boolean => layout === PAGED || layout === Header.LAYOUT
/** The `layout` of a paged row with this header: the binary header's magic, else codec bytes. */
const layoutOf = (header: Uint8Array): number => (Header.isBinary(header) ? Header.LAYOUT : PAGED)

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b)

/** Builds the repository on an open database (statements are prepared once). */
export const make = (
  database: SqliteDatabase.SqliteDatabaseShape,
  options: Options = {}
): Effect.Effect<InstanceRepositories.InstanceRepositoryShape, RepositoryError> =>
  attempt("open", () => {
    const { db } = database
    const compress = options.compressSnapshots ?? true
    const upsertHeader = db.prepare<[string, Uint8Array, number, number, number]>(
      `INSERT INTO instance_snapshots (agent_id, snapshot, layout, page_count, patch_count, generation) VALUES (?, ?, ?, ?, 0, ?)
       ON CONFLICT (agent_id) DO UPDATE SET snapshot = excluded.snapshot, layout = excluded.layout,
         page_count = excluded.page_count, patch_count = 0, generation = excluded.generation`
    )
    const upsertPage = db.prepare<[string, number, Uint8Array, number, Uint8Array]>(
      `INSERT INTO instance_snapshot_pages (agent_id, page_index, hash, compressed, data) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (agent_id, page_index) DO UPDATE SET hash = excluded.hash, compressed = excluded.compressed, data = excluded.data`
    )
    const updateHeader = db.prepare<[Uint8Array, number, number, number, string, number]>(
      `UPDATE instance_snapshots SET snapshot = ?, layout = ?, page_count = ?, patch_count = ?, generation = generation + 1
       WHERE agent_id = ? AND layout IN (${PAGED}, ${Header.LAYOUT}) AND generation = ?`
    )
    const upsertPatch = db.prepare<[string, number, Uint8Array, Uint8Array]>(
      `INSERT INTO instance_snapshot_patches (agent_id, page_index, hash, data) VALUES (?, ?, ?, ?)
       ON CONFLICT (agent_id, page_index) DO UPDATE SET hash = excluded.hash, data = excluded.data`
    )
    const deletePatch = db.prepare<[string, number]>(
      "DELETE FROM instance_snapshot_patches WHERE agent_id = ? AND page_index = ?"
    )
    const deletePatches = db.prepare<[string]>("DELETE FROM instance_snapshot_patches WHERE agent_id = ?")
    const selectPatches = db.prepare<[string], Pages.PatchRow>(
      "SELECT page_index, hash, data FROM instance_snapshot_patches WHERE agent_id = ? ORDER BY page_index"
    )
    const deletePage = db.prepare<[string, number]>(
      "DELETE FROM instance_snapshot_pages WHERE agent_id = ? AND page_index = ?"
    )
    const deletePages = db.prepare<[string]>("DELETE FROM instance_snapshot_pages WHERE agent_id = ?")
    const remove = db.prepare<[string]>("DELETE FROM instance_snapshots WHERE agent_id = ?")
    const selectGeneration = db.prepare<[string], { layout: number; generation: number }>(
      "SELECT layout, generation FROM instance_snapshots WHERE agent_id = ?"
    )
    const selectHeader = db.prepare<[string], HeaderRow>(
      "SELECT snapshot, layout, page_count, patch_count, generation FROM instance_snapshots WHERE agent_id = ?"
    )
    // the bytes of the small run forms too, so they are compared exactly (an 8-byte hash never skips a write)
    const selectKnown = db.prepare<[string], Pages.PageRow>(
      `SELECT page_index, hash, compressed, CASE WHEN compressed IN (${Pages.Stored.runs}, ${Pages.Stored.fills}) THEN data ELSE x'' END AS data
       FROM instance_snapshot_pages WHERE agent_id = ?`
    )
    const selectPages = db.prepare<[string], Pages.PageRow>(
      "SELECT page_index, hash, compressed, data FROM instance_snapshot_pages WHERE agent_id = ? ORDER BY page_index"
    )
    const selectIds = db.prepare<[], { agent_id: string }>("SELECT agent_id FROM instance_snapshots ORDER BY rowid")

    /** Per agent: what this repository last saved or loaded (dropped on any failed save and on delete). */
    const saved = new Map<AgentId, Saved>()

    /**
     * The stored form each page object was last prepared as (`prepare`), keyed
     * by the page's own `Uint8Array` (snapshot pages are read-only): a page
     * handed in again as the same object, with that form still known as the
     * agent's row (the same entry, or `sameRow`), is unchanged without a
     * compare. Weak: it holds no page alive, so it is bounded by the pages
     * the callers (the engines' last snapshots) keep; a value is what `saved`
     * keeps of a row (`Pages.known`: the run forms' bytes, else a hash).
     */
    const preparedAs = new WeakMap<Uint8Array, KnownPage>()

    /**
     * The writes of one save — changed pages, deleted pages and the header
     * row — inside the caller's transaction; returns what was written.
     * `known`: what this repository last wrote of the agent (trusted only
     * when the row's generation still matches it).
     */
    const writeSave = (save: PendingSave, known: Saved | undefined): Saved | undefined => {
      if (save.zeroed !== undefined) return writeDelta(save, known)
      const { agentId, indexes, entries, bytes, header } = save
      const row = selectGeneration.get(agentId)
      let previous: ReadonlyMap<number, KnownPage>
      if (row !== undefined && isPaged(row.layout)) {
        const trusted = known !== undefined && known.generation === row.generation
        // a whole save leaves no patch: the page rows below are the snapshot's pages
        if (!trusted || known.patches > 0) deletePatches.run(agentId)
        previous = trusted
          ? known.pages
          : new Map(selectKnown.all(agentId).map((r) => [r.page_index, Pages.knownRow(r)]))
      } else {
        previous = new Map()
        deletePages.run(agentId) // no paged row: no page or patch row may survive from an earlier one
        deletePatches.run(agentId)
      }
      const now = new Map<number, KnownPage>()
      for (const [i, index] of indexes.entries()) {
        const entry = entries[i]!
        const old = previous.get(index)
        // the row holds it already: the same known row, an equal SHA-1, or the same stored bytes of a run form
        // (the run forms are a function of the page's bytes; an 8-byte hash never skips a write)
        if (old !== undefined && (old === entry || Pages.sameRow(old, entry))) {
          now.set(index, old)
          continue
        }
        // unchanged against a row another writer replaced since, known by its hash only: encoded now
        const page = entry.compressed === -1 ? Pages.storedPage(index, bytes[i]!, compress) : entry
        upsertPage.run(agentId, page.index, page.hash, page.compressed, page.data)
        now.set(index, Pages.known(page))
      }
      for (const index of previous.keys()) if (!now.has(index)) deletePage.run(agentId, index)
      const generation = (row?.generation ?? 0) + 1
      upsertHeader.run(agentId, header, layoutOf(header), indexes.length, generation)
      return { generation, header, pages: now, patches: 0 }
    }

    /**
     * The writes of a delta save (`savePages`) on top of `known` — only when
     * the agent's row is still the one `known` describes (the header row is
     * replaced only where its generation is `known`'s: one statement, no read),
     * else nothing is written and `undefined` returned (the caller saves the
     * whole snapshot): the header row, the changed pages (unless the row
     * holds them already), and the zeroed pages that have rows.
     */
    const writeDelta = (save: PendingSave, known: Saved | undefined): Saved | undefined => {
      const { agentId, entries, header } = save
      if (known === undefined) return undefined
      const now = new Map(known.pages)
      let patches = known.patches
      const writes: Array<Pages.PageWrite> = []
      const deletes: Array<number> = []
      const patchWrites: Array<Pages.PatchedPage> = []
      const patchDeletes: Array<number> = []
      /** `index`'s row goes (or is replaced by a row of its own): its patch row with it. */
      const unpatch = (old: KnownPage | undefined, index: number) => {
        if (old === undefined || !Pages.isPatched(old)) return
        patchDeletes.push(index)
        patches--
      }
      for (const entry of entries) {
        const old = now.get(entry.index)
        if (Pages.isPatched(entry)) {
          // a patch over the row it was made against (`entry.data`, the same bytes object): that row must still be it
          if (old === undefined || !Pages.patchable(old.compressed) || old.data !== entry.data) return undefined
          if (!Pages.isPatched(old)) patches++
          patchWrites.push(entry)
          now.set(entry.index, entry)
          continue
        }
        if (old !== undefined && (old === entry || Pages.sameRow(old, entry))) continue
        if (old !== undefined && Pages.isPatched(old) && old.data === entry.data) {
          // the page is its row's page again: only the patch goes
          unpatch(old, entry.index)
          now.set(entry.index, entry)
          continue
        }
        unpatch(old, entry.index)
        writes.push(entry as Pages.PageWrite)
        now.set(entry.index, Pages.known(entry as Pages.PageWrite))
      }
      for (const index of save.zeroed!) {
        const old = now.get(index)
        if (now.delete(index)) {
          deletes.push(index)
          unpatch(old, index)
        }
      }
      const pages = save.memoryPages!
      for (const [index, old] of now) {
        if (index >= pages) {
          now.delete(index)
          deletes.push(index)
          unpatch(old, index)
        }
      }
      if (updateHeader.run(header, layoutOf(header), now.size, patches, agentId, known.generation).changes !== 1)
        return undefined
      for (const page of writes) upsertPage.run(agentId, page.index, page.hash, page.compressed, page.data)
      for (const index of deletes) deletePage.run(agentId, index)
      for (const page of patchWrites) upsertPatch.run(agentId, page.index, page.patchHash, page.patch)
      for (const index of patchDeletes) deletePatch.run(agentId, index)
      return { generation: known.generation + 1, header, pages: now, patches }
    }

    /** One save in its own transaction (`undefined`: a delta save without its base, nothing written). */
    const saveAlone = db.transaction((save: PendingSave): Saved | undefined => writeSave(save, saved.get(save.agentId)))

    /**
     * Several saves in one transaction, in order; what each agent's last save
     * in it wrote, and the delta saves that found no base (nothing written).
     */
    const saveGroup = db.transaction(
      (group: ReadonlyArray<PendingSave>): { written: Map<AgentId, Saved>; skipped: Set<PendingSave> } => {
        const written = new Map<AgentId, Saved>()
        const skipped = new Set<PendingSave>()
        for (const save of group) {
          const next = writeSave(save, written.get(save.agentId) ?? saved.get(save.agentId))
          if (next === undefined) skipped.add(save)
          else written.set(save.agentId, next)
        }
        return { written, skipped }
      }
    )

    /**
     * Group commit: saves wait here until the next flush (`setImmediate`,
     * after the saves that arrive in the same turn of the event loop), which
     * writes them all in one IMMEDIATE transaction and only then resumes
     * each waiting caller — "saved before the call returns" holds for every
     * one of them, and a crash leaves each save whole or absent.
     */
    let queue: Array<PendingSave> = []
    let scheduled = false

    const failed = (e: unknown) => new RepositoryError({ operation: "instance.saveState", reason: describe(e) })

    /** Writes every waiting save now (also run before a load, a delete or a listing, so those see them). */
    const flush = (): void => {
      scheduled = false
      if (queue.length === 0) return
      const group = queue
      queue = []
      if (group.length > 1) {
        let result: { written: Map<AgentId, Saved>; skipped: Set<PendingSave> } | undefined
        try {
          result = saveGroup.immediate(group)
        } catch {
          // the group rolled back: each save alone below, so one that cannot be stored fails only its own caller
        }
        if (result !== undefined) {
          for (const [agentId, next] of result.written) saved.set(agentId, next)
          for (const save of group) save.done(undefined, !result.skipped.has(save))
          return
        }
      }
      for (const save of group) {
        let error: RepositoryError | undefined
        let applied = false
        try {
          const next = saveAlone.immediate(save)
          if (next !== undefined) {
            saved.set(save.agentId, next)
            applied = true
          }
        } catch (e) {
          saved.delete(save.agentId)
          error = failed(e)
        }
        save.done(error, applied)
      }
    }

    /**
     * Queues a save for the next group commit; the effect completes once its
     * transaction committed (or failed): `true` when it was written, `false`
     * for a delta save that found no base (nothing written).
     */
    const commit = (save: Omit<PendingSave, "done">): Effect.Effect<boolean, RepositoryError> =>
      Effect.callback<boolean, RepositoryError>((resume) => {
        queue.push({
          ...save,
          done: (error, applied) => resume(error === undefined ? Effect.succeed(applied) : Effect.fail(error))
        })
        if (!scheduled) {
          scheduled = true
          setImmediate(flush)
        }
      })

    const refused = (reason: string) =>
      new RepositoryError({ operation: "instance.saveState", reason: `snapshot cannot be stored: ${reason}` })

    /** Forgets what this repository knew of an agent (after any failed save: read back next time). */
    const forget = (agentId: AgentId) => Effect.sync(() => void saved.delete(agentId))

    /**
     * The save of `snapshot` as it waits for its commit: each page compared
     * with what this repository last saved of the agent and encoded when it
     * changed, outside the write lock; `undefined` when nothing changed.
     * What it returns holds no page of the snapshot but the few an unchanged
     * deflated or raw page needs (`PendingSave.bytes`), so the snapshot's
     * copies are garbage while the save waits for the group commit.
     */
    const prepare = (agentId: AgentId, snapshot: InstanceSnapshot, header: Uint8Array) => {
      const pages = snapshot.state.pages
      const known = saved.get(agentId)
      const indexes: Array<number> = []
      const entries: Array<KnownPage> = []
      const bytes: Array<Uint8Array | undefined> = []
      let changed = 0
      for (const p of pages) {
        const old = known?.pages.get(p.index)
        indexes.push(p.index)
        const as = old === undefined ? undefined : preparedAs.get(p.data)
        if (old !== undefined && as !== undefined && (as === old || Pages.sameRow(as, old))) {
          // the same page object as an earlier save whose form is still the row: unchanged, nothing compared
          entries.push(old)
          bytes.push(old.compressed === -1 ? p.data : undefined)
        } else if (old !== undefined && Pages.unchanged(p.data, old)) {
          entries.push(old)
          bytes.push(old.compressed === -1 ? p.data : undefined)
          preparedAs.set(p.data, old)
        } else {
          const entry = Pages.storedPage(p.index, p.data, compress)
          entries.push(entry)
          bytes.push(undefined)
          preparedAs.set(p.data, Pages.known(entry)) // a deflated or raw page by its hash only: no bytes kept
          changed++
        }
      }
      const pending: Omit<PendingSave, "done"> = { agentId, indexes, entries, bytes, header }
      const same =
        known !== undefined &&
        changed === 0 &&
        known.pages.size === pages.length &&
        sameBytes(header, known.header) &&
        !queue.some((q) => q.agentId === agentId)
      return { pending, unchangedSince: same ? known.generation : undefined }
    }

    /**
     * The snapshot's pages validated and its header (everything but the
     * pages) encoded — the binary header (`internal/header.ts`) when it can
     * vouch for it, else the `SnapshotCodec` bytes, which refuse what the
     * codec refuses; on failure (`RepositoryError`, the codec's reason) what
     * this repository knew of the agent is forgotten, so its next save is a
     * whole one.
     */
    const encodeHeader = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<Uint8Array, RepositoryError> =>
      Effect.tapError(
        Effect.mapError(
          Effect.andThen(
            SnapshotCodec.validatePages(snapshot.state),
            (): Effect.Effect<Uint8Array, SnapshotCodec.SnapshotInvalid> => {
              const binary = Header.encode(snapshot)
              return binary === undefined ? SnapshotCodec.encode(Pages.withoutPages(snapshot)) : Effect.succeed(binary)
            }
          ),
          (e) => refused(e.reason)
        ),
        () => forget(agentId)
      )

    const saveState = (agentId: AgentId, snapshot: InstanceSnapshot): Effect.Effect<void, RepositoryError> =>
      // written as a chain whose later steps do not close over `snapshot` (see `prepare`)
      Effect.flatMap(encodeHeader(agentId, snapshot), (header) => {
        const { pending, unchangedSince } = prepare(agentId, snapshot, header)
        if (unchangedSince === undefined) return Effect.asVoid(commit(pending))
        return Effect.flatMap(
          Effect.tapError(
            attempt("instance.saveState", () => selectGeneration.get(agentId)),
            () => forget(agentId)
          ),
          (row) =>
            row !== undefined && isPaged(row.layout) && row.generation === unchangedSince
              ? Effect.void // nothing changed
              : Effect.asVoid(commit(pending))
        )
      })

    /**
     * A delta save (the port's `savePages`): validated and encoded like a
     * whole one, but only the pages listed as changed are looked at — each
     * compared with what this repository last saved of it and encoded when
     * it changed, right away (the pages may be views of the agent's live
     * memory: none is kept) — and `zeroed` pages are dropped. `false`
     * without a base: nothing known of the agent (never saved or loaded
     * through this repository, or a failed save since), or, at the write,
     * its row replaced by another writer.
     */
    const savePages = (
      agentId: AgentId,
      changes: InstanceRepositories.SnapshotChanges
    ): Effect.Effect<boolean, RepositoryError> =>
      Effect.suspend(() => {
        const known = saved.get(agentId)
        if (known === undefined) return Effect.succeed(false)
        const snapshot = changes.snapshot
        const zeroed = changes.zeroed
        for (const index of zeroed) {
          if (!Number.isSafeInteger(index) || index < 0)
            return Effect.andThen(forget(agentId), Effect.fail(refused(`zeroed page index ${index} is not a page`)))
        }
        return Effect.flatMap(encodeHeader(agentId, snapshot), (header) => {
          // pages compared and encoded now, before anything runs on the agent again (they may be live views)
          const busy = queue.some((q) => q.agentId === agentId) // an earlier save still waits: compare nothing
          const indexes: Array<number> = []
          const entries: Array<KnownPage> = []
          for (const p of snapshot.state.pages) {
            const old = busy ? undefined : known.pages.get(p.index)
            if (old !== undefined && Pages.unchanged(p.data, old)) continue // never true for a patched row
            if (old !== undefined && Pages.patchable(old.compressed) && Pages.patchLimit(old.data.length) > 0) {
              // a changed run-form row: the words that differ from it, when they are few (one patch row)
              const entry = patchEntry(p.data, old as Pages.PageWrite)
              if (entry === null) continue // unchanged: the row and its patch hold the page
              if (entry !== undefined) {
                indexes.push(p.index)
                entries.push(entry)
                continue
              }
            }
            indexes.push(p.index)
            entries.push(Pages.storedPage(p.index, p.data, compress))
          }
          let drops = false
          for (const index of zeroed) drops ||= known.pages.has(index)
          const memoryPages = snapshot.state.memoryBytes / Pages.PAGE
          const pending: Omit<PendingSave, "done"> = {
            agentId,
            indexes,
            entries,
            bytes: [],
            header,
            zeroed,
            memoryPages
          }
          if (busy || drops || entries.length > 0 || !sameBytes(header, known.header)) return commit(pending)
          // nothing to write, if the row is still the one this repository wrote
          return Effect.flatMap(
            Effect.tapError(
              attempt("instance.saveState", () => selectGeneration.get(agentId)),
              () => forget(agentId)
            ),
            (row) =>
              row !== undefined && isPaged(row.layout) && row.generation === known.generation
                ? Effect.succeed(true)
                : commit(pending)
          )
        })
      })

    /**
     * What a delta save writes for page `data` over the run-form row `old`
     * (schema version 6): `null` when the row and its patch hold `data`
     * already; the row without its patch when `data` is the row's page
     * again; a patch (the words that differ from the row's page) when it
     * takes at most `Pages.patchLimit` bytes; `undefined` otherwise (the
     * page becomes a row of its own).
     */
    const patchEntry = (data: Uint8Array, old: Pages.PageWrite): KnownPage | null | undefined => {
      let patch: Uint8Array | undefined
      try {
        patch = Pages.patchAgainst(data, old, Pages.patchLimit(old.data.length))
      } catch {
        return undefined // a malformed row read back: written again
      }
      if (patch === undefined) return undefined
      const base = { index: old.index, hash: old.hash, compressed: old.compressed, data: old.data }
      if (patch.length === 0) return Pages.isPatched(old) ? base : null
      if (Pages.isPatched(old) && sameBytes(patch, old.patch)) return null
      const patched: Pages.PatchedPage = { ...base, patch, patchHash: Pages.storedHash(patch, old.index) }
      return patched
    }

    const corrupt = (agentId: AgentId, reason: string) =>
      new RepositoryError({
        operation: "instance.loadState",
        reason: `snapshot of agent ${JSON.stringify(agentId)} is corrupt: ${reason}`
      })

    const loadState = (agentId: AgentId): Effect.Effect<Option.Option<InstanceSnapshot>, RepositoryError> =>
      Effect.gen(function* () {
        flush() // a load sees every save issued before it
        const found = yield* read(db, "instance.loadState", () => {
          const row = selectHeader.get(agentId)
          if (row === undefined) return undefined
          const paged = isPaged(row.layout)
          return {
            row,
            pages: paged ? selectPages.all(agentId) : [],
            patches: paged ? selectPatches.all(agentId) : [] // all of them: one the header does not count is corruption
          }
        })
        if (found === undefined) return Option.none()
        const { row } = found
        if (!(row.snapshot instanceof Uint8Array)) {
          return yield* corrupt(agentId, `the column holds a ${typeof row.snapshot}, not a BLOB`)
        }
        const decoded =
          row.layout === Header.LAYOUT
            ? yield* Effect.try({
                try: () => Header.decode(row.snapshot),
                catch: (reason) => corrupt(agentId, String(reason))
              })
            : yield* Effect.mapError(Snapshots.decode(row.snapshot), (reason) => corrupt(agentId, reason))
        if (!isPaged(row.layout)) return Option.some(decoded) // a whole-snapshot row of schema version 3
        if (decoded.state.pages.length !== 0)
          return yield* corrupt(agentId, "the header row of a paged snapshot holds pages")
        const pages = yield* Effect.try({
          try: () =>
            Pages.readPages(found.pages, row.page_count, decoded.state.memoryBytes, found.patches, row.patch_count),
          catch: (reason) => corrupt(agentId, String(reason))
        })
        const known = new Map<number, KnownPage>(found.pages.map((p) => [p.page_index, Pages.knownRow(p)]))
        for (const patch of found.patches) {
          const base = known.get(patch.page_index) as Pages.PageWrite // a run-form row (`readPages` checked)
          const patched: Pages.PatchedPage = { ...base, patch: patch.data, patchHash: Buffer.from(patch.hash) }
          known.set(patch.page_index, patched)
        }
        saved.set(agentId, {
          generation: row.generation,
          header: row.snapshot,
          pages: known,
          patches: found.patches.length
        })
        const snapshot: InstanceSnapshot = { ...decoded, state: { ...decoded.state, pages } }
        return Option.some(snapshot)
      })

    const deleteState = (agentId: AgentId): Effect.Effect<void, RepositoryError> =>
      Effect.ensuring(
        // a save issued before the delete is written first: it cannot bring the agent back after it
        Effect.andThen(
          Effect.sync(flush),
          write(db, "instance.deleteState", () => {
            deletePages.run(agentId)
            deletePatches.run(agentId)
            remove.run(agentId)
          })
        ),
        Effect.sync(() => void saved.delete(agentId))
      )

    const listSaved: InstanceRepositories.InstanceRepositoryShape["listSaved"] = attempt("instance.listSaved", () => {
      flush()
      return selectIds.all().map((r) => r.agent_id as AgentId)
    })

    return {
      saveState,
      savePages,
      loadState,
      deleteState,
      listSaved
    } satisfies InstanceRepositories.InstanceRepositoryShape
  })

/** `InstanceRepository` on the shared `SqliteDatabase`, snapshots compressed. */
export const layerFromDatabase: Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =
  Layer.effect(
    InstanceRepository,
    SqliteDatabase.SqliteDatabase.use((database) => make(database))
  )

/** `InstanceRepository` on the shared `SqliteDatabase`, with options. */
export const layerFromDatabaseWith = (
  options: Options
): Layer.Layer<InstanceRepository, RepositoryError, SqliteDatabase.SqliteDatabase> =>
  Layer.effect(
    InstanceRepository,
    SqliteDatabase.SqliteDatabase.use((database) => make(database, options))
  )

/** `InstanceRepository` on its own connection to the database at `options.path` (closed with the layer). */
export const layer = (options: SqliteDatabase.Options & Options): Layer.Layer<InstanceRepository, RepositoryError> =>
  Layer.provide(layerFromDatabaseWith(options), SqliteDatabase.layer(options))
