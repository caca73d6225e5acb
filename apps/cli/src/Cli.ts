/**
 * The `agent-runtime` command line: `keygen`, `sign`, `verify`, `inspect`,
 * `bundle`, `run` — declared with Effect's CLI module (`effect/cli`:
 * `Command`, `Flag`, `Argument`), which parses the typed options and writes
 * `--help` (for every command) and `--completions bash|zsh|fish|sh|pwsh`.
 *
 * `main(argv, io)` runs one command and resolves to the process exit code
 * (`ExitCode`):
 * - 0 success. For `verify`: a trusted key signed the module. For `inspect`:
 *   the module is well-formed, whatever its signature status (inspect
 *   reports it) — unless `--trust` is given. For `run`: the call returned.
 * - 1 the signature does not verify: `verify`, `bundle`, `run --trust`, and
 *   `inspect --trust` when the signature is missing, malformed, tampered,
 *   untrusted or bad (the report is still printed; the reason is one line on
 *   stderr).
 * - 2 bad usage or bad input (unknown command or option, missing argument,
 *   missing file, not a WebAssembly module — with the byte offset —,
 *   malformed key file, `sign`/`keygen` output that exists without `--force`).
 * - 3–7 the typed failures of `run` (`Run.ts`), 70 an internal error.
 * Errors are one line on stderr, never a stack trace. Signatures follow
 * `@agent-runtime/signing` (ed25519 over hash + name + version, embedded in
 * the `agent-runtime.signature` custom section or detached as a `.sig` file).
 *
 * @since 0.1.0
 */
import * as NodeServices from "@effect/platform-node/NodeServices"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Argument from "effect/cli/Argument"
import * as CliConfig from "effect/cli/CliConfig"
import * as CliError from "effect/cli/CliError"
import * as CliOutput from "effect/cli/CliOutput"
import * as Command from "effect/cli/Command"
import * as Flag from "effect/cli/Flag"
import * as GlobalFlag from "effect/cli/GlobalFlag"
import { bundleCommand } from "./Bundle.js"
import { ExitCode, Failure, type Files, type Io, makeFiles } from "./Files.js"
import { inspect } from "./Inspect.js"
import { parseDuration, parseSize, runCommand } from "./Run.js"
import { keygen, sign, verify } from "./Signatures.js"

export { ExitCode, type Io } from "./Files.js"

/** The version `--help` and the completions scripts report. */
const VERSION = "0.1.0"

/** What a handler gets: the caller's output and files, and where its exit code goes. */
interface Context {
  readonly io: Io
  readonly files: Files
  readonly exit: (code: number) => void
}

/** A handler's failure: the `Failure` (one line, exit code) or a defect, carried to `main`. */
class HandlerFailed {
  readonly _tag = "HandlerFailed"
  constructor(readonly error: unknown) {}
}

/** Runs an async command body as the handler; its resolved number is the exit code. */
const handler =
  <A>(ctx: Context, body: (input: A, io: Io, files: Files) => Promise<number>) =>
  (input: A) =>
    Effect.tryPromise({ try: () => body(input, ctx.io, ctx.files), catch: (e) => new HandlerFailed(e) }).pipe(
      Effect.map(ctx.exit)
    )

/** A string flag that may be given at most once in meaning: the last occurrence wins (like `node:util` parseArgs). */
const last = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.atLeast(1),
    Flag.map((values) => values[values.length - 1]!),
    Flag.withDescription(description)
  )
const lastOptional = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.atLeast(0),
    Flag.map((values) => values[values.length - 1]),
    Flag.withDescription(description)
  )
const repeated = (name: string, description: string) =>
  Flag.String(name).pipe(Flag.atLeast(0), Flag.withDescription(description))
const bool = (name: string, description: string) =>
  Flag.Boolean(name).pipe(Flag.withDefault(false), Flag.withDescription(description))
const TRUST =
  'a trust store ({ "keys": [...] }), a key or public key file from keygen, or a bare 64-hex public key; repeatable'

/** The command tree, with handlers writing to `ctx`. */
const commandFor = (ctx: Context) => {
  const keygenCommand = Command.make(
    "keygen",
    {
      out: lastOptional(
        "out",
        "write the key pair to this file (secret, mode 600) and its public key to <out>.pub.json"
      ),
      force: bool("force", "overwrite existing key files")
    },
    handler(ctx, keygen)
  ).pipe(
    Command.withDescription(
      "Generate an ed25519 key pair; prints it, or writes key.json (secret) and key.pub.json (public) with --out."
    )
  )

  const signCommand = Command.make(
    "sign",
    {
      input: Argument.String("in.wasm").pipe(Argument.withDescription("the module to sign")),
      key: last("key", "the key pair file from keygen"),
      name: last("name", "the module name the signature covers"),
      version: last("version", "the module version the signature covers"),
      out: lastOptional("out", "the signed module (default: <in>.signed.wasm)"),
      detached: lastOptional("detached", "write a detached signature to this .sig file instead of embedding one"),
      force: bool("force", "overwrite existing outputs")
    },
    handler(ctx, sign)
  ).pipe(
    Command.withDescription(
      "Embed a signature (default --out: <in>.signed.wasm) or write a detached one; never overwrites an existing file without --force."
    )
  )

  const verifyCommand = Command.make(
    "verify",
    {
      input: Argument.String("file.wasm").pipe(Argument.withDescription("the module to verify")),
      trust: repeated("trust", TRUST),
      sig: lastOptional("sig", "a detached signature file"),
      name: last("name", "the module name the signature must cover"),
      version: last("version", "the module version the signature must cover"),
      allowUnsigned: bool("allow-unsigned", "accept a module without any signature (a bad one is still refused)")
    },
    handler(ctx, verify)
  ).pipe(
    Command.withDescription("Exit 0 when a trusted key signed this module for N@V, 1 (with the reason) otherwise.")
  )

  const inspectCommand = Command.make(
    "inspect",
    {
      input: Argument.String("file.wasm").pipe(Argument.withDescription("the module to inspect")),
      json: bool("json", "print the report as JSON"),
      trust: repeated("trust", `check the signature against these keys (exit 1 unless trusted): ${TRUST}`),
      sig: lastOptional("sig", "a detached signature file")
    },
    handler(ctx, inspect)
  ).pipe(
    Command.withDescription(
      "Exports and imports with their types, memories, custom sections, hash and signature status; exit 0 for any well-formed module, but with --trust exit 1 unless a trusted key signed it."
    )
  )

  const bundle = Command.make(
    "bundle",
    {
      config: Argument.String("config.json").pipe(
        Argument.withDescription("the bundle config (modules, agents, variants, limits, trust)")
      ),
      out: last("out", "the output directory"),
      trust: repeated("trust", TRUST),
      allowUnsigned: bool("allow-unsigned", "admit unsigned modules")
    },
    handler(ctx, bundleCommand)
  ).pipe(
    Command.withDescription(
      "Verify, rewrite (memory cap, fuel, state exports) and precompile-ready the modules of an edge bundle: writes <dir>/manifest.json, wasm/<digest>.wasm, modules/<hash>.bin and bundle.js for a Worker."
    )
  )

  const runCmd = Command.make(
    "run",
    {
      module: Argument.String("module.wasm").pipe(Argument.withDescription("the module to load")),
      export: Argument.String("export").pipe(
        Argument.optional,
        Argument.map(Option.getOrUndefined),
        Argument.withDescription("the export to invoke (with --wasi: the first argv entry after the program name)")
      ),
      args: Argument.String("args").pipe(
        Argument.variadic(),
        Argument.withDescription("the arguments, read by the export's signature: i32/f32/f64 numbers, i64 bigints")
      ),
      memory: Flag.String("memory").pipe(
        Flag.withDefault("16MiB"),
        Flag.mapEffect((text) => {
          const bytes = parseSize(text)
          return bytes === undefined
            ? Effect.fail(
                new CliError.InvalidValue({
                  option: "memory",
                  value: text,
                  expected: "a size such as 16MiB, 512KiB, 1048576",
                  kind: "flag"
                })
              )
            : Effect.succeed(bytes)
        }),
        Flag.withDescription("the agent's memory budget (1MiB..512MiB)")
      ),
      fuel: Flag.Int("fuel").pipe(
        Flag.optional,
        Flag.map(Option.getOrUndefined),
        Flag.withDescription("fuel units per call (stops runaway guests: FuelExhausted)")
      ),
      timeoutMs: Flag.String("timeout").pipe(
        Flag.optional,
        Flag.mapEffect((text) => {
          if (Option.isNone(text)) return Effect.succeed(undefined)
          const ms = parseDuration(text.value)
          return ms === undefined
            ? Effect.fail(
                new CliError.InvalidValue({
                  option: "timeout",
                  value: text.value,
                  expected: "a duration such as 200ms, 2s",
                  kind: "flag"
                })
              )
            : Effect.succeed(ms)
        }),
        Flag.withDescription("deadline per call, preemptive on --engine node (Timeout)")
      ),
      engine: Flag.Literals("engine", ["native", "node"]).pipe(
        Flag.optional,
        Flag.map(Option.getOrUndefined),
        Flag.withDescription(
          "native: in-process (default); node: worker threads, preemptive timeouts, WASI (default with --wasi)"
        )
      ),
      trust: repeated(
        "trust",
        `verify the module against these keys first (without --trust the module is NOT verified: unsigned modules run): ${TRUST}`
      ),
      sig: lastOptional("sig", "a detached signature file"),
      json: bool("json", "print one JSON object: { ok, results | error, exitCode }"),
      wasi: bool(
        "wasi",
        "run a WASI command's _start on the node engine; positionals (and everything after --) are its argv"
      ),
      dirs: repeated("dir", "--wasi: preopen host directory as guest path, host::guest; repeatable"),
      env: repeated("env", "--wasi: an environment variable K=V; repeatable")
    },
    handler(ctx, runCommand)
  ).pipe(
    Command.withDescription(
      "Load (verify with --trust), spawn and invoke one export; prints the results ([41]) or the typed error (Trap: …). Exit codes: 0 ok, 1 InvalidSignature, 2 usage or input, 3 FunctionNotFound/SignatureMismatch, 4 Trap/InstantiationError, 5 FuelExhausted, 6 Timeout, 7 MemoryExceeded/InsufficientMemory; with --wasi the guest's proc_exit code."
    ),
    Command.withExamples([
      { command: "agent-runtime run counter.wasm add 41", description: "prints [41]" },
      { command: "agent-runtime run looper.wasm spin --fuel 100000", description: "FuelExhausted, exit 5" },
      {
        command: "agent-runtime run app.wasm --wasi --dir ./data::/data --env MODE=test -- --verbose",
        description: "a WASI command"
      }
    ])
  )

  return Command.make("agent-runtime").pipe(
    Command.withDescription("Sign, verify, inspect, bundle and run WebAssembly agent modules."),
    Command.withSubcommands([keygenCommand, signCommand, verifyCommand, inspectCommand, bundle, runCmd])
  )
}

/** The names of the commands, for the unknown-command message. */
const COMMANDS = ["keygen", "sign", "verify", "inspect", "bundle", "run"] as const

/** One line for a parse error (the wording the hand-written parser had, so scripts keep matching). */
const describeParseError = (e: CliError.NonShowHelpErrors, commandPath: ReadonlyArray<string>): string => {
  switch (e._tag) {
    case "UnknownSubcommand":
      return `unknown command ${JSON.stringify(e.subcommand)} (commands: ${COMMANDS.join(", ")})`
    case "UnrecognizedOption":
      return `Unknown option '${e.option}'${commandPath.length > 1 ? ` (see agent-runtime ${commandPath.slice(1).join(" ")} --help)` : ""}`
    case "MissingOption":
      return e.option === "out" && commandPath[1] === "bundle" ? "missing --out <dir>" : `missing --${e.option}`
    case "MissingArgument":
      return `missing <${e.argument}>`
    case "UnexpectedArgument":
      return `unexpected argument ${e.arguments[0]}`
    default:
      return e.message.split("\n")[0]!
  }
}

/**
 * Help goes to `io.out` when asked for (`--help`, `help [command]`); help the
 * module shows on its own (no command, or a parse error) is kept in
 * `implicit.text` for `main`, which prints it to `io.err` only when the
 * command line names no command (a parse error is one line).
 */
const presenter = (io: Io, implicit: { text: string | undefined }): CliOutput.Presenter => {
  const formatter = CliOutput.defaultFormatter({ colors: false })
  return {
    present: (event) =>
      Effect.sync(() => {
        if (event._tag === "Version") io.out(formatter.formatVersion(event.name, event.version))
        else if (event._tag === "Help" && event.reason === "Requested")
          io.out(formatter.formatHelpDoc(event.helpDoc).trimEnd())
        else if (event._tag === "Help") implicit.text = formatter.formatHelpDoc(event.helpDoc).trimEnd()
      })
  }
}

/**
 * Runs the command line `argv` (without `node` and the script: e.g.
 * `["inspect", "agent.wasm", "--json"]`) and resolves to the exit code (see
 * `ExitCode`). Never rejects: every failure is reported on `io.err`.
 * `help [command]` is `[command] --help`.
 */
export const main = async (argv: ReadonlyArray<string>, io: Io): Promise<number> => {
  const args = argv[0] === "help" ? [...argv.slice(1), "--help"] : [...argv]
  let code: number = ExitCode.ok
  const implicit: { text: string | undefined } = { text: undefined }
  const ctx: Context = { io, files: makeFiles(io), exit: (c) => (code = c) }
  const program = Command.runWith(commandFor(ctx), { version: VERSION, renderErrors: false })(args).pipe(
    Effect.provide(NodeServices.layer),
    Effect.provide(CliOutput.layerPresenter(presenter(io, implicit))),
    // --version would collide with sign/verify's --version; --wizard and --log-level are not offered
    Effect.provide(CliConfig.layer({ builtIns: [GlobalFlag.Help, GlobalFlag.Completions] }))
  )
  const exit = await Effect.runPromiseExit(program)
  if (exit._tag === "Success") return code
  const reason = exit.cause.reasons.find((r) => r._tag === "Fail")
  const error: unknown = reason !== undefined && reason._tag === "Fail" ? reason.error : undefined
  if (CliError.isCliError(error) && error._tag === "ShowHelp") {
    const first = error.errors[0]
    if (first !== undefined) io.err(`error: ${describeParseError(first, error.commandPath)}`)
    else io.err(implicit.text ?? "error: missing command (see agent-runtime --help)")
    return ExitCode.usage
  }
  if (CliError.isCliError(error)) {
    io.err(`error: ${error.message.split("\n")[0]}`)
    return ExitCode.usage
  }
  const cause = error instanceof HandlerFailed ? error.error : (error ?? exit.cause)
  if (cause instanceof Failure) {
    io.err(`error: ${cause.message}`)
    return cause.code
  }
  io.err(`internal error: ${cause instanceof Error ? cause.message : String(cause)}`)
  return ExitCode.internal
}
