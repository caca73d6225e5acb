/**
 * The typed errors of the synchronous instance core (`internal/core.ts`) as
 * plain tagged `Error`s: the same `_tag`, fields and message as the domain's
 * `Trap`, `FunctionNotFound`, `FuelExhausted`, `MemoryExceeded` and
 * `InstantiationError` (`@agent-runtime/domain` RuntimeError), without
 * Schema, so the code that runs inside a worker stays small. In-process
 * engines map them to the domain's classes at the port (`Instance.toDomainError`);
 * worker engines send them as `Protocol.ErrorWire` tuples and the host builds
 * the domain's classes from those.
 *
 * @since 0.3.0
 */

/** The guest trapped: `reason` is the engine's trap message. */
export class Trap extends Error {
  readonly _tag = "Trap" as const
  readonly function: string
  readonly reason: string
  constructor(args: { readonly function: string; readonly reason: string }) {
    super()
    this.function = args.function
    this.reason = args.reason
  }
  override get message() {
    return `${this.function} trapped: ${this.reason}`
  }
}

/** No exported function of that name. */
export class FunctionNotFound extends Error {
  readonly _tag = "FunctionNotFound" as const
  readonly function: string
  constructor(args: { readonly function: string }) {
    super()
    this.function = args.function
  }
  override get message() {
    return `no exported function named ${JSON.stringify(this.function)}`
  }
}

/** The call ran out of fuel (`fuel`: the units it was given). */
export class FuelExhausted extends Error {
  readonly _tag = "FuelExhausted" as const
  readonly function: string
  readonly fuel: number
  constructor(args: { readonly function: string; readonly fuel: number }) {
    super()
    this.function = args.function
    this.fuel = args.fuel
  }
  override get message() {
    return `${this.function} ran out of fuel (${this.fuel} units)`
  }
}

/** Linear memory above the budget, bytes. */
export class MemoryExceeded extends Error {
  readonly _tag = "MemoryExceeded" as const
  readonly agentId: string
  readonly used: number
  readonly limit: number
  constructor(args: { readonly agentId: string; readonly used: number; readonly limit: number }) {
    super()
    this.agentId = args.agentId
    this.used = args.used
    this.limit = args.limit
  }
  override get message() {
    return `agent ${this.agentId} uses ${this.used} bytes, above its budget of ${this.limit} bytes`
  }
}

/** Instantiation failed (a missing or ill-typed import, memory that cannot be allocated, …). */
export class InstantiationError extends Error {
  readonly _tag = "InstantiationError" as const
  readonly reason: string
  constructor(args: { readonly reason: string }) {
    super()
    this.reason = args.reason
  }
  override get message() {
    return `instantiation failed: ${this.reason}`
  }
}

/** Any error of the core. */
export type CoreError = Trap | FunctionNotFound | FuelExhausted | MemoryExceeded | InstantiationError
