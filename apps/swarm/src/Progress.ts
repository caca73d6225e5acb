/**
 * Progress of a swarm run, drawn on stderr so stdout carries only the
 * report: a redrawn progress bar when stderr is a terminal, occasional plain
 * lines otherwise (and always with `--json`), nothing with `--quiet`.
 *
 * `runSwarm` only emits `ProgressEvent`s; this module renders them.
 *
 * @since 0.1.0
 */

/** What the swarm reports while it runs. */
export type ProgressEvent =
  /** A phase starts with `total` steps (agents to spawn, tasks of a round). */
  | { readonly _tag: "Phase"; readonly name: string; readonly total: number }
  /** `done` steps of the current phase are finished. */
  | { readonly _tag: "Advance"; readonly done: number }
  /** A one-line summary (end of a phase, a notable event). */
  | { readonly _tag: "Note"; readonly message: string }

/** How progress is shown: a redrawn bar, plain lines, or not at all. */
export type ProgressMode = "bar" | "lines" | "silent"

/** The small part of a stream the renderer needs (`process.stderr` fits). */
export interface ProgressStream {
  readonly write: (chunk: string) => unknown
  readonly isTTY?: boolean | undefined
  readonly columns?: number | undefined
}

/** A renderer: feed it events, `close` it before printing the report. */
export interface ProgressRenderer {
  readonly onProgress: (event: ProgressEvent) => void
  readonly close: () => void
}

/** The mode for the options: silent with `quiet`, a bar only on a TTY without `json`, lines otherwise. */
export const modeFor = (options: { readonly json: boolean; readonly quiet: boolean; readonly tty: boolean }): ProgressMode =>
  options.quiet ? "silent" : options.tty && !options.json ? "bar" : "lines"

const BAR_WIDTH = 28
const REDRAW_MS = 50

/** A renderer on `stream` in `mode`. `now` (ms) throttles bar redraws. */
export const make = (
  stream: ProgressStream,
  mode: ProgressMode,
  now: () => number = () => performance.now()
): ProgressRenderer => {
  if (mode === "silent") return { onProgress: () => {}, close: () => {} }
  let phase = ""
  let total = 0
  let done = 0
  let lastDraw = -Infinity
  let drawn = false

  const clear = () => {
    if (drawn) stream.write("\r\x1b[2K")
    drawn = false
  }
  const draw = (force: boolean) => {
    const t = now()
    if (!force && t - lastDraw < REDRAW_MS) return
    lastDraw = t
    const ratio = total > 0 ? Math.min(1, done / total) : 1
    const filled = Math.round(ratio * BAR_WIDTH)
    const line = `${"█".repeat(filled)}${"░".repeat(BAR_WIDTH - filled)} ${String(Math.round(ratio * 100)).padStart(3)}% ${phase} ${done}/${total}`
    const width = stream.columns !== undefined && stream.columns > 0 ? stream.columns : 100
    stream.write(`\r\x1b[2K${line.slice(0, Math.max(20, width - 1))}`)
    drawn = true
  }

  const onProgress = (event: ProgressEvent) => {
    switch (event._tag) {
      case "Phase":
        phase = event.name
        total = event.total
        done = 0
        if (mode === "bar") draw(true)
        return
      case "Advance":
        done = event.done
        if (mode === "bar") draw(done >= total)
        return
      case "Note":
        if (mode === "bar") {
          clear()
          stream.write(`swarm: ${event.message}\n`)
          draw(true)
        } else {
          stream.write(`swarm: ${event.message}\n`)
        }
        return
    }
  }
  return { onProgress, close: () => (mode === "bar" ? clear() : undefined) }
}
