// hostile (JavaScript): misbehaves on purpose, for the sandbox tests only.
//
// Config: `mode`: `loop` (never returns), `memory` (allocates until the limit), `raise` (an
// exception with a stack); `trigger`: it misbehaves only on batches holding a line that
// contains this text (default: every batch).

import { exportPlugin, ConfigError, KEEP } from "../../sdk/tailcar_plugin.js";

function explode(line) {
  throw new Error(`hostile plugin refused the line ${JSON.stringify(line)}`);
}

class Hostile {
  constructor(config) {
    config.denyUnknown(["mode", "trigger"]);
    this.mode = config.str("mode", null);
    if (!["loop", "memory", "raise"].includes(this.mode)) {
      throw new ConfigError(`\`mode\`: unknown mode \`${this.mode}\``);
    }
    this.trigger = config.str("trigger", "");
  }

  process(record) {
    const line = record.lineStr();
    if (!line.includes(this.trigger)) return KEEP;
    if (this.mode === "loop") {
      let n = 0;
      for (;;) n++;
    }
    if (this.mode === "memory") {
      const hoard = [];
      for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
    }
    explode(line);
    return KEEP;
  }
}

export const { init, process } = exportPlugin(Hostile);
