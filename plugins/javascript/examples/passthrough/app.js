// passthrough (JavaScript): keeps every record as it is. The smallest plugin, a template, and
// the benchmark's baseline for what the JavaScript runtime costs per record.

import { exportPlugin, KEEP } from "../../sdk/tailcar_plugin.js";

class Passthrough {
  constructor(config) {
    config.denyUnknown([]);
  }

  process(record) {
    return KEEP;
  }
}

export const { init, process } = exportPlugin(Passthrough);
