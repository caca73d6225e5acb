/**
 * Progress of long work (a bundle of many modules, a bench run): a bar
 * redrawn in place (`cli-progress`) when the stream is a terminal, one
 * plain line per step otherwise (logs, CI), nothing when `silent`.
 *
 * @since 0.1.0
 */
import { SingleBar } from "cli-progress"

/** The small part of a stream progress needs (`process.stderr` fits). */
export interface ProgressStream {
  readonly write: (chunk: string) => unknown
  readonly isTTY?: boolean | undefined
  readonly columns?: number | undefined
}

/** One task's progress: `advance` after each of its `total` steps, `stop` at the end (or on failure). */
export interface Progress {
  /** One more step is done; `note` names it (a module, a suite). */
  readonly advance: (note?: string) => void
  /** Ends the bar (leaves it on screen, then a newline) or writes nothing more in line mode. */
  readonly stop: () => void
}

/** Options of `make`. */
export interface ProgressOptions {
  /** Where progress goes (default `process.stderr`). */
  readonly stream?: ProgressStream | undefined
  /** What the work is, e.g. `bundle` or `bench`. */
  readonly label: string
  /** The number of steps. */
  readonly total: number
  /** `bar` on a TTY, `lines` otherwise (the default by `stream.isTTY`); `silent` shows nothing. */
  readonly mode?: "bar" | "lines" | "silent" | undefined
}

/** A progress display of `total` steps (see the module doc). */
export const make = (options: ProgressOptions): Progress => {
  const stream = options.stream ?? process.stderr
  const mode = options.mode ?? (stream.isTTY === true ? "bar" : "lines")
  let done = 0
  if (mode === "silent") return { advance: () => void done++, stop: () => {} }
  if (mode === "lines") {
    return {
      advance: (note) => {
        done++
        stream.write(`${options.label}: ${done}/${options.total}${note === undefined ? "" : ` ${note}`}\n`)
      },
      stop: () => {}
    }
  }
  const bar = new SingleBar({
    stream: stream as NodeJS.WriteStream,
    format: `${options.label} {bar} {percentage}% {value}/{total} {note}`,
    barCompleteChar: "█",
    barIncompleteChar: "░",
    barsize: 28,
    hideCursor: false
  })
  bar.start(options.total, 0, { note: "" })
  let stopped = false
  return {
    advance: (note) => {
      done++
      bar.update(done, { note: note ?? "" })
    },
    stop: () => {
      if (stopped) return
      stopped = true
      bar.stop()
    }
  }
}
