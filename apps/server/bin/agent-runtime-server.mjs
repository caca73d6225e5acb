#!/usr/bin/env node
// Runs the server from source (node --conditions=@agent-runtime/source --import tsx src/main.ts),
// forwarding SIGINT/SIGTERM to it and exiting with its code, so stopping this PID stops the server.
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"

const entry = fileURLToPath(new URL("../src/main.ts", import.meta.url))
const tsx = import.meta.resolve("tsx")
const child = spawn(process.execPath, ["--conditions=@agent-runtime/source", "--import", tsx, entry, ...process.argv.slice(2)], {
  stdio: "inherit"
})
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal))
// `pnpm start` runs this under `sh -c`: when pnpm is killed the shell dies without passing the signal on,
// and this process is re-parented; drain the server then too, so stopping the PID you started stops it.
const parent = process.ppid
setInterval(() => {
  if (process.ppid !== parent) child.kill("SIGTERM")
}, 250).unref()
child.on("exit", (code, signal) => process.exit(code ?? (signal === "SIGINT" ? 130 : signal === null ? 1 : 143)))
