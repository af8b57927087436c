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
    "BatchInfo",
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


class BatchInfo:
    """What every record of a batch shares: ``stream``, ``path``, ``read_at`` (seconds, nanos)
    and ``len`` (the number of records)."""

    __slots__ = ("stream", "path", "read_at", "len")

    def __init__(self, batch):
        self.stream = batch.stream
        self.path = batch.path
        self.read_at = (batch.read_at.seconds, batch.read_at.nanos)
        self.len = len(batch.line_ends)


class Plugin:
    """Base class (optional): ``__init__(config)``, ``begin_batch(info)``, ``process(record)``."""

    def __init__(self, config):
        config.deny_unknown([])

    def begin_batch(self, batch):
        pass

    def process(self, record):
        return KEEP


# Field kinds and change bits of the WIT columns (see wit/plugin.wit).
_NULL, _FALSE, _TRUE, _INT, _FLOAT, _TEXT, _JSON = range(7)
_LINE, _TIME, _FIELDS, _ROUTE = 1, 2, 4, 8
_NO_TIME = 2**32 - 1
_S64 = 2**63


def _decode_fields(cols, n):
    """The fields of a batch's ``n`` records, as one dict per record (None when it has none)."""
    out = [None] * n
    strings = cols.strings
    ints = iter(cols.ints)
    floats = iter(cols.floats)
    pos = 0
    for owner, kind, key_end, value_end in zip(
        cols.owners, cols.kinds, cols.key_ends, cols.value_ends
    ):
        key = strings[pos:key_end].decode()
        if kind == _TEXT:
            value = strings[key_end:value_end].decode()
        elif kind == _INT:
            value = next(ints)
        elif kind == _FLOAT:
            value = next(floats)
        elif kind == _JSON:
            value = json.loads(strings[key_end:value_end])
        else:
            value = None if kind == _NULL else kind == _TRUE
        pos = value_end
        d = out[owner]
        if d is None:
            d = out[owner] = {}
        d[key] = value
    return out


class _Batch:
    """A batch's columns, with its fields decoded on first use."""

    __slots__ = ("wit", "data", "ends", "seconds", "nanos", "_fields")

    def __init__(self, batch):
        self.wit = batch
        self.data = batch.data
        self.ends = batch.line_ends
        self.seconds = batch.times.seconds
        self.nanos = batch.times.nanos
        self._fields = None if batch.fields.owners else ()

    def fields(self, i):
        if self._fields is None:
            self._fields = _decode_fields(self.wit.fields, len(self.ends))
        return self._fields[i] if self._fields else None


class Record:
    """One record: its line (bytes, as written), time, stream, path and fields; and the changes
    a plugin makes to it."""

    __slots__ = ("_b", "_i", "_fields", "_line", "_time", "_route", "changed")

    def __init__(self, batch, index):
        self._b = batch
        self._i = index
        self._fields = None
        self._line = None
        self._time = None
        self._route = None
        self.changed = False

    @property
    def index(self):
        """The record's position in its batch."""
        return self._i

    @property
    def line(self):
        """The line's bytes (without the newline); not always UTF-8."""
        if self._line is not None:
            return self._line
        b, i = self._b, self._i
        return b.data[b.ends[i - 1] if i else 0 : b.ends[i]]

    def line_str(self):
        """The line as text (invalid UTF-8 replaced)."""
        return self.line.decode("utf-8", "replace")

    @property
    def stream(self):
        return self._b.wit.stream

    @property
    def path(self):
        return self._b.wit.path

    @property
    def time(self):
        """The event time as (seconds, nanos), or None."""
        if self._time is not None:
            return self._time
        b, i = self._b, self._i
        if not b.nanos or b.nanos[i] == _NO_TIME:
            return None
        return (b.seconds[i], b.nanos[i])

    @property
    def fields(self):
        """The record's fields as a dict (a copy: change them with ``set_field``)."""
        if self._fields is not None:
            return dict(self._fields)
        return dict(self._b.fields(self._i) or ())

    @property
    def has_fields(self):
        """Whether the record has any field."""
        if self._fields is not None:
            return bool(self._fields)
        return bool(self._b.fields(self._i))

    def field(self, key, default=None):
        """One field's value, or ``default``."""
        if self._fields is not None:
            return self._fields.get(key, default)
        return (self._b.fields(self._i) or {}).get(key, default)

    def _own_fields(self):
        if self._fields is None:
            self._fields = dict(self._b.fields(self._i) or ())
        self.changed = True
        return self._fields

    def set_field(self, key, value):
        """Sets a field: str, int, float, bool, None, or a list/dict (kept as JSON)."""
        self._own_fields()[key] = value

    def set_fields(self, values):
        """Sets several fields at once (a dict), as a parser does."""
        self._own_fields().update(values)

    def remove_field(self, key):
        """Removes a field; True if it was there."""
        return self._own_fields().pop(key, _EMPTY) is not _EMPTY

    def set_line(self, line):
        self._line = line.encode() if isinstance(line, str) else bytes(line)
        self.changed = True

    def set_time(self, seconds, nanos=0):
        if not 0 <= nanos <= 999_999_999:
            raise ValueError(f"nanos must be in 0..=999999999, not {nanos}")
        self._time = (int(seconds), int(nanos))
        self.changed = True

    def route_to(self, sinks):
        """Sends the record to these sinks only (among the stream's)."""
        self._route = [sinks] if isinstance(sinks, str) else list(sinks)
        self.changed = True


_EMPTY = object()


class _Out:
    """The output columns being built."""

    def __init__(self, kept):
        # The records before the first change were kept as they came.
        self.sources = list(range(kept))
        self.changes = bytearray(kept)
        self.data = bytearray()
        self.line_ends = []
        self.seconds = []
        self.nanos = []
        self.owners = []
        self.kinds = bytearray()
        self.key_ends = []
        self.value_ends = []
        self.ints = []
        self.floats = []
        self.strings = bytearray()
        self.routes = bytearray()
        self.route_ends = []

    def field(self, owner, key, v):
        strings = self.strings
        self.owners.append(owner)
        strings += key.encode()
        self.key_ends.append(len(strings))
        if v is None:
            kind = _NULL
        elif v is True or v is False:
            kind = _TRUE if v else _FALSE
        elif isinstance(v, int) and -_S64 <= v < _S64:
            self.ints.append(v)
            kind = _INT
        elif isinstance(v, float):
            self.floats.append(v)
            kind = _FLOAT
        elif isinstance(v, str):
            strings += v.encode()
            kind = _TEXT
        else:
            # Lists, dicts, and integers beyond 64 bits.
            strings += json.dumps(v, separators=(",", ":")).encode()
            kind = _JSON
        self.kinds.append(kind)
        self.value_ends.append(len(strings))

    def emit(self, source, rec, line=None, fields=None, time=None):
        changes = 0
        if line is None:
            line = rec._line
        if line is not None:
            self.data += line
            self.line_ends.append(len(self.data))
            changes |= _LINE
        if time is None:
            time = rec._time
        if time is not None:
            self.seconds.append(time[0])
            self.nanos.append(time[1])
            changes |= _TIME
        if fields is None:
            fields = rec._fields
        if fields is not None:
            owner = len(self.sources)
            for k, v in fields.items():
                self.field(owner, k, v)
            changes |= _FIELDS
        if rec._route is not None:
            self.routes += ",".join(rec._route).encode()
            self.route_ends.append(len(self.routes))
            changes |= _ROUTE
        self.sources.append(source)
        self.changes.append(changes)

    def output(self):
        return types.Output(
            False,
            self.sources,
            bytes(self.changes),
            bytes(self.data),
            self.line_ends,
            types.Times(self.seconds, self.nanos),
            types.Fields(
                self.owners,
                bytes(self.kinds),
                self.key_ends,
                self.value_ends,
                self.ints,
                self.floats,
                bytes(self.strings),
            ),
            bytes(self.routes),
            self.route_ends,
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


_KEEP_ALL = types.Output(
    True, [], b"", b"", [], types.Times([], []), types.Fields([], b"", [], [], [], [], b""), b"", []
)


def _run(plugin, batch):
    plugin.begin_batch(BatchInfo(batch))
    process = plugin.process
    b = _Batch(batch)
    out = None
    for i in range(len(b.ends)):
        rec = Record(b, i)
        verdict = process(rec)
        if out is None:
            if verdict is KEEP and not rec.changed:
                continue
            # The first record not kept as it came: the ones before it are written out now.
            out = _Out(i)
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
    return out.output()


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
