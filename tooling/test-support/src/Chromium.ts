/**
 * How the project's tests and benchmarks start Chromium: Debian's
 * `/usr/bin/chromium` (or `CHROMIUM_PATH`), headless, with the flags that keep
 * it off this machine's closed network, driven by playwright-core (no browser
 * download); and the headers that make a page cross-origin isolated.
 */

/** The Chromium binary: `CHROMIUM_PATH` or `/usr/bin/chromium` (Debian's `chromium` package). */
export const chromiumPath = (): string => process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium"

/** Launch flags: headless, no sandbox (root in CI), no GPU, and no background network traffic. */
export const chromiumArgs: Array<string> = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync"
]

/**
 * Cross-origin isolation headers (HTML §"Cross-origin isolation"): a page served
 * with them has `SharedArrayBuffer`, and `Atomics.wait` works in its workers.
 */
export const isolationHeaders: Readonly<Record<string, string>> = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp"
}
