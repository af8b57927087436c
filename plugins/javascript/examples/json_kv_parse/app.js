// json_kv_parse (JavaScript): a parser. A line that is a JSON object becomes its fields; any
// other line is read as `key=value` pairs (logfmt: values may be "quoted" with \" escapes; a
// bare key is `true`). Numbers become integers or floats, `true`/`false` booleans.
//
// Config: `time_key` (optional): a field holding an RFC 3339 time or Unix seconds, which becomes
// the record's event time. `prefix` (optional): put every field under this name instead of at
// the top level. A line that is neither (no `=` at all, or broken JSON) is kept with a
// `parse_error` field and counted as `parse_errors`: never dropped.
//
// JavaScript's JSON.parse reads every number as a double: integers beyond 2^53 lose precision
// and `1.0` becomes the integer 1. Use the Python or Rust parser where that matters.

import { exportPlugin, KEEP, count } from "../../sdk/tailcar_plugin.js";

const PAIR = /\s*([^\s=]+)(?:=("(?:[^"\\]|\\.)*"|\S*))?/y;
const INT = /^-?(?:0|[1-9][0-9]*)$/;
const FLOAT = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?$/;
const RFC3339 = /^(\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$/;

function typed(v) {
  if (v === "true") return true;
  if (v === "false") return false;
  if (INT.test(v)) {
    const n = BigInt(v);
    if (n < -(2n ** 63n) || n >= 2n ** 63n) return v;
    return Number.isSafeInteger(Number(n)) ? Number(n) : n;
  }
  if (FLOAT.test(v)) return Number(v);
  return v;
}

/** `key=value` pairs, or null when the line has none. */
function logfmt(text) {
  const fields = {};
  let pos = 0;
  let sawPair = false;
  while (pos < text.length) {
    PAIR.lastIndex = pos;
    const m = PAIR.exec(text);
    if (m === null || PAIR.lastIndex === pos) return null;
    const [, key, raw] = m;
    if (raw === undefined) {
      fields[key] = true;
    } else if (raw.startsWith('"')) {
      fields[key] = JSON.parse(raw);
      sawPair = true;
    } else {
      fields[key] = typed(raw);
      sawPair = true;
    }
    pos = PAIR.lastIndex;
    while (pos < text.length && text[pos] === " ") pos++;
  }
  return sawPair ? fields : null;
}

/** [seconds, nanos] from an RFC 3339 string or Unix seconds, or null. */
function eventTime(v) {
  if (typeof v === "number" && Number.isFinite(v)) {
    const seconds = Math.floor(v);
    return [seconds, Math.round((v - seconds) * 1e9)];
  }
  if (typeof v !== "string") return null;
  const m = RFC3339.exec(v);
  if (m === null) return null;
  const ms = Date.parse(`${m[1].replace(/[t ]/, "T")}${m[3].toUpperCase()}`);
  if (Number.isNaN(ms)) return null;
  const nanos = m[2] ? Number((m[2] + "000000000").slice(0, 9)) : 0;
  return [Math.floor(ms / 1000), nanos];
}

class JsonKvParse {
  constructor(config) {
    config.denyUnknown(["time_key", "prefix"]);
    this.timeKey = config.str("time_key", null);
    this.prefix = config.str("prefix", null);
  }

  process(record) {
    const text = record.lineStr();
    let fields = null;
    if (text.trimStart().startsWith("{")) {
      try {
        const value = JSON.parse(text);
        fields = value !== null && typeof value === "object" && !Array.isArray(value) ? value : null;
      } catch (e) {
        record.setField("parse_error", `invalid JSON: ${e.message}`);
        count("parse_errors");
        return KEEP;
      }
    } else {
      try {
        fields = logfmt(text);
      } catch {
        fields = null;
      }
    }
    if (fields === null) {
      record.setField("parse_error", "neither a JSON object nor key=value pairs");
      count("parse_errors");
      return KEEP;
    }
    if (this.timeKey !== null && Object.hasOwn(fields, this.timeKey)) {
      const t = eventTime(fields[this.timeKey]);
      if (t !== null) record.setTime(t[0], t[1]);
    }
    if (this.prefix) {
      record.setField(this.prefix, fields);
    } else {
      for (const [k, v] of Object.entries(fields)) record.setField(k, v);
    }
    return KEEP;
  }
}

export const { init, process } = exportPlugin(JsonKvParse);
