import { describe, expect, it } from "@effect/vitest"
import { parse, parseBytes, ServerConfigInvalid } from "../src/ServerConfig.js"

describe("ServerConfig", () => {
  it("reads flags over environment variables over defaults", () => {
    const config = parse(["--", "--port", "9000", "--engine=node", "--trust", "test-only"], {
      PORT: "1234",
      NATS_URL: "nats://127.0.0.1:4222",
      AGENT_RUNTIME_MEMORY: "256MiB",
      AGENT_RUNTIME_HOST_ID: "h-1"
    })
    expect(config).toMatchObject({
      port: 9000,
      engine: "node",
      natsUrl: "nats://127.0.0.1:4222",
      memoryBytes: 256 * 1024 * 1024,
      hostId: "h-1",
      host: "127.0.0.1",
      drainTimeoutMs: 30_000,
      trust: "test-only",
      db: undefined
    })
  })

  it("refuses what it cannot use with ServerConfigInvalid naming the option", () => {
    const invalid = (argv: ReadonlyArray<string>, env: Record<string, string> = {}) => {
      try {
        parse(argv, env)
      } catch (e) {
        expect(e).toBeInstanceOf(ServerConfigInvalid)
        return (e as ServerConfigInvalid).option
      }
      throw new Error(`accepted ${argv.join(" ")}`)
    }
    expect(invalid(["--port", "0"])).toBe("--trust")
    expect(invalid(["--trust", "test-only", "--engine", "wasmtime"])).toBe("--engine")
    expect(invalid(["--trust", "test-only", "--port", "70000"])).toBe("--port")
    expect(invalid(["--trust", "test-only", "--bogus", "1"])).toBe("--bogus")
    expect(invalid(["--trust", "test-only", "--port"])).toBe("--port")
    expect(invalid(["--trust", "test-only", "--host-id", "a.b"])).toBe("--host-id")
    expect(invalid(["--trust", "test-only", "--db", "x.sqlite"], { NATS_URL: "nats://x" })).toBe("--db")
    expect(invalid(["--trust", "test-only", "--memory", "lots"])).toBe("--memory")
  })

  it("parses byte sizes with binary and decimal suffixes", () => {
    expect(parseBytes("m", "1GiB")).toBe(1024 ** 3)
    expect(parseBytes("m", "512kb")).toBe(512_000)
    expect(parseBytes("m", "4096")).toBe(4096)
  })
})
