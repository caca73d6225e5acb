import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { ChildProcesses, waitExit } from "../src/ChildProcesses.js"

const sleeper = () => spawn(process.execPath, ["-e", "setInterval(() => {}, 1000)"], { stdio: "ignore" })

describe("ChildProcesses", () => {
  it("close kills every live child, waits for its exit and removes the handlers", async () => {
    const before = { int: process.listenerCount("SIGINT"), exit: process.listenerCount("exit") }
    const children = new ChildProcesses()
    children.open()
    expect(process.listenerCount("SIGINT")).toBe(before.int + 1)
    const a = children.add(sleeper())
    const b = children.add(sleeper())
    await children.close()
    expect(a.signalCode).toBe("SIGKILL")
    expect(b.signalCode).toBe("SIGKILL")
    expect(process.listenerCount("SIGINT")).toBe(before.int)
    expect(process.listenerCount("exit")).toBe(before.exit)
  })

  it("a child that exited on its own is dropped and not signalled", async () => {
    const children = new ChildProcesses()
    const done = children.add(spawn(process.execPath, ["-e", "0"], { stdio: "ignore" }))
    await waitExit(done)
    expect(done.exitCode).toBe(0)
    await children.close()
    expect(done.signalCode).toBeNull()
  })
})
