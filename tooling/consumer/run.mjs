#!/usr/bin/env node
// The consumer test (issue 15 item 3): the published packages as a user outside this
// repository gets them. Run by `./dev test` (turbo task `@agent-runtime/consumer#test`, after
// every published package's `build` and `check-package`), or by hand: `node tooling/consumer/run.mjs`
// (`KEEP=1` keeps the temporary project and prints its path).
//
// 1. `pnpm pack` every published package (workspace:* → versions, publishConfig.exports → dist/).
// 2. A fresh project in the OS temp directory: the tarballs as `file:` dependencies (pnpm
//    overrides point their dependencies on each other at the tarballs too), no workspace, no
//    `@agent-runtime/source` condition; registry packages from the local store (`--prefer-offline`).
// 3. There:
//    (a) the README's Effect and Promise examples (apps/examples/src) on Node;
//    (b) a page built with Vite on engine-browser, served by `vite preview` (COOP/COEP) and
//        loaded in Chromium (playwright-core + /usr/bin/chromium): the agent answers from a Web Worker;
//    (c) a Worker bundled with the edge engine's build-time bundle, answering a request in workerd;
//    (d) the published conformance suite in the project's own vitest, on engine-native and on
//        the third-party adapter of apps/examples/third-party-adapter.
// Every process it starts (vite preview, workerd, chromium) runs in its own process group and
// is taken down at the end, on failure, and on SIGINT/SIGTERM.
import { spawn } from "node:child_process"
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { transform } from "esbuild"
import { chromium } from "playwright-core"

const here = dirname(fileURLToPath(import.meta.url))
const root = resolve(here, "../..")
const started = Date.now()
const log = (line) => console.log(`[consumer ${((Date.now() - started) / 1000).toFixed(1)} s] ${line}`)

/** Long-running children (process groups) and the browser, stopped by `cleanup`. */
const children = new Set()
let browser
let work
const cleanup = async () => {
  if (browser !== undefined) await browser.close().catch(() => {})
  browser = undefined
  for (const child of children) {
    try {
      process.kill(-child.pid, "SIGTERM")
    } catch {}
  }
  children.clear()
  if (work !== undefined && process.env.KEEP !== "1") rmSync(work, { recursive: true, force: true })
}
for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    cleanup().finally(() => process.exit(130))
  })
}

/**
 * Runs a command to completion in its own process group (taken down by `cleanup` if this
 * script is stopped meanwhile); resolves to its stdout, rejects with its output on a non-zero exit.
 */
const run = (cmd, args, options = {}) =>
  new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    children.add(child)
    let stdout = ""
    let stderr = ""
    child.stdout.setEncoding("utf8").on("data", (c) => (stdout += c))
    child.stderr.setEncoding("utf8").on("data", (c) => (stderr += c))
    child.on("error", reject)
    child.on("close", (code, signal) => {
      children.delete(child)
      if (code === 0) resolvePromise(stdout)
      else reject(new Error(`${cmd} ${args.join(" ")} exited with ${code ?? signal}\n${stdout}\n${stderr}`))
    })
  })

/**
 * Starts a long-running command in its own process group; resolves when `ready` matches its
 * output (at once without `ready`: the caller polls the server).
 */
const serve = (cmd, args, options, ready) =>
  new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { ...options, detached: true, stdio: ["ignore", "pipe", "pipe"] })
    children.add(child)
    let output = ""
    if (ready === undefined) {
      resolvePromise(child)
      return
    }
    const timer = setTimeout(() => reject(new Error(`${cmd} not ready after 90 s:\n${output}`)), 90_000)
    const onData = (chunk) => {
      // without ANSI colours: Vite colours the port when CI is set (picocolors), which split the URL
      output += chunk.replace(/\x1b\[[0-9;]*m/g, "")
      if (ready.test(output)) {
        clearTimeout(timer)
        resolvePromise(child)
      }
    }
    child.stdout.setEncoding("utf8").on("data", onData)
    child.stderr.setEncoding("utf8").on("data", onData)
    child.on("exit", (code) => {
      children.delete(child)
      clearTimeout(timer)
      reject(new Error(`${cmd} exited with ${code} before it was ready:\n${output}`))
    })
  })

const stop = (child) => {
  children.delete(child)
  try {
    process.kill(-child.pid, "SIGTERM")
  } catch {}
}

const freePort = () =>
  new Promise((resolvePromise, reject) => {
    const server = createServer()
    server.on("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address()
      server.close(() => resolvePromise(port))
    })
  })

/** The workspace packages that are published (not private), with their directories. */
const published = () =>
  readdirSync(join(root, "packages"))
    .map((dir) => join(root, "packages", dir))
    .filter((dir) => existsSync(join(dir, "package.json")))
    .map((dir) => ({ dir, json: JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) }))
    .filter(({ json }) => json.private !== true)

const versionOf = (name) =>
  JSON.parse(readFileSync(join(root, "node_modules", ...name.split("/"), "package.json"), "utf8")).version
const workspaceVersion = (name, dir = "packages/bench") => {
  // registry packages pinned in the workspace: read the version the workspace installed
  const path = join(root, dir, "node_modules", ...name.split("/"), "package.json")
  return JSON.parse(
    readFileSync(existsSync(path) ? path : join(root, "node_modules", ...name.split("/"), "package.json"), "utf8")
  ).version
}

const main = async () => {
  work = mkdtempSync(join(tmpdir(), "agent-runtime-consumer-"))
  const tarballs = join(work, "tarballs")
  const project = join(work, "project")
  mkdirSync(tarballs)

  const used = [
    "@agent-runtime/agents",
    "@agent-runtime/conformance",
    "@agent-runtime/domain",
    "@agent-runtime/engine-browser",
    "@agent-runtime/engine-edge",
    "@agent-runtime/engine-kit",
    "@agent-runtime/engine-native",
    "@agent-runtime/signing",
    "@agent-runtime/wasm-binary"
  ]
  // 1. pack
  const all = published()
  const wanted = new Set(used)
  for (let grew = true; grew; ) {
    grew = false
    for (const p of all.filter((p) => wanted.has(p.json.name))) {
      for (const dep of Object.keys(p.json.dependencies ?? {})) {
        if (!wanted.has(dep) && all.some((q) => q.json.name === dep)) {
          wanted.add(dep)
          grew = true
        }
      }
    }
  }
  const packages = all.filter((p) => wanted.has(p.json.name))
  const pack = (dir) => run("pnpm", ["pack", "--pack-destination", tarballs], { cwd: dir })
  const queue = packages.map((p) => p.dir)
  await Promise.all(
    [0, 1, 2].map(async () => {
      while (queue.length > 0) await pack(queue.shift())
    })
  )
  const files = readdirSync(tarballs)
  const fileOf = (name) => {
    const f = files.find(
      (file) =>
        file === `${name.slice(1).replace("/", "-")}-${packages.find((p) => p.json.name === name).json.version}.tgz`
    )
    if (f === undefined) throw new Error(`no tarball for ${name} in ${files.join(", ")}`)
    return `file:${join(tarballs, f)}`
  }
  log(`packed ${files.length} packages: ${packages.map((p) => p.json.name).join(", ")}`)

  // 2. a fresh project
  cpSync(join(here, "project"), project, { recursive: true })
  cpSync(join(root, "apps/examples/third-party-adapter"), join(project, "third-party"), {
    recursive: true,
    filter: (src) => !src.includes("node_modules") && !src.endsWith("package.json")
  })
  const overrides = Object.fromEntries(packages.map((p) => [p.json.name, fileOf(p.json.name)]))
  const registry = {
    "@effect/vitest": workspaceVersion("@effect/vitest"),
    effect: workspaceVersion("effect", "packages/domain"),
    esbuild: workspaceVersion("esbuild"),
    vite: workspaceVersion("vite"),
    vitest: versionOf("vitest"),
    workerd: workspaceVersion("workerd")
  }
  writeFileSync(
    join(project, "package.json"),
    JSON.stringify(
      {
        name: "agent-runtime-consumer",
        private: true,
        type: "module",
        dependencies: { ...Object.fromEntries(used.map((name) => [name, fileOf(name)])), ...registry },
        pnpm: { overrides, onlyBuiltDependencies: ["esbuild", "workerd"] }
      },
      null,
      2
    )
  )
  await run("pnpm", ["install", "--prefer-offline", "--ignore-workspace", "--config.confirmModulesPurge=false"], {
    cwd: project,
    env: { ...process.env, npm_config_frozen_lockfile: "false", CI: "" }
  })
  log(
    `installed the tarballs and ${Object.entries(registry)
      .map(([n, v]) => `${n}@${v}`)
      .join(", ")} into ${project}`
  )
  const bin = (name) => join(project, "node_modules", ".bin", name)

  // 3a. the README's examples on Node
  for (const name of ["effect-example", "promise-example"]) {
    const source = readFileSync(join(root, "apps/examples/src", `${name}.ts`), "utf8")
    const { code } = await transform(source, { loader: "ts", format: "esm", target: "es2022" })
    writeFileSync(join(project, "node", `${name}.mjs`), code)
  }
  log(`(a) Node examples: ${(await run("node", ["node/check-examples.mjs"], { cwd: project })).trim()}`)

  // 3b. Vite + Chromium
  const web = join(project, "web")
  mkdirSync(join(web, "public"), { recursive: true })
  cpSync(join(project, "node_modules/@agent-runtime/agents/build/counter.wasm"), join(web, "public/counter.wasm"))
  await run(bin("vite"), ["build", "--logLevel", "warn"], { cwd: web })
  const webPort = await freePort()
  const preview = await serve(
    bin("vite"),
    ["preview", "--port", String(webPort), "--strictPort", "--host", "127.0.0.1"],
    { cwd: web },
    /127\.0\.0\.1:\d+/
  )
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync"
    ]
  })
  const page = await browser.newPage()
  const pageErrors = []
  page.on("pageerror", (e) => pageErrors.push(e.message))
  await page.goto(`http://127.0.0.1:${webPort}/`)
  await page.waitForFunction(() => window.__result !== undefined, undefined, { timeout: 60_000 })
  const webResult = JSON.parse(await page.evaluate(() => window.__result))
  await browser.close()
  browser = undefined
  stop(preview)
  if (webResult.total !== 41 || webResult.mode !== "workers" || webResult.crossOriginIsolated !== true) {
    throw new Error(`(b) the page answered ${JSON.stringify(webResult)}; page errors: ${pageErrors.join("; ")}`)
  }
  log(`(b) Vite page in Chromium: ${JSON.stringify(webResult)}`)

  // 3c. workerd
  const edgeOut = join(project, "edge", "dist")
  await run("node", ["edge/build.mjs", edgeOut], { cwd: project })
  const edgePort = await freePort()
  const workerd = await serve(
    bin("workerd"),
    ["serve", join(edgeOut, "config.capnp"), "--socket-addr", `http=127.0.0.1:${edgePort}`],
    { cwd: edgeOut }
  )
  let edgeResult
  for (let attempt = 0; edgeResult === undefined; attempt++) {
    try {
      const response = await fetch(`http://127.0.0.1:${edgePort}/`)
      edgeResult = { status: response.status, body: await response.json() }
    } catch (e) {
      if (attempt >= 100) throw new Error(`(c) workerd did not answer: ${e}`)
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  stop(workerd)
  if (edgeResult.status !== 200 || edgeResult.body.total !== 41)
    throw new Error(`(c) workerd answered ${JSON.stringify(edgeResult)}`)
  log(`(c) Worker in workerd: ${JSON.stringify(edgeResult.body)}`)

  // 3d. the published conformance suite, on engine-native and on the third-party adapter
  const out = await run(bin("vitest"), ["run", "--reporter=dot"], { cwd: project, env: { ...process.env, CI: "1" } })
  // eslint-disable-next-line no-control-regex
  const counts = out
    .replace(/\u001b\[[0-9;]*[A-Za-z]/g, "")
    .split("\n")
    .filter((l) => /^\s*(Test Files|Tests)\s/.test(l))
    .map((l) => l.trim().replace(/\s+/g, " "))
  log(`(d) conformance (native + third-party adapter): ${counts.join("; ")}`)
  for (const line of counts) console.log(line) // vitest's count lines, for the ./dev test summary
  log("all consumer checks passed")
}

main().then(cleanup, async (e) => {
  await cleanup()
  console.error(e instanceof Error ? (e.stack ?? e.message) : String(e))
  process.exit(1)
})
