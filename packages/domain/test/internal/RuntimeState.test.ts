import { describe, expect, it } from "@effect/vitest"
import { Equal, Schema } from "effect"
import { AgentSpawned, AgentStateChanged, DomainEvent, ModuleLoaded, RuntimeEvent } from "../../src/RuntimeEvent.js"
import type { AgentId, EventId, InstanceId, ModuleHash, ModuleId, RuntimeId } from "../../src/Ids.js"
import {
  envelope as envelopeOf,
  type RuntimeState,
  stampedEvent,
  trustedEvent
} from "../../src/internal/RuntimeState.js"

const envelope = { eventId: "rt-1:00000001:7" as EventId, timestamp: 1_700_000_000_000, runtimeId: "rt-1" as RuntimeId }

describe("trustedEvent (events built from typed fields without re-parsing them)", () => {
  it("is the event the schema constructor makes: class, _tag, fields, key order, JSON, equality, encoding", () => {
    const cases = [
      [
        AgentSpawned,
        {
          ...envelope,
          agentId: "a" as AgentId,
          moduleId: "m@1.0.0#abc" as ModuleId,
          instanceId: "a#1" as InstanceId,
          memoryAllocated: 1_048_576
        }
      ],
      [AgentStateChanged, { ...envelope, agentId: "a" as AgentId, from: "Starting", to: "Running" }],
      [
        ModuleLoaded,
        {
          ...envelope,
          moduleId: "m@1.0.0#abc" as ModuleId,
          moduleHash: "abc" as ModuleHash,
          size: 120,
          exports: ["run", "_initialize"],
          cacheHit: false
        }
      ]
    ] as const
    for (const [C, fields] of cases) {
      const trusted = trustedEvent(C as typeof AgentSpawned, fields as never)
      const parsed = new (C as typeof AgentSpawned)(fields as never)
      expect(trusted).toBeInstanceOf(C)
      expect(trusted._tag).toBe(parsed._tag)
      expect(Object.keys(trusted)).toEqual(Object.keys(parsed))
      expect(JSON.stringify(trusted)).toBe(JSON.stringify(parsed))
      expect(Equal.equals(trusted, parsed)).toBe(true)
      expect(Schema.encodeSync(RuntimeEvent)(trusted)).toEqual(Schema.encodeSync(RuntimeEvent)(parsed))
      // what crosses the wire decodes back to the same event
      const decoded = Schema.decodeUnknownSync(DomainEvent)(JSON.parse(JSON.stringify(trusted)))
      expect(decoded).toBeInstanceOf(C)
      expect(Equal.equals(decoded, trusted)).toBe(true)
    }
  })

  it("does not re-parse the fields: a module's export names are taken as given", () => {
    const exports = Object.freeze(Array.from({ length: 75_000 }, (_, i) => `f${i}`))
    const event = trustedEvent(ModuleLoaded, {
      ...envelope,
      moduleId: "big@1.0.0#abc" as ModuleId,
      moduleHash: "abc" as ModuleHash,
      size: 34_000_000,
      exports,
      cacheHit: true
    })
    expect(event.exports).toBe(exports)
    expect(event.exports).toHaveLength(75_000)
  })

  it("stampedEvent is trustedEvent over { ...envelope(state, now), ...fields }: same event, keys in the same order, next id", () => {
    const state = () => ({ id: "rt-1" as RuntimeId, nonce: "0000abcd", eventSeq: 41 }) as unknown as RuntimeState
    const cases = [
      [
        AgentSpawned,
        {
          agentId: "a" as AgentId,
          moduleId: "m@1.0.0#abc" as ModuleId,
          instanceId: "a#1" as InstanceId,
          memoryAllocated: 65_536
        }
      ],
      [AgentStateChanged, { agentId: "a" as AgentId, from: "Starting", to: "Running" }]
    ] as const
    for (const [C, fields] of cases) {
      const a = state()
      const b = state()
      const stamped = stampedEvent(a, C as typeof AgentSpawned, 1_700_000_000_123, fields as never)
      const spread = trustedEvent(
        C as typeof AgentSpawned,
        { ...envelopeOf(b, 1_700_000_000_123), ...(fields as object) } as never
      )
      const parsed = new (C as typeof AgentSpawned)({
        ...envelopeOf(state(), 1_700_000_000_123),
        ...(fields as object)
      } as never)
      expect(stamped).toBeInstanceOf(C)
      expect(stamped.eventId).toBe("rt-1:0000abcd:42")
      expect(a.eventSeq).toBe(42)
      expect(Object.keys(stamped)).toEqual(Object.keys(spread))
      expect(Object.keys(stamped)).toEqual(Object.keys(parsed))
      expect(JSON.stringify(stamped)).toBe(JSON.stringify(parsed))
      expect(Equal.equals(stamped, spread)).toBe(true)
      expect(Equal.equals(stamped, parsed)).toBe(true)
    }
  })
})
