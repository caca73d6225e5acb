#!/usr/bin/env node
// `pnpm test` (and `./dev test`): every package's lint, typecheck and test, the API reference (docs),
// Biome's lint and format check and the release dry run, through turbo, with
// progress a person can follow and a summary at the end.
//
// - Runs everything even after a failure (`--continue`), two tasks at a time (2-core machines).
// - Prints one line per finished task (✓/✗, vitest's pass counts) as it finishes (turbo's grouped
//   log order hands over a task's output when it ends), and a heartbeat every 30 s so a long suite
//   never looks hung.
// - At the end: the full output of every failed task, then a summary (passed / failed / cached).
// - SIGINT / SIGTERM are forwarded to turbo's process group, so no test server outlives this.
// Extra arguments go to turbo (for example `--filter @agent-runtime/domain`).
import { spawn } from "node:child_process"

const started = Date.now()
const seconds = (ms) => `${(ms / 1000).toFixed(0)} s`
const args = [
  "exec",
  "turbo",
  "run",
  "lint",
  "typecheck",
  "test",
  "docs",
  "lint:biome",
  "format:check",
  "release:dry-run",
  "--concurrency=2",
  "--continue",
  "--output-logs=full",
  "--log-order=grouped",
  "--log-prefix=task",
  ...process.argv.slice(2)
]
const child = spawn("pnpm", args, { stdio: ["ignore", "pipe", "pipe"], detached: true, env: process.env })

/** @type {Map<string, { start: number, lines: string[], counts: string[], cached: boolean, done: boolean }>} */
const tasks = new Map()
const prefixRe = /^(@?[\w./-]+:[\w-]+(?::[\w-]+)*?):(?: (.*))?$/ // task names may hold colons (//:lint:biome)
// eslint-disable-next-line no-control-regex
const ansi = /\u001b\[[0-9;]*[A-Za-z]/g
let tail = []
/** @type {[string, any] | undefined} */
let last

const taskOf = (name) => {
  let t = tasks.get(name)
  if (t === undefined) {
    t = { start: Date.now(), lines: [], counts: [], cached: false, done: false }
    tasks.set(name, t)
    // grouped order: a new task's output begins when the previous task's has ended
    if (last !== undefined && !last[1].done) report(last[0], last[1])
    last = [name, t]
  }
  return t
}

const onLine = (raw) => {
  const line = raw.replace(ansi, "")
  const m = prefixRe.exec(line)
  if (m === null) {
    tail.push(line)
    if (tail.length > 40) tail = tail.slice(-40)
    return
  }
  const [, name, text = ""] = m
  const t = taskOf(name)
  t.lines.push(text)
  if (/cache hit, replaying/.test(text)) t.cached = true
  if (/^\s*(Test Files|Tests)\s+\d/.test(text))
    t.counts.push(
      text
        .trim()
        .replace(/\s+/g, " ")
        .replace(/\(\d+\)$/, "")
        .trim()
    )
}

const pipe = (stream) => {
  let buf = ""
  stream.setEncoding("utf8")
  stream.on("data", (chunk) => {
    buf += chunk
    let i
    while ((i = buf.indexOf("\n")) >= 0) {
      onLine(buf.slice(0, i))
      buf = buf.slice(i + 1)
    }
  })
  stream.on("end", () => buf.length > 0 && onLine(buf))
}
pipe(child.stdout)
pipe(child.stderr)

const failedRe = /command finished with error|ERR_PNPM|ELIFECYCLE/
const heartbeat = setInterval(() => {
  const done = [...tasks.values()].filter((t) => t.done).length
  process.stdout.write(`… ${seconds(Date.now() - started)}: ${done} tasks finished, still running\n`)
}, 30_000)

const failed = (t) => t.lines.some((l) => failedRe.test(l))

function report(name, t) {
  t.done = true
  const mark = failed(t) ? "✗" : "✓"
  const counts = t.counts.length > 0 ? `  ${t.counts.join("; ")}` : ""
  process.stdout.write(`${mark} ${name}${t.cached ? " (cached)" : ""}${counts}  [${seconds(Date.now() - started)}]\n`)
}

const stop = (signal) => {
  try {
    process.kill(-child.pid, signal)
  } catch {}
}
process.on("SIGINT", () => stop("SIGINT"))
process.on("SIGTERM", () => stop("SIGTERM"))

child.on("exit", (code, signal) => {
  clearInterval(heartbeat)
  for (const [name, t] of tasks) if (!t.done) report(name, t)
  const bad = [...tasks].filter(([, t]) => failed(t))
  for (const [name, t] of bad) {
    process.stdout.write(`\n──── ${name} (failed) ────\n${t.lines.slice(-300).join("\n")}\n`)
  }
  const cached = [...tasks.values()].filter((t) => t.cached).length
  process.stdout.write(`\n${tail.filter((l) => /Tasks:|Cached:|Failed:|Time:/.test(l)).join("\n")}\n`)
  process.stdout.write(
    `summary: ${tasks.size - bad.length} of ${tasks.size} tasks passed (${cached} cached)` +
      (bad.length > 0 ? `; FAILED: ${bad.map(([n]) => n).join(", ")}` : "") +
      ` in ${seconds(Date.now() - started)}\n`
  )
  process.exit(signal !== null ? 1 : (code ?? 1))
})
