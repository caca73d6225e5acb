/**
 * Progress of a swarm run, drawn on stderr so stdout carries only the
 * report: a redrawn progress bar (`cli-progress`, notes printed above it)
 * when stderr is a terminal, occasional plain lines otherwise (and always
 * with `--json`), nothing with `--quiet`.
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

import { MultiBar } from "cli-progress"

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
export const modeFor = (options: {
  readonly json: boolean
  readonly quiet: boolean
  readonly tty: boolean
}): ProgressMode => (options.quiet ? "silent" : options.tty && !options.json ? "bar" : "lines")

/** A renderer on `stream` in `mode`. */
export const make = (stream: ProgressStream, mode: ProgressMode): ProgressRenderer => {
  if (mode === "silent") return { onProgress: () => {}, close: () => {} }
  if (mode === "lines") {
    return {
      onProgress: (event) => {
        if (event._tag === "Note") stream.write(`swarm: ${event.message}\n`)
      },
      close: () => {}
    }
  }
  // one bar (the current phase) with the notes logged above it; cleared on close so the report follows
  const bars = new MultiBar({
    stream: stream as NodeJS.WriteStream,
    format: "{bar} {percentage}% {phase} {value}/{total}",
    barCompleteChar: "█",
    barIncompleteChar: "░",
    barsize: 28,
    fps: 20,
    clearOnComplete: true,
    hideCursor: false
  })
  let bar: ReturnType<MultiBar["create"]> | undefined
  let closed = false
  const onProgress = (event: ProgressEvent) => {
    if (closed) return
    switch (event._tag) {
      case "Phase":
        if (bar === undefined) bar = bars.create(event.total, 0, { phase: event.name })
        else {
          bar.setTotal(event.total)
          bar.update(0, { phase: event.name })
        }
        bars.update()
        return
      case "Advance":
        bar?.update(event.done)
        if (bar !== undefined && event.done >= bar.getTotal()) bars.update() // the full bar shows at once
        return
      case "Note":
        bars.log(`swarm: ${event.message}\n`)
        bars.update()
        return
    }
  }
  return {
    onProgress,
    close: () => {
      if (closed) return
      closed = true
      bars.stop()
    }
  }
}
