"""hostile (Python): misbehaves on purpose, for the sandbox tests only.

Config: `mode`: `loop` (never returns), `memory` (allocates until the limit), `raise` (an
exception with a traceback); `trigger`: it misbehaves only on batches holding a line that
contains this text (default: every batch).
"""

import tailcar_plugin as tp


class Hostile(tp.Plugin):
    def __init__(self, config):
        config.deny_unknown(["mode", "trigger"])
        self.mode = config.str("mode")
        if self.mode not in ("loop", "memory", "raise"):
            raise ValueError(f"`mode`: unknown mode `{self.mode}`")
        self.trigger = config.str("trigger", "").encode()

    def process(self, record):
        if self.trigger not in record.line:
            return tp.KEEP
        if self.mode == "loop":
            n = 0
            while True:
                n += 1
        if self.mode == "memory":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        explode(record.line_str())
        return tp.KEEP


def explode(line):
    raise RuntimeError(f"hostile plugin refused the line {line!r}")


WitWorld = tp.export(Hostile)
