import { afterAll, describe, expect, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { NodeEngine } from "../src/index.js"
import { call, instantiateAgent, instantiateWat, PAGE } from "./helpers.js"

const MANY = `(module
  (import "env" "many" (func $many (param i32 i64 f32 f64) (result i64 f64 i32)))
  (import "env" "tick" (func $tick (result i32)))
  (memory (export "memory") 1 8)
  (func (export "many") (param i32 i64 f32 f64) (result i64 f64 i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $many)
  (func (export "busy") (param $ms i32) (result i32) (local $n i32)
    ;; spins, asking the host for ticks, until the host says stop (tick returns 0)
    (block $done (loop $again
      (br_if $done (i32.eqz (call $tick)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $again)))
    local.get $n)
  (func (export "grow") (param i32) (result i32) local.get 0 memory.grow))`

for (const [channel, channelBytes] of [
  ["shared", undefined],
  ["shared", 64],
  ["message", undefined]
] as const) {
  describe(`call channel: ${channel}${channelBytes === undefined ? "" : `, ${channelBytes}-byte buffer (messages go through the port)`}`, () => {
    const engine = NodeEngine.make({ workers: 2, channel, channelBytes })
    afterAll(() => Effect.runPromise(engine.shutdown))

    it.effect("host calls carry every value type both ways (i64 as bigint, multi-value results)", () =>
      Effect.gen(function* () {
        const seen: Array<unknown> = []
        const i = yield* instantiateWat(engine, MANY, {
          imports: {
            env: {
              many: (a: number, b: bigint, c: number, d: number) => {
                seen.push([a, b, c, d])
                return [b * 2n, d / 2, a + 1]
              },
              tick: () => 0
            }
          }
        })
        expect(yield* call(i, "many", -5, 2n ** 40n, 1.5, 3.0)).toEqual([2n ** 41n, 1.5, -4])
        expect(seen).toEqual([[-5, 2n ** 40n, 1.5, 3]])
      })
    )

    it.effect("tens of thousands of host calls in a row all arrive, in order (no lost or early wake-up)", () =>
      Effect.gen(function* () {
        let expected = 0
        let outOfOrder = 0
        const h = yield* instantiateAgent(engine, "host-caller", {
          env: { log: (x: number) => void (x === expected++ ? 0 : outOfOrder++), now: () => 0 }
        })
        for (let round = 0; round < 3; round++) {
          expected = 0
          expect(yield* call(h, "log_n", 30_000)).toEqual([30_000])
          expect(expected).toBe(30_000)
        }
        expect(outOfOrder).toBe(0)
      })
    )

    it.effect("the host's event loop runs while a guest computes and while it waits for host calls", () =>
      Effect.gen(function* () {
        let ticks = 0
        let started: number | undefined
        const timer = setInterval(() => ticks++, 5)
        const i = yield* instantiateWat(engine, MANY, {
          imports: {
            env: {
              many: () => [0n, 0, 0],
              tick: () => (performance.now() - (started ??= performance.now()) < 300 ? 1 : 0)
            }
          }
        })
        const looper = yield* instantiateAgent(engine, "looper")
        const busy = yield* Effect.forkChild(call(i, "busy", 0))
        const spinning = yield* Effect.forkChild(call(looper, "spin_n", 30_000_000))
        const [n] = (yield* Fiber.join(busy)) as [number]
        const [iterations] = (yield* Fiber.join(spinning)) as [number]
        clearInterval(timer)
        expect(n).toBeGreaterThan(0) // host calls completed during the window (throughput is not asserted: shared CI machine)
        expect(iterations).toBe(30_000_000)
        expect(ticks).toBeGreaterThan(5)
      })
    )

    it.effect("large payloads: a multi-page snapshot, restore and a 512 KiB read", () =>
      Effect.gen(function* () {
        const i = yield* instantiateWat(engine, MANY, { imports: { env: { many: () => [0n, 0, 0], tick: () => 0 } } })
        yield* call(i, "grow", 7)
        const pattern = new Uint8Array(8 * PAGE).map((_, k) => (k % 251) + 1)
        yield* i.writeMemory(0, pattern)
        const snap = yield* i.snapshot
        expect(snap.pages).toHaveLength(8)
        yield* i.writeMemory(0, new Uint8Array(8 * PAGE))
        yield* i.restore(snap)
        const back = yield* i.readMemory(0, 8 * PAGE)
        expect(Buffer.from(back).equals(Buffer.from(pattern))).toBe(true)
      })
    )

    it.effect("a long error message and a non-ASCII export name cross intact", () =>
      Effect.gen(function* () {
        const reason = "ü".repeat(500)
        const i = yield* instantiateWat(
          engine,
          `(module (import "env" "boom" (func $b)) (func (export "名前") call $b))`,
          {
            imports: {
              env: {
                boom: () => {
                  throw new Error(reason)
                }
              }
            }
          }
        )
        const e = yield* Effect.flip(i.invoke("名前", []))
        expect(e.message).toBe(`名前 trapped: host function threw: ${reason}`)
      })
    )
  })
}
