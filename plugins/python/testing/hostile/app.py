"""hostile (Python): misbehaves on purpose, for the sandbox tests only.

Config: `mode`: `loop` (never returns), `memory` (allocates until the limit), `raise` (an
exception with a traceback), `probe` (tries to read files, the environment and the network,
and records what it got as fields); `trigger`: it misbehaves only on batches holding a line that
contains this text (default: every batch).
"""

import os

import tailcar_plugin as tp


class Hostile(tp.Plugin):
    def __init__(self, config):
        config.deny_unknown(["mode", "trigger"])
        self.mode = config.str("mode")
        if self.mode not in ("loop", "memory", "raise", "probe"):
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
        if self.mode == "probe":
            for k, v in probe().items():
                record.set_field(k, v)
            return tp.KEEP
        explode(record.line_str())
        return tp.KEEP


def attempt(f):
    """What `f()` gave, or the name of the exception it raised."""
    try:
        return f()
    except Exception as e:
        return type(e).__name__


def probe():
    def connect():
        import socket

        socket.create_connection(("127.0.0.1", 9), timeout=1)
        return "connected"

    return {
        "file": attempt(lambda: open("/etc/hostname").read() and "read"),
        "listdir": attempt(lambda: str(len(os.listdir("/")))),
        "cwd_files": attempt(lambda: str(len(os.listdir(".")))),
        "env": len(os.environ),
        "net": attempt(connect),
    }


def explode(line):
    raise RuntimeError(f"hostile plugin refused the line {line!r}")


WitWorld = tp.export(Hostile)
