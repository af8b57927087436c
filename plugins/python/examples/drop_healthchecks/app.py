"""drop_healthchecks (Python): drops access-log records of requests to health-check paths.

Config: `paths`, a list (or a comma-separated string) of paths; default
`/healthz,/readyz,/livez,/ping`. A request matches when its path, without the query string, is
one of them. The path is the `path` field when a parser set one, else the request in the line
(`"GET /healthz HTTP/1.1"`). Dropped records are counted as `healthchecks_dropped`. The same
plugin as the Rust `plugins/examples/drop_healthchecks`, with the same results.
"""

import tailcar_plugin as tp

DEFAULT_PATHS = ["/healthz", "/readyz", "/livez", "/ping"]


def request_path(line):
    """The path of the first quoted request (`"METHOD /path?query PROTO"`) in the line."""
    quote = line.find(b'"')
    if quote < 0:
        return None
    request = line[quote + 1 :]
    space = request.find(b" ")
    if space < 0:
        return None
    rest = request[space + 1 :]
    end = len(rest)
    for stop in (b" ", b'"'):
        i = rest.find(stop)
        if 0 <= i < end:
            end = i
    return rest[:end]


class DropHealthchecks(tp.Plugin):
    def __init__(self, config):
        config.deny_unknown(["paths"])
        paths = config.list("paths", DEFAULT_PATHS)
        for p in paths:
            if not p.startswith("/"):
                raise ValueError(f"`paths`: `{p}` is not a path (it must start with `/`)")
        self.paths = {p.encode() for p in paths}

    def process(self, record):
        path = record.field("path") if record.has_fields else None
        path = path.encode() if isinstance(path, str) else request_path(record.line)
        if path is not None and path.split(b"?", 1)[0] in self.paths:
            tp.count("healthchecks_dropped")
            return tp.DROP
        return tp.KEEP


WitWorld = tp.export(DropHealthchecks)
