/**
 * `keygen`, `sign` and `verify`: ed25519 module signatures from the command
 * line (`@agent-runtime/signing`: ed25519 over hash + name + version,
 * embedded in the `agent-runtime.signature` custom section or detached as a
 * `.sig` file). Each command takes its parsed options and resolves to the
 * exit code; failures are `Failure`s (one line on stderr).
 *
 * @since 0.1.0
 */
import {
  decodeKeyPair,
  encodeKeyPair,
  encodePublicKey,
  generateKeyPair,
  signDetached,
  signModule,
  verifyModule
} from "@agent-runtime/signing"
import * as Effect from "effect/Effect"
import { ExitCode, Failure, type Files, type Io, parseJson, readTrust, readWasm, run } from "./Files.js"

/** `keygen [--out key.json] [--force]`. */
export interface KeygenInput {
  readonly out: string | undefined
  readonly force: boolean
}

/** Prints a new key pair, or writes `out` (secret, mode 600) and `<out>.pub.json` (public). */
export const keygen = async (input: KeygenInput, io: Io, files: Files): Promise<number> => {
  const keyPair = generateKeyPair()
  const json = `${JSON.stringify(encodeKeyPair(keyPair), null, 2)}\n`
  if (input.out === undefined) {
    io.out(json.trimEnd())
    return ExitCode.ok
  }
  const pubPath = input.out.replace(/(\.json)?$/, ".pub.json")
  await files.refuseOverwrite(input.out, "a key file", input.force)
  await files.write(input.out, json, { secret: true })
  await files.write(pubPath, `${JSON.stringify(encodePublicKey(keyPair), null, 2)}\n`)
  io.out(`key ${keyPair.keyId}`)
  io.out(`wrote ${input.out} (secret key, keep private) and ${pubPath} (public key, for --trust)`)
  return ExitCode.ok
}

/** `sign <in.wasm> --key key.json --name N --version V [--out out.wasm] [--detached out.sig] [--force]`. */
export interface SignInput {
  readonly input: string
  readonly key: string
  readonly name: string
  readonly version: string
  readonly out: string | undefined
  readonly detached: string | undefined
  readonly force: boolean
}

/** Embeds a signature (default `--out <in>.signed.wasm`) and/or writes a detached one; never overwrites without `force`. */
export const sign = async (options: SignInput, io: Io, files: Files): Promise<number> => {
  const { input, key: keyPath, detached } = options
  const subject = { name: options.name, version: options.version }
  const keyPair = await run(
    decodeKeyPair(parseJson(keyPath, await files.read(keyPath))),
    (e) => `${keyPath}: ${e.reason}`
  )
  const { bytes } = await readWasm(files, input)
  const signError = (e: { message: string }) => `${input}: ${e.message}`
  const embedded = options.out !== undefined || detached === undefined
  const out = options.out ?? input.replace(/(\.wasm)?$/, ".signed.wasm")
  // Check every output before writing any, so a refusal leaves nothing half-done.
  if (detached !== undefined) await files.refuseOverwrite(detached, "an output file", options.force)
  if (embedded) await files.refuseOverwrite(out, "an output file", options.force)
  if (detached !== undefined) {
    const sig = await run(signDetached(bytes, subject, keyPair.secretKey), signError)
    await files.write(detached, sig)
    io.out(`signed ${subject.name}@${subject.version} with key ${keyPair.keyId}: wrote ${detached}`)
  }
  if (embedded) {
    const signed = await run(signModule(bytes, subject, keyPair.secretKey), signError)
    await files.write(out, signed)
    io.out(`signed ${subject.name}@${subject.version} with key ${keyPair.keyId}: wrote ${out}`)
  }
  return ExitCode.ok
}

/** `verify <file.wasm> --trust FILE… [--sig file.sig] --name N --version V [--allow-unsigned]`. */
export interface VerifyInput {
  readonly input: string
  readonly trust: ReadonlyArray<string>
  readonly sig: string | undefined
  readonly name: string
  readonly version: string
  readonly allowUnsigned: boolean
}

/** Exit 0 when a trusted key signed the module for `name@version`; exit 1 with the reason on stderr otherwise. */
export const verify = async (options: VerifyInput, io: Io, files: Files): Promise<number> => {
  const { input } = options
  if (options.trust.length === 0) throw new Failure("missing --trust")
  const subject = { name: options.name, version: options.version }
  const trustStore = await readTrust(files, options.trust)
  const signature = options.sig === undefined ? undefined : await files.read(options.sig)
  // No structural pre-check here: a module that a flipped byte made malformed is an invalid
  // signature subject (exit 1, "malformed module at byte N"), as the verifier reports it.
  const bytes = await files.read(input)
  const result = await Effect.runPromise(
    Effect.result(verifyModule(bytes, { ...subject, signature }, { trustStore, allowUnsigned: options.allowUnsigned }))
  )
  if (result._tag === "Failure") {
    io.err(`invalid: ${input}: ${result.failure.reason}`)
    return ExitCode.invalid
  }
  const { hash, keyId } = result.success
  if (keyId === undefined) {
    io.out(`valid (unsigned, allowed): ${subject.name}@${subject.version} hash ${hash}`)
  } else {
    const label = trustStore.get(keyId)?.label
    io.out(`valid: ${subject.name}@${subject.version} signed by ${keyId}${label === undefined ? "" : ` (${label})`}`)
    io.out(`hash ${hash}`)
  }
  return ExitCode.ok
}
