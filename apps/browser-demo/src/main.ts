/**
 * The dashboard: renders the swarm's state from `stats()` / `agents()` four
 * times a second and every runtime event as it happens; the buttons call the
 * runtimes (`Swarm.ts`). No framework: a few DOM helpers.
 *
 * Durable agents (the "durable" checkbox) live in a runtime on IndexedDB
 * that snapshots after every call and restores on start: after a reload the
 * page logs "restored N agents from IndexedDB" and shows them with their
 * counts. `?storage=memory` in the address keeps IndexedDB out of it (the
 * same in-memory fallback the page uses when IndexedDB cannot be opened).
 */
import type { AgentInfo, RuntimeEvent } from "@agent-runtime/domain"
import { createSwarm, type DashboardStats, type Kind, MiB, type Swarm } from "./Swarm.js"

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T
const el = (tag: string, attrs: Record<string, string> = {}, text?: string) => {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v)
  if (text !== undefined) e.textContent = text
  return e
}
const mib = (bytes: number) => (bytes < MiB ? `${Math.round(bytes / 1024)} KiB` : `${(bytes / MiB).toFixed(1)} MiB`)
const clock = (t: number) => new Date(t).toLocaleTimeString([], { hour12: false })

const STATES = ["Running", "Paused", "Starting", "Stopping", "Critical", "Failed", "Stopped"] as const
const STATE_COLORS: Record<string, string> = {
  Running: "var(--ok)",
  Paused: "var(--paused)",
  Starting: "var(--warn)",
  Stopping: "var(--warn)",
  Critical: "var(--accent)",
  Failed: "var(--bad)",
  Stopped: "var(--bad)"
}
const LEVEL_COLORS: Record<string, string> = {
  Normal: "var(--ok)",
  Warning: "var(--warn)",
  High: "var(--high)",
  Critical: "var(--bad)"
}

let selected: string | undefined
const series: Array<number> = []
let last: { at: number; invocations: number } | undefined

const setStatus = (text: string) => {
  $("status").textContent = text
}

const describe = (e: RuntimeEvent): string => {
  switch (e._tag) {
    case "ModuleLoaded":
      return `module ${e.moduleHash.slice(0, 8)}… ${(e.size / 1024).toFixed(1)} KiB${e.cacheHit ? " (cache hit)" : ""}`
    case "AgentSpawned":
      return `${e.agentId} · ${mib(e.memoryAllocated)}`
    case "AgentStateChanged":
      return `${e.agentId}: ${e.from} → ${e.to}`
    case "AgentEvicted":
      return `${e.agentId} · ${e.reason} · freed ${mib(e.memoryReleased)}`
    case "AgentPassivated":
      return `${e.agentId} · freed ${mib(e.memoryReleased)}`
    case "AgentActivated":
      return `${e.agentId} after ${e.passivatedFor} ms`
    case "AgentRecovered":
      return `${e.agentId} · ${e.from === "Snapshot" ? "from its last snapshot" : "fresh"} after: ${e.cause}`
    case "MemoryPressure":
      return `${e.pressureLevel}: ${mib(e.memoryBefore)} → ${mib(e.memoryAfter)}, evicted ${e.evictedAgents.length}`
    case "HealthCheckCompleted":
      return `${e.healthyCount}/${e.totalChecked} healthy · ${e.degradedCount} degraded · ${e.unhealthyCount} unhealthy`
  }
}

/** Adds a line to the event log (runtime events, and the page's own "Storage" / "Restored" lines). */
const logLine = (tag: string, timestamp: number, text: string) => {
  const list = $("events")
  const li = el("li", { "data-event": tag })
  li.append(el("time", {}, clock(timestamp)))
  const body = el("div")
  body.append(el("span", { class: `tag ${tag}` }, tag), document.createTextNode(` ${text}`))
  li.append(body)
  list.prepend(li)
  while (list.children.length > 200) list.lastElementChild?.remove()
}

const onEvent = (e: RuntimeEvent) => logLine(e._tag, e.timestamp, describe(e))

/** Says where durable agents are kept and what came back from the last page load. */
const reportStorage = (swarm: Swarm) => {
  const { storage, restored } = swarm
  const note = $("storage-note")
  note.dataset["backend"] = storage.backend
  if (storage.backend === "indexedDB") {
    note.textContent = "durable agents: IndexedDB — snapshot after every call, restored on reload"
    logLine("Storage", Date.now(), `IndexedDB "agent-runtime-browser-demo": durable agents survive a reload`)
  } else {
    note.textContent = `durable agents: memory fallback (${storage.reason ?? "unknown reason"}) — they will not survive a reload`
    logLine("Storage", Date.now(), `memory repositories: ${storage.reason ?? "unknown reason"}`)
  }
  const where = storage.backend === "indexedDB" ? "IndexedDB" : "memory"
  const counted = restored.restored.filter((id) => swarm.counts.has(id)).map((id) => `${id}=${swarm.counts.get(id)}`)
  logLine(
    "Restored",
    Date.now(),
    `restored ${restored.restored.length} agents from ${where}${counted.length > 0 ? ` (${counted.join(", ")})` : ""}`
  )
  if (restored.failed.length > 0) {
    logLine(
      "Restored",
      Date.now(),
      `could not restore ${restored.failed.length} saved agents: ${restored.failed.join(", ")}`
    )
  }
}

const renderBadges = (swarm: Swarm) => {
  const e = swarm.engine
  const badges = [
    ["mode", e.mode === "workers" ? "Web Workers" : "in-page", e.mode === "workers"],
    ["isolated", e.environment.crossOriginIsolated ? "yes" : "no", e.environment.crossOriginIsolated],
    ["call path", e.transport, e.transport === "shared"],
    ["preemption", e.capabilities.preemptiveTimeout ? "on" : "fuel only", e.capabilities.preemptiveTimeout],
    ["workers", String(e.stats().workers.length), true],
    [
      "storage",
      swarm.storage.backend === "indexedDB" ? "IndexedDB" : "memory (fallback)",
      swarm.storage.backend === "indexedDB",
      swarm.storage.reason ?? "durable agents are saved in IndexedDB"
    ]
  ] as const
  const root = $("badges")
  root.replaceChildren(
    ...badges.map(([k, v, on, why]) => {
      const b = el("span", { class: `badge ${on ? "on" : "off"}`, title: why ?? k, "data-badge": k })
      b.append(document.createTextNode(`${k} `), el("b", {}, v))
      return b
    })
  )
}

const renderStats = (stats: DashboardStats, swarm: Swarm) => {
  $("kpi-agents").textContent = String(stats.agents)
  $("kpi-durable").textContent = String(stats.durableAgents)
  $("kpi-invocations").textContent = stats.invocations.toLocaleString()
  $("kpi-evicted").textContent = String(stats.evicted)
  const now = performance.now()
  if (last !== undefined && now > last.at) {
    const ips = Math.max(0, ((stats.invocations - last.invocations) * 1000) / (now - last.at))
    series.push(ips)
    if (series.length > 60) series.shift()
    $("kpi-ips").textContent = ips.toFixed(0)
  }
  last = { at: now, invocations: stats.invocations }
  drawSpark()

  // the pool counts max(reservation, linear memory) per agent; pressure levels are used / total
  const ratio = Math.min(1, stats.memory.total === 0 ? 0 : stats.memory.used / stats.memory.total)
  const fill = $("gauge-fill") as unknown as SVGPathElement
  fill.style.strokeDashoffset = String(157 * (1 - ratio))
  fill.style.stroke = LEVEL_COLORS[stats.memory.pressureLevel] ?? "var(--ok)"
  $("gauge-pct").textContent = `${Math.round(ratio * 100)}%`
  const p = $("pressure-level")
  p.textContent = stats.memory.pressureLevel
  p.className = `pressure ${stats.memory.pressureLevel}`
  $("mem-line").textContent =
    `in use ${mib(stats.memory.used)} · reserved ${mib(stats.memory.reserved)} · pool ${mib(stats.memory.total)}`

  const max = Math.max(1, ...STATES.map((s) => stats.agentsByState[s] ?? 0))
  $("states").replaceChildren(
    ...STATES.map((s) => {
      const n = stats.agentsByState[s] ?? 0
      const row = el("div", { class: "state-row", "data-state": s })
      const bar = el("div", { class: "bar" })
      const fillBar = el("span")
      fillBar.style.width = `${(n / max) * 100}%`
      fillBar.style.background = STATE_COLORS[s] ?? "var(--muted)"
      bar.append(fillBar)
      row.append(el("span", {}, s), bar, el("span", { class: "n" }, String(n)))
      return row
    })
  )
  const w = swarm.engine.stats().workers
  const b = document.querySelector("[data-badge=workers] b")
  if (b) b.textContent = `${w.filter((x) => x.running).length}/${w.length}`
}

/**
 * One card element per agent, kept across renders (only its attributes and contents are replaced); a card is
 * selected on `pointerdown` of the primary button. The swarm is re-rendered several times a second: a `click`
 * whose press and release fall on either side of a render would be lost (Chromium fires no `click` when the
 * pressed node left the document).
 */
const cards = new Map<AgentInfo["agentId"], HTMLElement>()

const renderAgents = (agents: ReadonlyArray<AgentInfo>, swarm: Swarm) => {
  const root = $("agents")
  const sorted = [...agents].sort((a, b) => a.agentId.localeCompare(b.agentId, undefined, { numeric: true }))
  if (selected !== undefined && !agents.some((a) => a.agentId === selected)) selected = undefined
  const present = new Set(sorted.map((a) => a.agentId))
  for (const id of cards.keys()) if (!present.has(id)) cards.delete(id)
  root.replaceChildren(
    ...sorted.map((a) => {
      const durable = swarm.isDurable(a.agentId)
      let card = cards.get(a.agentId)
      if (card === undefined) {
        const agentId = a.agentId
        const created = el("div", { "data-agent": agentId })
        created.addEventListener("pointerdown", (e) => {
          if (e.button !== 0 || !e.isPrimary) return // the primary button only: not a right- or middle-click
          selected = agentId
          for (const c of root.querySelectorAll(".agent")) c.classList.toggle("selected", c === created)
        })
        cards.set(agentId, created)
        card = created
      }
      card.className = `agent ${a.state}${a.agentId === selected ? " selected" : ""}${durable ? " durable" : ""}`
      card.dataset.state = a.state
      card.dataset.durable = String(durable)
      const id = el("div", { class: "id" })
      id.append(el("span", {}, a.agentId))
      id.append(el("span", { class: `dot ${a.health}`, title: a.health }))
      const meta = el("div", { class: "meta" })
      meta.append(el("span", {}, `${a.invocationCount} calls`), el("span", {}, mib(a.budget.used)))
      const state = el("div", { class: "meta" })
      state.append(el("span", {}, a.state), el("span", {}, a.errorCount > 0 ? `${a.errorCount} err` : ""))
      const parts: Array<HTMLElement> = [id, meta, state]
      // a counter's value: the last count it acknowledged (after a reload: read back from the restored agent)
      const count = swarm.counts.get(a.agentId)
      if (count !== undefined || durable) {
        const foot = el("div", { class: "meta foot" })
        foot.append(
          count === undefined
            ? el("span")
            : el("span", { class: "count", "data-count": String(count) }, `count ${count}`)
        )
        if (durable)
          foot.append(
            el(
              "span",
              { class: "durable-mark", title: "durable: saved after every call, restored after a reload" },
              "durable"
            )
          )
        parts.push(foot)
      }
      card.replaceChildren(...parts)
      return card
    })
  )
}

const drawSpark = () => {
  const canvas = $("spark") as HTMLCanvasElement
  const ctx = canvas.getContext("2d")
  if (ctx === null) return
  const { width, height } = canvas
  ctx.clearRect(0, 0, width, height)
  const max = Math.max(10, ...series)
  const step = width / 59
  ctx.beginPath()
  series.forEach((v, i) => {
    const x = i * step
    const y = height - 4 - (v / max) * (height - 8)
    if (i === 0) ctx.moveTo(x, y)
    else ctx.lineTo(x, y)
  })
  ctx.strokeStyle = "#5b8cff"
  ctx.lineWidth = 2
  ctx.stroke()
  ctx.lineTo((series.length - 1) * step, height)
  ctx.lineTo(0, height)
  ctx.closePath()
  const gradient = ctx.createLinearGradient(0, 0, 0, height)
  gradient.addColorStop(0, "rgba(91,140,255,0.35)")
  gradient.addColorStop(1, "rgba(91,140,255,0)")
  ctx.fillStyle = gradient
  ctx.fill()
}

const HEALTH_ORDER: Record<string, number> = { Unhealthy: 0, Degraded: 1, Unknown: 2, Healthy: 3 }

/** Health of the live agents (what the last checks found), the worst first. */
const renderHealth = (agents: ReadonlyArray<AgentInfo>) => {
  const worst = [...agents]
    .sort(
      (a, b) =>
        (HEALTH_ORDER[a.health] ?? 9) - (HEALTH_ORDER[b.health] ?? 9) ||
        a.agentId.localeCompare(b.agentId, undefined, { numeric: true })
    )
    .slice(0, 12)
  const rows = worst.map((a) => {
    const tr = el("tr", { "data-health": a.agentId })
    const status = el("td")
    status.append(el("span", { class: `dot ${a.health}` }), document.createTextNode(` ${a.health}`))
    tr.append(
      el("td", {}, a.agentId),
      status,
      el("td", {}, String(a.consecutiveFailures)),
      el("td", {}, a.lastError ?? "ok")
    )
    return tr
  })
  $("health-rows").replaceChildren(...(rows.length > 0 ? rows : [el("tr", {}, "no agents")]))
}

const target = async (swarm: Swarm, state?: string): Promise<string | undefined> => {
  if (selected !== undefined) return selected
  const agents = await swarm.agents()
  return agents.find((a) => state === undefined || a.state === state)?.agentId
}

const main = async () => {
  setStatus("loading agents…")
  const storage = new URLSearchParams(location.search).get("storage") === "memory" ? "memory" : "auto"
  const swarm = await createSwarm({ storage })
  ;(globalThis as unknown as { swarm: Swarm }).swarm = swarm
  renderBadges(swarm)
  reportStorage(swarm)
  await swarm.onEvent(onEvent)

  const act = (id: string, label: string, f: () => Promise<string>) => {
    const button = $<HTMLButtonElement>(id)
    button.addEventListener("click", () => {
      setStatus(`${label}…`)
      f().then(setStatus, (e: unknown) => setStatus(`${label}: ${(e as { _tag?: string })._tag ?? String(e)}`))
    })
  }
  act("spawn", "spawning", async () => {
    const kind = $<HTMLSelectElement>("kind").value as Kind
    const count = Math.max(1, Math.min(64, Number($<HTMLInputElement>("count").value) || 1))
    const durable = $<HTMLInputElement>("durable").checked
    const n = await swarm.spawn(kind, count, durable)
    return `spawned ${n} ${durable ? "durable " : ""}${kind}`
  })
  act("invoke", "invoking", async () => {
    const r = await swarm.invokeAll()
    return `invoked ${r.ok} agents${r.failed > 0 ? `, ${r.failed} failed` : ""}`
  })
  act("invoke-one", "invoking", async () => {
    const id = await target(swarm, "Running")
    if (id === undefined) return "no running agent"
    await swarm.invokeOne(id)
    const count = swarm.counts.get(id)
    return `invoked ${id}${count === undefined ? "" : `: count ${count}`}`
  })
  act("pause", "pausing", async () => {
    const id = await target(swarm, "Running")
    if (id === undefined) return "no running agent"
    await swarm.pause(id)
    return `paused ${id}`
  })
  act("resume", "resuming", async () => {
    const id = await target(swarm, "Paused")
    if (id === undefined) return "no paused agent"
    await swarm.resume(id)
    return `resumed ${id}`
  })
  act("evict", "evicting", async () => {
    const id = await target(swarm)
    if (id === undefined) return "no agent"
    await swarm.evict(id)
    selected = undefined
    return `evicted ${id}`
  })
  act("health", "checking health", async () => {
    const checked = await swarm.health()
    renderHealth(await swarm.agents())
    return `checked ${checked} agents`
  })
  act("pressure", "pressure", async () => {
    const evicted = await swarm.pressure()
    return `pressure handled: ${evicted} evicted`
  })
  act("runaway", "runaway call running", async () => {
    const started = performance.now()
    const outcome = await swarm.runaway()
    return `runaway call: ${outcome} after ${Math.round(performance.now() - started)} ms`
  })

  let traffic: ReturnType<typeof setInterval> | undefined
  $<HTMLInputElement>("traffic").addEventListener("change", (e) => {
    if ((e.target as HTMLInputElement).checked) {
      traffic = setInterval(() => void swarm.invokeAll(), 40)
    } else if (traffic !== undefined) {
      clearInterval(traffic)
    }
  })

  const refresh = async () => {
    try {
      const [stats, agents] = await Promise.all([swarm.stats(), swarm.agents()])
      renderStats(stats, swarm)
      renderAgents(agents, swarm)
      renderHealth(agents)
    } catch (e) {
      setStatus(`refresh failed: ${String(e)}`)
    }
  }
  setInterval(() => void refresh(), 250)
  await refresh()
  document.body.dataset["ready"] = "true"
  setStatus("ready")
}

main().catch((e: unknown) => {
  setStatus(`failed to start: ${e instanceof Error ? e.message : String(e)}`)
  console.error(e)
})
