// A local TypeDoc plugin: names each entry point's module by its import specifier
// (`@agent-runtime/engine-edge/bundle`) instead of its path (`engine-edge/src/bundle`).
import { Converter } from "typedoc"
import { moduleNames } from "./typedoc.config.mjs"

/** @param {import("typedoc").Application} app */
export function load(app) {
  app.converter.on(Converter.EVENT_RESOLVE_BEGIN, (context) => {
    for (const module of context.project.children ?? []) module.name = moduleNames[module.name] ?? module.name
  })
}
