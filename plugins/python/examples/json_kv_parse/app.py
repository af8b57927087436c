"""json_kv_parse (Python): a parser. A line that is a JSON object becomes its fields; any other
line is read as `key=value` pairs (logfmt: values may be "quoted" with \\" escapes; a bare key
is `true`). Numbers become integers or floats, `true`/`false` booleans.

Config: `time_key` (optional): a field holding an RFC 3339 time or Unix seconds, which becomes
the record's event time. `prefix` (optional): put every field under this name instead of at the
top level. A line that is neither (no `=` at all, or broken JSON) is kept with a `parse_error`
field and counted as `parse_errors`: never dropped.
"""

import json
import re
from datetime import datetime

import tailcar_plugin as tp

PAIR = re.compile(r'\s*([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?')
INT = re.compile(r"-?(?:0|[1-9][0-9]*)$")
FLOAT = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$")


def typed(v):
    if v == "true":
        return True
    if v == "false":
        return False
    if INT.match(v):
        n = int(v)
        return n if -(2**63) <= n < 2**63 else v
    if FLOAT.match(v):
        return float(v)
    return v


def logfmt(text):
    """`key=value` pairs, or None when the line has none."""
    fields = {}
    pos = 0
    saw_pair = False
    while pos < len(text):
        m = PAIR.match(text, pos)
        if m is None or m.end() == pos:
            return None
        key, raw = m.group(1), m.group(2)
        if raw is None:
            fields[key] = True
        elif raw.startswith('"'):
            fields[key] = json.loads(raw)
            saw_pair = True
        else:
            fields[key] = typed(raw)
            saw_pair = True
        pos = m.end()
        while pos < len(text) and text[pos] == " ":
            pos += 1
    return fields if saw_pair else None


def event_time(v):
    """(seconds, nanos) from an RFC 3339 string or Unix seconds, or None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        seconds = int(v)
        return seconds, int(round((v - seconds) * 1e9))
    if isinstance(v, str):
        text = v.replace("Z", "+00:00")
        frac = 0
        m = re.match(r"(.*T\d\d:\d\d:\d\d)\.(\d+)(.*)$", text)
        if m:
            text = m.group(1) + m.group(3)
            frac = int((m.group(2) + "000000000")[:9])
        try:
            t = datetime.fromisoformat(text)
        except ValueError:
            return None
        if t.tzinfo is None:
            return None
        return int(t.timestamp()), frac
    return None


class JsonKvParse(tp.Plugin):
    def __init__(self, config):
        config.deny_unknown(["time_key", "prefix"])
        self.time_key = config.str("time_key")
        self.prefix = config.str("prefix")

    def process(self, record):
        text = record.line_str()
        fields = None
        if text.lstrip().startswith("{"):
            try:
                value = json.loads(text)
                fields = value if isinstance(value, dict) else None
            except ValueError as e:
                record.set_field("parse_error", f"invalid JSON: {e}")
                tp.count("parse_errors")
                return tp.KEEP
        else:
            try:
                fields = logfmt(text)
            except ValueError as e:
                fields = None
        if fields is None:
            record.set_field("parse_error", "neither a JSON object nor key=value pairs")
            tp.count("parse_errors")
            return tp.KEEP
        if self.time_key is not None and self.time_key in fields:
            t = event_time(fields[self.time_key])
            if t is not None:
                record.set_time(*t)
        if self.prefix:
            record.set_field(self.prefix, fields)
        else:
            record.set_fields(fields)
        return tp.KEEP


WitWorld = tp.export(JsonKvParse)
