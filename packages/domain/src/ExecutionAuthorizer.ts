/**
 * The `ExecutionAuthorizer` port: the Security context's anti-corruption
 * layer for execution (spec "Context Map": "execution authorization").
 *
 * The runtime asks before spawning an agent of a module, before granting
 * each host import a module asks for, and — when `checksInvocations` is
 * true — before each invocation. `layerAllowAll` permits everything (the
 * embedded default; suitable for trusted, signed agents).
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type { AgentId, ModuleHash } from "./Ids.js"
import type { Unauthorized } from "./RuntimeError.js"

/** What is being asked for. `subject` is the module name, the `module.field` of an import, or the export name. */
export type ExecutionRequest =
  | { readonly action: "spawn"; readonly agentId: AgentId; readonly moduleHash: ModuleHash; readonly subject: string }
  | { readonly action: "import"; readonly agentId: AgentId; readonly moduleHash: ModuleHash; readonly subject: string }
  | { readonly action: "invoke"; readonly agentId: AgentId; readonly subject: string }

export interface ExecutionAuthorizerShape {
  /** Succeeds when allowed, fails with `Unauthorized` otherwise. */
  readonly authorize: (request: ExecutionRequest) => Effect.Effect<void, Unauthorized>
  /** Whether `invoke` requests must be asked (false skips the per-call check on the hot path). */
  readonly checksInvocations: boolean
  /**
   * Optional synchronous check made on every call of a granted host import
   * (`subject` = `"module.name"`): `false` means the grant was revoked — the
   * call fails with `Unauthorized` and the agent is evicted with
   * `PolicyViolation`.
   */
  readonly isGranted?: ((agentId: AgentId, subject: string) => boolean) | undefined
}

/** The `ExecutionAuthorizer` service key. */
export class ExecutionAuthorizer extends Context.Service<ExecutionAuthorizer, ExecutionAuthorizerShape>()(
  "@agent-runtime/domain/ExecutionAuthorizer"
) {}

/** Allows everything. */
export const allowAll: ExecutionAuthorizerShape = { authorize: () => Effect.void, checksInvocations: false }

/** The allow-all layer (the embedded default). */
export const layerAllowAll: Layer.Layer<ExecutionAuthorizer> = Layer.succeed(ExecutionAuthorizer, allowAll)
