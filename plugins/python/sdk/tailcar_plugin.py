"""tailcar_plugin: write tailcar plugins in Python.

A plugin is a class with ``__init__(self, config)`` and ``process(self, record)``; ``export``
turns it into the component's implementation of tailcar's world (``wit/plugin.wit``), which
componentize-py compiles to WebAssembly::

    import tailcar_plugin as tp

    class DropDebug(tp.Plugin):
        def __init__(self, config):
            config.deny_unknown(["prefix"])
            self.prefix = config.str("prefix", "DEBUG").encode()

        def process(self, record):
            if record.line.startswith(self.prefix):
                tp.count("debug_dropped")
                return tp.DROP
            return tp.KEEP

    WitWorld = tp.export(DropDebug)

``process`` returns ``KEEP``, ``DROP`` or ``Split([...])`` (one record becomes several). Raising
an exception fails the batch: the traceback goes to tailcar's log with the plugin's name and the
stream's ``on_error`` policy decides what becomes of the batch's records. Only what a plugin
changed crosses back to tailcar; a batch kept whole costs one flag.
"""

import json
import sys
import traceback

from componentize_py_types import Err
from wit_world.imports import host, types

__all__ = [
    "KEEP",
    "DROP",
    "Split",
    "Piece",
    "Plugin",
    "Config",
    "Record",
    "export",
    "log",
    "count",
    "Level",
]

KEEP = "keep"
DROP = "drop"
Level = host.Level


class Piece:
    """One record of a split: its line, and fields added to the original record's."""

    __slots__ = ("line", "fields", "time")

    def __init__(self, line, fields=None, time=None):
        self.line = line.encode() if isinstance(line, str) else bytes(line)
        self.fields = fields or {}
        self.time = time


class Split:
    """The verdict that turns one record into ``pieces`` (a list of ``Piece``)."""

    __slots__ = ("pieces",)

    def __init__(self, pieces):
        self.pieces = list(pieces)


class Config:
    """The plugin's ``config:`` from tailcar's YAML, with typed getters that name the key."""

    def __init__(self, values):
        if not isinstance(values, dict):
            raise ValueError("config must be a mapping")
        self.values = values

    def _get(self, key, kind, default):
        v = self.values.get(key)
        if v is None:
            return default
        if not isinstance(v, kind) or (kind is int and isinstance(v, bool)):
            raise ValueError(f"config `{key}`: expected {kind.__name__}, got {json.dumps(v)}")
        return v

    def str(self, key, default=None):
        return self._get(key, str, default)

    def int(self, key, default=None):
        return self._get(key, int, default)

    def bool(self, key, default=None):
        return self._get(key, bool, default)

    def list(self, key, default=None):
        """A list of strings; a comma-separated string is accepted too."""
        v = self.values.get(key)
        if v is None:
            return default
        if isinstance(v, str):
            return [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, list) and all(isinstance(s, str) for s in v):
            return v
        raise ValueError(f"config `{key}`: expected a list of strings, got {json.dumps(v)}")

    def deny_unknown(self, known):
        unknown = sorted(k for k in self.values if k not in known)
        if unknown:
            raise ValueError(
                f"unknown config key `{unknown[0]}` (known: {', '.join(known) or 'none'})"
            )


class Plugin:
    """Base class (optional): ``__init__(config)``, ``begin_batch(info)``, ``process(record)``."""

    def __init__(self, config):
        config.deny_unknown([])

    def begin_batch(self, batch):
        pass

    def process(self, record):
        return KEEP


def _value(v, strings):
    """A WIT value as a Python value."""
    if isinstance(v, types.Value_Text):
        s = v.value
        return strings[s.start : s.start + s.len].decode()
    if isinstance(v, types.Value_Json):
        s = v.value
        return json.loads(strings[s.start : s.start + s.len])
    if isinstance(v, types.Value_Null):
        return None
    return v.value


class Record:
    """One record: its line (bytes, as written), time, stream, path and fields; and the changes
    a plugin makes to it."""

    __slots__ = ("_batch", "_entry", "_input", "_fields", "_line", "_time", "_route", "changed")

    def __init__(self, batch, entry, input_fields):
        self._batch = batch
        self._entry = entry
        self._input = input_fields
        self._fields = None
        self._line = None
        self._time = None
        self._route = None
        self.changed = False

    @property
    def line(self):
        """The line's bytes (without the newline); not always UTF-8."""
        if self._line is not None:
            return self._line
        s = self._entry.line
        return self._batch.data[s.start : s.start + s.len]

    def line_str(self):
        """The line as text (invalid UTF-8 replaced)."""
        return self.line.decode("utf-8", "replace")

    @property
    def stream(self):
        return self._batch.stream

    @property
    def path(self):
        return self._batch.path

    @property
    def time(self):
        """The event time as (seconds, nanos), or None."""
        if self._time is not None:
            return self._time
        t = self._entry.time
        return None if t is None else (t.seconds, t.nanos)

    @property
    def fields(self):
        """The record's fields as a dict (a copy once changed)."""
        if self._fields is not None:
            return self._fields
        strings = self._batch.strings
        return {
            strings[f.key.start : f.key.start + f.key.len].decode(): _value(f.value, strings)
            for f in self._input
        }

    @property
    def has_fields(self):
        """Whether the record has any field (cheaper than ``fields``)."""
        return bool(self._fields if self._fields is not None else self._input)

    def field(self, key):
        """One field's value, or None."""
        if self._fields is not None:
            return self._fields.get(key)
        strings = self._batch.strings
        want = key.encode()
        for f in self._input:
            k = f.key
            if strings[k.start : k.start + k.len] == want:
                return _value(f.value, strings)
        return None

    def _own_fields(self):
        if self._fields is None:
            self._fields = self.fields
        self.changed = True
        return self._fields

    def set_field(self, key, value):
        """Sets a field: str, int, float, bool, None, or a list/dict (kept as JSON)."""
        self._own_fields()[key] = value

    def remove_field(self, key):
        self._own_fields().pop(key, None)

    def set_line(self, line):
        self._line = line.encode() if isinstance(line, str) else bytes(line)
        self.changed = True

    def set_time(self, seconds, nanos=0):
        self._time = (int(seconds), int(nanos))
        self.changed = True

    def route_to(self, sinks):
        """Sends the record to these sinks only (among the stream's)."""
        self._route = list(sinks)
        self.changed = True


class _Out:
    """The output being packed."""

    def __init__(self):
        self.records = []
        self.data = bytearray()
        self.fields = []
        self.strings = bytearray()

    def string(self, s):
        b = s.encode() if isinstance(s, str) else s
        span = types.Span(len(self.strings), len(b))
        self.strings += b
        return span

    def line(self, b):
        span = types.Span(len(self.data), len(b))
        self.data += b
        return span

    def field(self, key, v):
        owner = len(self.records)
        if v is None:
            value = types.Value_Null()
        elif isinstance(v, bool):
            value = types.Value_Boolean(v)
        elif isinstance(v, int):
            if not -(2**63) <= v < 2**63:
                value = types.Value_Json(self.string(str(v)))
            else:
                value = types.Value_Integer(v)
        elif isinstance(v, float):
            value = types.Value_Float(v)
        elif isinstance(v, str):
            value = types.Value_Text(self.string(v))
        else:
            value = types.Value_Json(self.string(json.dumps(v, separators=(",", ":"))))
        self.fields.append(types.Field(owner, self.string(key), value))

    def emit(self, source, rec, line=None, fields=None, time=None):
        if line is not None:
            line = self.line(line)
        elif rec._line is not None:
            line = self.line(rec._line)
        if fields is None:
            fields = rec._fields
        if fields is not None:
            for k, v in fields.items():
                self.field(k, v)
        t = time if time is not None else rec._time
        self.records.append(
            types.Emitted(
                source,
                line,
                None if t is None else types.Timestamp(t[0], t[1]),
                types.FieldsFrom.INPUT if fields is None else types.FieldsFrom.OUTPUT,
                None if rec._route is None else self.string(",".join(rec._route)),
            )
        )


_counts = {}


def count(name, delta=1):
    """Adds ``delta`` to the plugin's counter ``name`` in tailcar's metrics (summed per batch)."""
    _counts[name] = _counts.get(name, 0) + delta


def _flush_counts():
    for name, n in _counts.items():
        if n > 0:
            host.count(name, min(n, 2**32 - 1))
    _counts.clear()


def log(level, message):
    """Writes ``message`` to tailcar's log, tagged with the plugin's name."""
    host.log(level, str(message))


_KEEP_ALL = types.Output(True, [], b"", [], b"")
_EMPTY = ()


def _run(plugin, batch):
    plugin.begin_batch(batch)
    process = plugin.process
    entries = batch.records
    all_fields = batch.fields
    n_fields = len(all_fields)
    f = 0
    out = None
    for i, entry in enumerate(entries):
        if n_fields:
            start = f
            while f < n_fields and all_fields[f].owner == i:
                f += 1
            own = all_fields[start:f]
        else:
            own = _EMPTY
        rec = Record(batch, entry, own)
        verdict = process(rec)
        if out is None:
            if verdict is KEEP and not rec.changed:
                continue
            # The first record not kept as it came: the ones before it are written out now.
            out = _Out()
            for j in range(i):
                out.records.append(types.Emitted(j, None, None, types.FieldsFrom.INPUT, None))
        if verdict is KEEP or verdict == KEEP:
            out.emit(i, rec)
        elif verdict is DROP or verdict == DROP:
            pass
        elif isinstance(verdict, Split):
            base = rec.fields
            for p in verdict.pieces:
                fields = dict(base)
                fields.update(p.fields)
                out.emit(i, rec, line=p.line, fields=fields, time=p.time)
        else:
            raise TypeError(f"process returned {verdict!r}; expected KEEP, DROP or Split")
    _flush_counts()
    if out is None:
        return _KEEP_ALL
    return types.Output(False, out.records, bytes(out.data), out.fields, bytes(out.strings))


def _failure(what):
    """Prints the current exception's traceback to stderr (tailcar logs it with the plugin's
    name) and returns the error tailcar gets."""
    kind, value, _ = sys.exc_info()
    traceback.print_exc(file=sys.stderr)
    sys.stderr.flush()
    return Err(f"{what}: {kind.__name__}: {value}")


def export(plugin_class):
    """The ``WitWorld`` class componentize-py exports, running ``plugin_class``."""
    state = {}

    class WitWorld:
        def init(self, config):
            try:
                values = json.loads(config) if config.strip() else {}
                state["plugin"] = plugin_class(Config(values))
            except ValueError as e:
                # A refused configuration: the message says why, no traceback needed.
                raise Err(str(e))
            except Exception:
                raise _failure("init")

        def process(self, batch):
            plugin = state.get("plugin")
            if plugin is None:
                raise Err("process called before init")
            try:
                return _run(plugin, batch)
            except Exception:
                _counts.clear()
                raise _failure("process")

    return WitWorld
