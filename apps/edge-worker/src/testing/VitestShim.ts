/**
 * A small runner with Vitest's registration API, for running the conformance
 * suite INSIDE workerd (the Vitest runner itself needs Node). The test
 * Worker's bundle aliases `vitest` to this module; `@effect/vitest` (real,
 * unmodified) is bundled on top of it, so `it.effect` / `it.live` keep their
 * exact semantics (TestClock, scoping). Assertions are Vitest's own
 * (`@vitest/expect` on chai, with the same plugins Vitest installs), so a
 * matcher fails inside workerd exactly when it fails in Node.
 *
 * Supported: `describe` (sync or async callbacks, nested), `it`/`test` with
 * `.skip`, `.skipIf`, `.runIf`, `.only` (runs like `it`), `.todo`, `.fails`,
 * `.for`/`.each`; `beforeAll`/`afterAll`/`beforeEach`/`afterEach`;
 * per-test context `{ signal, onTestFinished, task, expect, skip }`;
 * `expect` (+ asymmetric matchers), `assert`, `vi.waitFor`,
 * `TestRunner.getCurrentSuite`. `run()` collects, runs every test in order
 * with its timeout (ms, default 30 000), and returns one result per test.
 *
 * @since 0.1.0
 */
import {
  ASYMMETRIC_MATCHERS_OBJECT,
  chai,
  ChaiStyleAssertions,
  getState,
  GLOBAL_EXPECT,
  JestAsymmetricMatchers,
  JestChaiExpect,
  JestExtend,
  setState
} from "@vitest/expect"

chai.use(JestExtend)
chai.use(JestChaiExpect)
chai.use(ChaiStyleAssertions)
chai.use(JestAsymmetricMatchers)

type Fn = (...args: Array<any>) => unknown

interface TestTask {
  readonly type: "test"
  readonly name: string
  readonly suite: SuiteTask
  mode: "run" | "skip" | "todo"
  readonly fn: Fn | undefined
  readonly timeout: number
  readonly fails: boolean
}

interface SuiteTask {
  readonly type: "suite"
  readonly name: string
  parent: SuiteTask | undefined
  readonly tasks: Array<TestTask | SuiteTask>
  readonly collect: Fn | undefined
  mode: "run" | "skip"
  readonly hooks: { beforeAll: Array<Fn>; afterAll: Array<Fn>; beforeEach: Array<Fn>; afterEach: Array<Fn> }
}

/** One test's outcome. `name` joins the describe titles and the test title with " > ". */
export interface TestResult {
  readonly name: string
  readonly state: "pass" | "fail" | "skip"
  readonly durationMs: number
  readonly error?: string | undefined
}

const newSuite = (
  name: string,
  parent: SuiteTask | undefined,
  collect: Fn | undefined,
  mode: "run" | "skip"
): SuiteTask => ({
  type: "suite",
  name,
  parent,
  tasks: [],
  collect,
  mode,
  hooks: { beforeAll: [], afterAll: [], beforeEach: [], afterEach: [] }
})

const root = newSuite("", undefined, undefined, "run")
let current = root

const fullName = (task: { name: string; suite?: SuiteTask; parent?: SuiteTask | undefined }): string => {
  const names: Array<string> = [task.name]
  for (let s = task.suite ?? task.parent; s !== undefined && s.parent !== undefined; s = s.parent) names.unshift(s.name)
  return names.join(" > ")
}

// -- expect ------------------------------------------------------------------

const makeExpect = () => {
  const expect = ((value: unknown, message?: string) => {
    const { assertionCalls } = getState(expect as never)
    setState({ assertionCalls: assertionCalls + 1 }, expect as never)
    return chai.expect(value, message)
  }) as unknown as Record<string, unknown> & ((value: unknown, message?: string) => unknown)
  Object.assign(expect, chai.expect)
  Object.assign(expect, (globalThis as Record<PropertyKey, unknown>)[ASYMMETRIC_MATCHERS_OBJECT])
  setState(
    {
      assertionCalls: 0,
      isExpectingAssertions: false,
      isExpectingAssertionsError: null,
      expectedAssertionsNumber: null,
      expectedAssertionsNumberErrorGen: null,
      testPath: "workerd",
      currentTestName: ""
    } as never,
    expect as never
  )
  expect["getState"] = () => getState(expect as never)
  expect["setState"] = (state: unknown) => setState(state as never, expect as never)
  expect["assert"] = chai.assert
  expect["extend"] = (matchers: unknown) => (chai.expect as unknown as { extend: Fn }).extend(expect, matchers)
  expect["addEqualityTesters"] = () => {}
  expect["unreachable"] = (message?: string) =>
    chai.assert.fail(`expected${message ? ` "${message}" ` : " "}not to be reached`)
  return expect
}

export const expect: any = makeExpect()
// the global `expect` state slot Vitest's matchers read (left alone when a real Vitest already set it)
if ((globalThis as Record<PropertyKey, unknown>)[GLOBAL_EXPECT] === undefined)
  (globalThis as Record<PropertyKey, unknown>)[GLOBAL_EXPECT] = expect
export const assert = chai.assert

// -- registration ----------------------------------------------------------------

const parseArgs = (args: Array<unknown>): { name: string; fn: Fn | undefined; timeout: number } => {
  const name = String(args[0])
  let fn: Fn | undefined
  let timeout = 30_000
  for (const a of args.slice(1)) {
    if (typeof a === "function") fn = a as Fn
    else if (typeof a === "number") timeout = a
    else if (typeof a === "object" && a !== null && typeof (a as { timeout?: unknown }).timeout === "number")
      timeout = (a as { timeout: number }).timeout
  }
  return { name, fn, timeout }
}

const registerTest =
  (mode: TestTask["mode"], fails: boolean) =>
  (...args: Array<unknown>): void => {
    const { name, fn, timeout } = parseArgs(args)
    current.tasks.push({
      type: "test",
      name,
      suite: current,
      mode: current.mode === "skip" ? "skip" : mode,
      fn,
      timeout,
      fails
    })
  }

type TestApi = ((...args: Array<unknown>) => void) & Record<string, any>

const makeTestApi = (mode: TestTask["mode"], fails = false): TestApi => {
  const api = registerTest(mode, fails) as TestApi
  api["skip"] = registerTest("skip", fails)
  api["todo"] = registerTest("todo", fails)
  api["only"] = registerTest(mode, fails)
  api["skipIf"] = (condition: unknown) => (condition ? registerTest("skip", fails) : registerTest(mode, fails))
  api["runIf"] = (condition: unknown) => (condition ? registerTest(mode, fails) : registerTest("skip", fails))
  api["for"] =
    (cases: ReadonlyArray<unknown>) =>
    (name: string, ...rest: Array<unknown>) => {
      const { fn, timeout } = parseArgs([name, ...rest])
      for (const c of cases) {
        registerTest(mode, fails)(`${name} ${JSON.stringify(c)}`, { timeout }, (ctx: unknown) => fn?.(c, ctx))
      }
    }
  api["each"] =
    (cases: ReadonlyArray<unknown>) =>
    (name: string, ...rest: Array<unknown>) => {
      const { fn, timeout } = parseArgs([name, ...rest])
      for (const c of cases) {
        registerTest(mode, fails)(`${name} ${JSON.stringify(c)}`, { timeout }, () =>
          Array.isArray(c) ? fn?.(...c) : fn?.(c)
        )
      }
    }
  return api
}

export const it: TestApi = makeTestApi("run")
it["fails"] = makeTestApi("run", true)
export const test = it

const registerSuite =
  (mode: SuiteTask["mode"]) =>
  (...args: Array<unknown>): void => {
    const { name, fn } = parseArgs(args)
    current.tasks.push(newSuite(name, current, fn, current.mode === "skip" ? "skip" : mode))
  }

type SuiteApi = ((...args: Array<unknown>) => void) & Record<string, any>
export const describe: SuiteApi = registerSuite("run") as SuiteApi
describe["skip"] = registerSuite("skip")
describe["only"] = registerSuite("run")
describe["skipIf"] = (condition: unknown) => registerSuite(condition ? "skip" : "run")
describe["runIf"] = (condition: unknown) => registerSuite(condition ? "run" : "skip")
export const suite = describe

export const beforeAll = (fn: Fn) => void current.hooks.beforeAll.push(fn)
export const afterAll = (fn: Fn) => void current.hooks.afterAll.push(fn)
export const beforeEach = (fn: Fn) => void current.hooks.beforeEach.push(fn)
export const afterEach = (fn: Fn) => void current.hooks.afterEach.push(fn)

let finishers: Array<Fn> | undefined
export const onTestFinished = (fn: Fn) => {
  if (finishers === undefined) throw new Error("onTestFinished() called outside a test")
  finishers.push(fn)
}

/** `TestRunner.getCurrentSuite()`, as `@effect/vitest` reads it. */
export const TestRunner = { getCurrentSuite: () => current }

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** `vi.waitFor`: retries `fn` until it neither throws nor rejects (timeout ms, default 1000; interval 50). */
export const vi = {
  waitFor: async <T>(
    fn: () => T | Promise<T>,
    options: number | { timeout?: number; interval?: number } = {}
  ): Promise<T> => {
    const { timeout = 1000, interval = 50 } = typeof options === "number" ? { timeout: options } : options
    const deadline = Date.now() + timeout
    for (;;) {
      try {
        return await fn()
      } catch (e) {
        if (Date.now() >= deadline) throw e
        await sleep(interval)
      }
    }
  }
}

// -- running --------------------------------------------------------------------

const describeError = (e: unknown): string => {
  if (e instanceof Error) {
    const extra =
      (e as { actual?: unknown; expected?: unknown }).actual !== undefined
        ? `\nexpected: ${safe((e as { expected?: unknown }).expected)}\nactual: ${safe((e as { actual?: unknown }).actual)}`
        : ""
    return `${e.name}: ${e.message}${extra}`
  }
  return safe(e)
}

const safe = (v: unknown): string => {
  try {
    return typeof v === "string"
      ? v
      : (JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? `${x}n` : x)) ?? String(v))
  } catch {
    return String(v)
  }
}

const collect = async (suite: SuiteTask): Promise<void> => {
  if (suite.collect !== undefined) {
    const previous = current
    current = suite
    try {
      await suite.collect()
    } finally {
      current = previous
    }
  }
  for (const t of suite.tasks) if (t.type === "suite") await collect(t)
}

const withTimeout = async (work: () => unknown, ms: number, controller: AbortController): Promise<void> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      controller.abort(new Error(`test timed out after ${ms} ms`))
      reject(new Error(`test timed out after ${ms} ms`))
    }, ms)
  })
  try {
    await Promise.race([Promise.resolve().then(work), timeout])
  } finally {
    clearTimeout(timer)
  }
}

const ancestors = (suite: SuiteTask): Array<SuiteTask> => {
  const out: Array<SuiteTask> = []
  for (let s: SuiteTask | undefined = suite; s !== undefined; s = s.parent) out.unshift(s)
  return out
}

const runTest = async (t: TestTask, results: Array<TestResult>): Promise<void> => {
  const name = fullName(t)
  if (t.mode !== "run" || t.fn === undefined) {
    results.push({ name, state: "skip", durationMs: 0 })
    return
  }
  const started = Date.now()
  const controller = new AbortController()
  finishers = []
  const myFinishers = finishers
  let skipped = false
  const ctx = {
    signal: controller.signal,
    task: t,
    expect,
    onTestFinished: (fn: Fn) => myFinishers.push(fn),
    skip: () => {
      skipped = true
      throw new Error("skipped")
    }
  }
  let error: unknown
  try {
    for (const s of ancestors(t.suite)) for (const h of s.hooks.beforeEach) await h(ctx)
    await withTimeout(() => t.fn!(ctx), t.timeout, controller)
  } catch (e) {
    error = e
  }
  try {
    for (const s of ancestors(t.suite).reverse()) for (const h of s.hooks.afterEach) await h(ctx)
    for (const f of myFinishers) await f()
  } catch (e) {
    error ??= e
  }
  finishers = undefined
  const durationMs = Date.now() - started
  if (skipped) results.push({ name, state: "skip", durationMs })
  else if (t.fails)
    results.push(
      error === undefined
        ? { name, state: "fail", durationMs, error: "expected to fail" }
        : { name, state: "pass", durationMs }
    )
  else
    results.push(
      error === undefined
        ? { name, state: "pass", durationMs }
        : { name, state: "fail", durationMs, error: describeError(error) }
    )
}

const runSuite = async (suite: SuiteTask, results: Array<TestResult>): Promise<void> => {
  const active = suite.mode === "run"
  let setupError: unknown
  if (active) {
    try {
      for (const h of suite.hooks.beforeAll) await h()
    } catch (e) {
      setupError = e
    }
  }
  for (const t of suite.tasks) {
    if (setupError !== undefined) {
      if (t.type === "test")
        results.push({
          name: fullName(t),
          state: "fail",
          durationMs: 0,
          error: `beforeAll failed: ${describeError(setupError)}`
        })
      continue
    }
    if (t.type === "suite") await runSuite(t, results)
    else await runTest(t, results)
  }
  if (active) {
    for (const h of suite.hooks.afterAll) {
      try {
        await h()
      } catch (e) {
        results.push({ name: `${fullName(suite)} (afterAll)`, state: "fail", durationMs: 0, error: describeError(e) })
      }
    }
  }
}

/**
 * Collects every suite registered so far, then runs every test in order.
 * The registrations are consumed: a later `run()` runs only what was
 * registered after this one started.
 */
export const run = async (): Promise<Array<TestResult>> => {
  const batch = newSuite("", undefined, undefined, "run")
  batch.tasks.push(...root.tasks.splice(0))
  for (const t of batch.tasks) if (t.type === "suite") t.parent = batch
  for (const [k, v] of Object.entries(root.hooks)) batch.hooks[k as keyof SuiteTask["hooks"]].push(...v.splice(0))
  await collect(batch)
  const results: Array<TestResult> = []
  await runSuite(batch, results)
  return results
}
