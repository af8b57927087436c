// tailcar_plugin: write tailcar plugins in JavaScript.
//
// A plugin is a class with `constructor(config)` and `process(record)`; `exportPlugin` turns it
// into the component's implementation of tailcar's world (`wit/plugin.wit`), which
// componentize-js (StarlingMonkey) or componentize-qjs (QuickJS) compiles to WebAssembly:
//
//     import { exportPlugin, KEEP, DROP, count } from "../../sdk/tailcar_plugin.js";
//
//     class DropDebug {
//       constructor(config) {
//         config.denyUnknown(["prefix"]);
//         this.prefix = config.str("prefix", "DEBUG");
//       }
//       process(record) {
//         if (record.lineStr().startsWith(this.prefix)) {
//           count("debug_dropped");
//           return DROP;
//         }
//         return KEEP;
//       }
//     }
//
//     export const { init, process } = exportPlugin(DropDebug);
//
// `process` returns KEEP, DROP or `new Split([...pieces])` (one record becomes several).
// Throwing fails the batch: the exception and its stack go to tailcar's log with the plugin's
// name, and the stream's `on_error` policy decides what becomes of the batch's records. Only what
// a plugin changed crosses back to tailcar; a batch kept whole costs one flag.
//
// The batch arrives in columns (typed arrays); this module reads them lazily, so a plugin that
// only looks at lines never decodes a field. No 64-bit nanosecond count crosses: times are
// [seconds, nanos] pairs of ordinary numbers.

import { log as hostLog, count as hostCount } from "tailcar:plugin/host@0.2.0";

export const KEEP = "keep";
export const DROP = "drop";

// Field kinds and change bits of the WIT columns (see wit/plugin.wit).
const NULL = 0, FALSE = 1, TRUE = 2, INT = 3, FLOAT = 4, TEXT = 5, JSON_KIND = 6;
const LINE = 1, TIME = 2, FIELDS = 4, ROUTE = 8;
const NO_TIME = 0xffffffff;

// UTF-8 without relying on TextEncoder/TextDecoder, which not every engine offers (QuickJS).
function utf8Decode(bytes) {
  let out = "";
  let chunk = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp = 0xfffd;
    let n = 1;
    if (b < 0x80) {
      cp = b;
    } else if (b >= 0xc2 && b < 0xe0 && i + 1 < bytes.length && (bytes[i + 1] & 0xc0) === 0x80) {
      cp = ((b & 0x1f) << 6) | (bytes[i + 1] & 0x3f);
      n = 2;
    } else if (b >= 0xe0 && b < 0xf0 && i + 2 < bytes.length &&
      (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80) {
      cp = ((b & 0x0f) << 12) | ((bytes[i + 1] & 0x3f) << 6) | (bytes[i + 2] & 0x3f);
      n = 3;
      if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) { cp = 0xfffd; n = 1; }
    } else if (b >= 0xf0 && b < 0xf5 && i + 3 < bytes.length &&
      (bytes[i + 1] & 0xc0) === 0x80 && (bytes[i + 2] & 0xc0) === 0x80 && (bytes[i + 3] & 0xc0) === 0x80) {
      cp = ((b & 0x07) << 18) | ((bytes[i + 1] & 0x3f) << 12) | ((bytes[i + 2] & 0x3f) << 6) | (bytes[i + 3] & 0x3f);
      n = 4;
      if (cp < 0x10000 || cp > 0x10ffff) { cp = 0xfffd; n = 1; }
    }
    chunk.push(cp);
    if (chunk.length >= 4096) { out += String.fromCodePoint(...chunk); chunk = []; }
    i += n;
  }
  return out + String.fromCodePoint(...chunk);
}

function utf8Encode(s) {
  const out = [];
  for (const ch of s) {
    const cp = ch.codePointAt(0);
    if (cp < 0x80) out.push(cp);
    else if (cp < 0x800) out.push(0xc0 | (cp >> 6), 0x80 | (cp & 0x3f));
    else if (cp < 0x10000) out.push(0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
    else out.push(0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f));
  }
  return out;
}

const decoder = typeof TextDecoder === "function" ? new TextDecoder() : null;
const encoder = typeof TextEncoder === "function" ? new TextEncoder() : null;

/** The bytes as text (invalid UTF-8 replaced by U+FFFD). */
export function decode(bytes) {
  return decoder ? decoder.decode(bytes) : utf8Decode(bytes);
}

/** The text as UTF-8 bytes. */
export function encode(text) {
  return encoder ? encoder.encode(text) : Uint8Array.from(utf8Encode(text));
}

/** The plugin's `config:` from tailcar's YAML, with typed getters that name the key. */
export class Config {
  constructor(values) {
    if (values === null || typeof values !== "object" || Array.isArray(values)) {
      throw new ConfigError("config must be a mapping");
    }
    this.values = values;
  }

  #get(key, type, fallback) {
    const v = this.values[key];
    if (v === undefined || v === null) return fallback;
    const ok = type === "integer" ? Number.isInteger(v) : typeof v === type;
    if (!ok) throw new ConfigError(`config \`${key}\`: expected ${type}, got ${JSON.stringify(v)}`);
    return v;
  }

  str(key, fallback) { return this.#get(key, "string", fallback); }
  int(key, fallback) { return this.#get(key, "integer", fallback); }
  bool(key, fallback) { return this.#get(key, "boolean", fallback); }

  /** A list of strings; a comma-separated string is accepted too. */
  list(key, fallback) {
    const v = this.values[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v === "string") return v.split(",").map((s) => s.trim()).filter((s) => s);
    if (Array.isArray(v) && v.every((s) => typeof s === "string")) return v;
    throw new ConfigError(`config \`${key}\`: expected a list of strings, got ${JSON.stringify(v)}`);
  }

  denyUnknown(known) {
    const unknown = Object.keys(this.values).filter((k) => !known.includes(k)).sort();
    if (unknown.length) {
      throw new ConfigError(
        `unknown config key \`${unknown[0]}\` (known: ${known.join(", ") || "none"})`,
      );
    }
  }
}

/** A refused configuration: its message is the reason, no stack needed. */
export class ConfigError extends Error {}

/** One record of a split: its line, and fields added to the original record's. */
export class Piece {
  constructor(line, fields = {}, time = null) {
    this.line = line;
    this.fields = fields;
    this.time = time;
  }
}

/** The verdict that turns one record into `pieces`. */
export class Split {
  constructor(pieces) {
    this.pieces = pieces;
  }
}

/** What every record of a batch shares. */
class BatchInfo {
  constructor(b) {
    this.stream = b.stream;
    this.path = b.path;
    this.readAt = [Number(b.readAt.seconds), b.readAt.nanos];
    this.len = b.lineEnds.length;
  }
}

const NON_ASCII = /[^\x00-\x7f]/;

/** A byte column as text, sliceable by byte offsets. Decoding costs one call into the engine per
 * column (a call per line or per field costs microseconds each in StarlingMonkey); when the
 * column is all ASCII, byte offsets are character offsets and slices are cheap. */
class TextColumn {
  constructor(bytes) {
    this.bytes = bytes;
    this.text = null;
    this.ascii = false;
  }

  slice(start, end) {
    if (this.text === null) {
      this.text = decode(this.bytes);
      // Any byte above 0x7f decodes to a non-ASCII character (itself or U+FFFD).
      this.ascii = !NON_ASCII.test(this.text);
    }
    return this.ascii ? this.text.slice(start, end) : decode(this.bytes.subarray(start, end));
  }
}

function decodeFields(cols, n) {
  const out = new Array(n).fill(null);
  const s = new TextColumn(cols.strings);
  let ints = 0, floats = 0, pos = 0;
  for (let i = 0; i < cols.owners.length; i++) {
    const keyEnd = cols.keyEnds[i], valueEnd = cols.valueEnds[i];
    const key = s.slice(pos, keyEnd);
    let value;
    switch (cols.kinds[i]) {
      case TEXT: value = s.slice(keyEnd, valueEnd); break;
      case JSON_KIND: value = JSON.parse(s.slice(keyEnd, valueEnd)); break;
      case INT: {
        // A JavaScript number holds integers exactly up to 2^53; larger ones stay BigInt.
        const big = cols.ints[ints++];
        const small = Number(big);
        value = Number.isSafeInteger(small) ? small : big;
        break;
      }
      case FLOAT: value = cols.floats[floats++]; break;
      case TRUE: value = true; break;
      case FALSE: value = false; break;
      default: value = null;
    }
    pos = valueEnd;
    const owner = cols.owners[i];
    (out[owner] ??= {})[key] = value;
  }
  return out;
}

class Batch {
  constructor(b) {
    this.wit = b;
    this.data = b.data;
    this.text = new TextColumn(b.data);
    this.ends = b.lineEnds;
    this.seconds = b.times.seconds;
    this.nanos = b.times.nanos;
    this.decoded = b.fields.owners.length ? null : [];
  }

  fields(i) {
    if (this.decoded === null) this.decoded = decodeFields(this.wit.fields, this.ends.length);
    return this.decoded[i] ?? null;
  }
}

/** One record: its line (bytes, as written), time, stream, path and fields; and the changes a
 * plugin makes to it. */
export class Record {
  constructor(batch, index) {
    this._b = batch;
    this._i = index;
    this._line = null;
    this._fields = null;
    this._time = null;
    this._route = null;
    this.changed = false;
  }

  get index() { return this._i; }
  get stream() { return this._b.wit.stream; }
  get path() { return this._b.wit.path; }

  /** The line's bytes (a Uint8Array, without the newline); not always UTF-8. */
  get line() {
    if (this._line !== null) return typeof this._line === "string" ? encode(this._line) : this._line;
    const b = this._b, i = this._i;
    return b.data.subarray(i ? b.ends[i - 1] : 0, b.ends[i]);
  }

  /** The line as text (invalid UTF-8 replaced). */
  lineStr() {
    if (this._line !== null) return typeof this._line === "string" ? this._line : decode(this._line);
    // Inlined TextColumn.slice: every call costs in an interpreted engine.
    const t = this._b.text, ends = this._b.ends, i = this._i;
    const start = i ? ends[i - 1] : 0;
    if (t.text === null) t.slice(0, 0);
    return t.ascii ? t.text.slice(start, ends[i]) : decode(t.bytes.subarray(start, ends[i]));
  }

  /** The event time as [seconds, nanos], or null. */
  get time() {
    if (this._time !== null) return this._time;
    const b = this._b, i = this._i;
    if (!b.nanos.length || b.nanos[i] === NO_TIME) return null;
    return [Number(b.seconds[i]), b.nanos[i]];
  }

  /** The record's fields as an object (a copy: change them with setField). */
  get fields() {
    return { ...(this._fields ?? this._b.fields(this._i)) };
  }

  get hasFields() {
    const f = this._fields ?? this._b.fields(this._i);
    return f !== null && Object.keys(f).length > 0;
  }

  /** One field's value, or `fallback`. */
  field(key, fallback = null) {
    const f = this._fields ?? this._b.fields(this._i);
    return f !== null && Object.hasOwn(f, key) ? f[key] : fallback;
  }

  _own() {
    if (this._fields === null) {
      const input = this._b.decoded === null || this._b.decoded.length ? this._b.fields(this._i) : null;
      this._fields = input === null ? {} : Object.assign({}, input);
    }
    this.changed = true;
    return this._fields;
  }

  /** Sets a field: string, number, BigInt, boolean, null, or an array/object (kept as JSON). */
  setField(key, value) { this._own()[key] = value; }

  /** Removes a field; true if it was there. */
  removeField(key) {
    const f = this._own();
    const had = Object.hasOwn(f, key);
    delete f[key];
    return had;
  }

  /** Replaces the line: a string (written as UTF-8) or bytes (a Uint8Array). */
  setLine(line) {
    this._line = line;
    this.changed = true;
  }

  setTime(seconds, nanos = 0) {
    if (!Number.isInteger(nanos) || nanos < 0 || nanos > 999999999) {
      throw new RangeError(`nanos must be in 0..=999999999, not ${nanos}`);
    }
    this._time = [Math.trunc(seconds), nanos];
    this.changed = true;
  }

  /** Sends the record to these sinks only (among the stream's). */
  routeTo(sinks) {
    this._route = typeof sinks === "string" ? [sinks] : [...sinks];
    this.changed = true;
  }
}

/** A byte column built from strings and byte arrays, back to back. Ends are recorded as part
 * counts and turned into byte offsets once per batch: when every part is an ASCII string (the
 * usual case), the whole column is encoded with one call into the engine. */
class Parts {
  constructor() {
    this.parts = [];
    this.chars = [0];
    this.bytesParts = false;
  }

  /** Appends a part; returns the mark of its end (resolve it with `finish`). */
  push(part) {
    const parts = this.parts;
    if (typeof part !== "string") this.bytesParts = true;
    this.chars.push(this.chars[parts.length] + part.length);
    return parts.push(part);
  }

  /** The column's bytes, and the byte offset of every mark. */
  finish() {
    if (!this.bytesParts) {
      const text = this.parts.join("");
      if (!NON_ASCII.test(text)) return [encode(text), this.chars];
    }
    const chunks = this.parts.map((p) => (typeof p === "string" ? encode(p) : p));
    const offsets = [0];
    let total = 0;
    for (const c of chunks) offsets.push((total += c.length));
    const bytes = new Uint8Array(total);
    for (let i = 0; i < chunks.length; i++) bytes.set(chunks[i], offsets[i]);
    return [bytes, offsets];
  }
}

/** Resolves marks from `Parts.push` into byte offsets. */
function resolve(marks, offsets) {
  const out = new Uint32Array(marks.length);
  for (let i = 0; i < marks.length; i++) out[i] = offsets[marks[i]];
  return out;
}

const I64_MIN = -(2n ** 63n), I64_MAX = 2n ** 63n - 1n;

/** The output columns being built. */
class Out {
  constructor(kept) {
    // The records before the first change were kept as they came.
    this.sources = Array.from({ length: kept }, (_, i) => i);
    this.changes = new Array(kept).fill(0);
    this.data = new Parts();
    this.lineEnds = [];
    this.seconds = [];
    this.nanos = [];
    this.owners = [];
    this.kinds = [];
    this.keyEnds = [];
    this.valueEnds = [];
    this.ints = [];
    this.floats = [];
    this.strings = new Parts();
    this.routes = new Parts();
    this.routeEnds = [];
  }

  field(owner, key, v) {
    this.owners.push(owner);
    let end = this.strings.push(key);
    this.keyEnds.push(end);
    let kind;
    if (v === null || v === undefined) kind = NULL;
    else if (v === true) kind = TRUE;
    else if (v === false) kind = FALSE;
    else if (typeof v === "bigint" && v >= I64_MIN && v <= I64_MAX) {
      this.ints.push(v);
      kind = INT;
    } else if (typeof v === "number" && Number.isSafeInteger(v)) {
      this.ints.push(BigInt(v));
      kind = INT;
    } else if (typeof v === "number") {
      this.floats.push(v);
      kind = FLOAT;
    } else if (typeof v === "string") {
      end = this.strings.push(v);
      kind = TEXT;
    } else {
      // Arrays, objects, and BigInts beyond 64 bits.
      end = this.strings.push(typeof v === "bigint" ? v.toString() : JSON.stringify(v));
      kind = JSON_KIND;
    }
    this.kinds.push(kind);
    this.valueEnds.push(end);
  }

  emit(source, rec, line = null, fields = null, time = null) {
    let changes = 0;
    line ??= rec._line;
    if (line !== null) {
      this.lineEnds.push(this.data.push(line));
      changes |= LINE;
    }
    time ??= rec._time;
    if (time !== null) {
      this.seconds.push(BigInt(time[0]));
      this.nanos.push(time[1]);
      changes |= TIME;
    }
    fields ??= rec._fields;
    if (fields !== null) {
      const owner = this.sources.length;
      for (const k in fields) this.field(owner, k, fields[k]);
      changes |= FIELDS;
    }
    if (rec._route !== null) {
      this.routeEnds.push(this.routes.push(rec._route.join(",")));
      changes |= ROUTE;
    }
    this.sources.push(source);
    this.changes.push(changes);
  }

  output() {
    const [data, lineOffsets] = this.data.finish();
    const [strings, stringOffsets] = this.strings.finish();
    const [routes, routeOffsets] = this.routes.finish();
    return {
      keepAll: false,
      sources: Uint32Array.from(this.sources),
      changes: Uint8Array.from(this.changes),
      data,
      lineEnds: resolve(this.lineEnds, lineOffsets),
      times: { seconds: BigInt64Array.from(this.seconds), nanos: Uint32Array.from(this.nanos) },
      fields: {
        owners: Uint32Array.from(this.owners),
        kinds: Uint8Array.from(this.kinds),
        keyEnds: resolve(this.keyEnds, stringOffsets),
        valueEnds: resolve(this.valueEnds, stringOffsets),
        ints: BigInt64Array.from(this.ints),
        floats: Float64Array.from(this.floats),
        strings,
      },
      routes,
      routeEnds: resolve(this.routeEnds, routeOffsets),
    };
  }
}

const counts = new Map();

/** Adds `delta` to the plugin's counter `name` in tailcar's metrics (summed per batch). */
export function count(name, delta = 1) {
  counts.set(name, (counts.get(name) ?? 0) + delta);
}

function flushCounts() {
  for (const [name, n] of counts) {
    if (n > 0) hostCount(name, Math.min(n, 0xffffffff));
  }
  counts.clear();
}

/** Writes `message` to tailcar's log, tagged with the plugin's name. `level` is one of
 * "trace", "debug", "info", "warn", "error". */
export function log(level, message) {
  hostLog(level, String(message));
}

function keepAll() {
  const none32 = new Uint32Array(0), none8 = new Uint8Array(0);
  return {
    keepAll: true,
    sources: none32,
    changes: none8,
    data: none8,
    lineEnds: none32,
    times: { seconds: new BigInt64Array(0), nanos: none32 },
    fields: {
      owners: none32, kinds: none8, keyEnds: none32, valueEnds: none32,
      ints: new BigInt64Array(0), floats: new Float64Array(0), strings: none8,
    },
    routes: none8,
    routeEnds: none32,
  };
}

function run(plugin, witBatch) {
  plugin.beginBatch?.(new BatchInfo(witBatch));
  const b = new Batch(witBatch);
  const n = b.ends.length;
  let out = null;
  for (let i = 0; i < n; i++) {
    const rec = new Record(b, i);
    const verdict = plugin.process(rec);
    if (out === null) {
      if (verdict === KEEP && !rec.changed) continue;
      // The first record not kept as it came: the ones before it are written out now.
      out = new Out(i);
    }
    if (verdict === KEEP) {
      out.emit(i, rec);
    } else if (verdict === DROP) {
      // Nothing crosses back for a dropped record.
    } else if (verdict instanceof Split) {
      const base = rec.fields;
      for (const p of verdict.pieces) {
        out.emit(i, rec, p.line, { ...base, ...p.fields }, p.time);
      }
    } else {
      throw new TypeError(`process returned ${String(verdict)}; expected KEEP, DROP or a Split`);
    }
  }
  flushCounts();
  return out === null ? keepAll() : out.output();
}

/** Writes the exception and its stack to stderr (tailcar logs it with the plugin's name) and
 * returns the error message tailcar gets. */
function failure(what, e) {
  const name = e?.constructor?.name ?? "Error";
  const message = e instanceof Error ? e.message : String(e);
  const stack = e instanceof Error && e.stack ? `\n${e.stack}` : "";
  const text = `${what}: ${name}: ${message}${stack}\n`;
  if (typeof console === "object" && console.error) console.error(text.trimEnd());
  return `${what}: ${name}: ${message}`;
}

/** The `init` and `process` exports of tailcar's world, running `PluginClass`. */
export function exportPlugin(PluginClass) {
  let plugin = null;
  return {
    init(config) {
      try {
        plugin = new PluginClass(new Config(config.trim() ? JSON.parse(config) : {}));
      } catch (e) {
        if (e instanceof ConfigError || e instanceof SyntaxError) throw e.message;
        throw failure("init", e);
      }
    },
    process(batch) {
      if (plugin === null) throw "process called before init";
      try {
        return run(plugin, batch);
      } catch (e) {
        counts.clear();
        throw failure("process", e);
      }
    },
  };
}
