/**
 * Module metadata (spec `ModuleMetadata`): what the publisher says about a module.
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"

/**
 * `name` and `version` are covered by the module signature; `memoryPages` is
 * the publisher's estimate of the pages (64 KiB each) an instance needs;
 * `signature` carries a detached signature (otherwise it is read from the
 * module's `agent-runtime.signature` custom section).
 */
export class ModuleMetadata extends Schema.Class<ModuleMetadata>("ModuleMetadata")({
  name: Schema.String,
  version: Schema.String,
  author: Schema.optional(Schema.String),
  signature: Schema.optional(Schema.Uint8Array),
  memoryPages: Schema.Number,
  features: Schema.Array(Schema.String)
}) {}

/** Builds metadata with defaults (`memoryPages` 1, no features). */
export const makeMetadata = (input: {
  readonly name: string
  readonly version: string
  readonly author?: string | undefined
  readonly signature?: Uint8Array | undefined
  readonly memoryPages?: number | undefined
  readonly features?: ReadonlyArray<string> | undefined
}): ModuleMetadata =>
  new ModuleMetadata({
    name: input.name,
    version: input.version,
    ...(input.author === undefined ? {} : { author: input.author }),
    ...(input.signature === undefined ? {} : { signature: input.signature }),
    memoryPages: input.memoryPages ?? 1,
    features: input.features ?? []
  })
