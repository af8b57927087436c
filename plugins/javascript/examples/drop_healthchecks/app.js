// drop_healthchecks (JavaScript): drops access-log records of requests to health-check paths.
//
// Config: `paths`, a list (or a comma-separated string) of paths; default
// `/healthz,/readyz,/livez,/ping`. A request matches when its path, without the query string,
// is one of them. The path is the `path` field when a parser set one, else the request in the
// line (`"GET /healthz HTTP/1.1"`). Dropped records are counted as `healthchecks_dropped`. The
// same plugin as the Rust and Python `drop_healthchecks`, with the same results.

import { exportPlugin, ConfigError, KEEP, DROP, count } from "../../sdk/tailcar_plugin.js";

const DEFAULT_PATHS = ["/healthz", "/readyz", "/livez", "/ping"];

// The path of the first quoted request ("METHOD /path?query PROTO"): after the first quote, the
// word after the first space, up to a space or quote (as the Rust and Python versions read it).
const REQUEST = /^[^"]*"[^ ]* ([^ "]*)/;

class DropHealthchecks {
  constructor(config) {
    config.denyUnknown(["paths"]);
    const paths = config.list("paths", DEFAULT_PATHS);
    for (const p of paths) {
      if (!p.startsWith("/")) {
        throw new ConfigError(`\`paths\`: \`${p}\` is not a path (it must start with \`/\`)`);
      }
    }
    this.paths = new Set(paths);
  }

  process(record) {
    let path = record.hasFields ? record.field("path") : null;
    if (typeof path === "string") {
      path = path.split("?", 1)[0];
    } else {
      const m = REQUEST.exec(record.lineStr());
      path = m ? m[1].split("?", 1)[0] : null;
    }
    if (path !== null && this.paths.has(path)) {
      count("healthchecks_dropped");
      return DROP;
    }
    return KEEP;
  }
}

export const { init, process } = exportPlugin(DropHealthchecks);
