"""lift_cost: a scratch component (not built by build.sh) measuring what crossing the WIT boundary
costs in componentize-py: config `mode` none | dataclass | ints | fields_dc | fields_json |
fields_cols builds, per batch, what each batch shape would need; see the issue 8 note."""
import json
import wit_world
from wit_world.imports import types, host

MODE = {"m": "none"}
KEEP = types.Output(True, [], b"", [], b"")

class WitWorld(wit_world.WitWorld):
    def init(self, config: str) -> None:
        MODE["m"] = json.loads(config).get("mode", "none")

    def process(self, batch):
        m = MODE["m"]
        n = len(batch.records)
        if m == "dataclass":
            x = [types.Entry(types.Span(i, 10), None) for i in range(n)]
        elif m == "ints":
            x = [i * 10 for i in range(n)]
        elif m == "fields_dc":
            # a parser's output: 10 fields per record as Field dataclasses
            out = []
            for i in range(n):
                for k in range(10):
                    out.append(types.Field(i, types.Span(k, 3), types.Value_Text(types.Span(k, 5))))
        elif m == "fields_json":
            parts = []
            for i in range(n):
                parts.append(json.dumps({"remote_addr": "10.0.0.1", "method": "GET", "path": "/x/y", "status": 200, "bytes": 1234, "referer": "-", "agent": "curl/8", "user": "-", "proto": "HTTP/1.1", "time": "2015"}))
            b = "\n".join(parts).encode()
        elif m == "fields_cols":
            owners = []; kinds = bytearray(); ends = []; ints = []
            for i in range(n):
                for k in range(10):
                    owners.append(i); kinds.append(3); ends.append(k * 5); ints.append(k)
        return KEEP
