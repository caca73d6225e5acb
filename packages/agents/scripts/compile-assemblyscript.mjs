// Worker thread of scripts/build.ts: compiles AssemblyScript sources with the
// `asc` JS API. It runs without tsx's loader hooks (the parent starts it with
// `execArgv: []`): tsx would transform asc's and binaryen's multi-megabyte
// bundles on load and add ~8 s to every build.
//
// workerData: { jobs: [{ name, file }], flags: string[] }
// posts:      { ok: true, results: [{ name, bytes }] } | { ok: false, error }
import { parentPort, workerData } from "node:worker_threads"
import asc from "assemblyscript/asc"

const { jobs, flags } = workerData
const results = []
try {
  for (const { name, file } of jobs) {
    const outFile = `${name}.wasm`
    let bytes
    const log = []
    const sink = {
      write(chunk) {
        log.push(typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk))
        return true
      }
    }
    const { error } = await asc.main([file, ...flags, "--outFile", outFile], {
      stdout: sink,
      stderr: sink,
      writeFile(written, contents) {
        if (written.endsWith(outFile) && typeof contents !== "string") bytes = contents
      }
    })
    if (error !== null || bytes === undefined) {
      throw new Error(`asc failed for ${file}: ${error?.message ?? "no output"}\n${log.join("")}`)
    }
    results.push({ name, bytes })
  }
  parentPort.postMessage({ ok: true, results })
} catch (error) {
  parentPort.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) })
}
