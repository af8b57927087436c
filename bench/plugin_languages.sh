#!/usr/bin/env bash
# The same plugins in Rust, Python (componentize-py) and JavaScript (componentize-js,
# StarlingMonkey): `passthrough` over access-log lines and `json_kv_parse` over JSON and logfmt
# lines, each run by `tailcar plugin test` at the default batch size (1000 records). Prints, per
# language and plugin: the time inside the plugin per record (crossing the boundary both ways
# included, from the tester's summary), records/s at that cost, the instance's peak linear
# memory, how often it was recycled (its memory past 3/4 of the 64 MiB limit, as a pipeline
# does), the tester's peak RSS, and the cold start: compile or cache load, then instantiate +
# init, then the whole `plugin test` process on one line with the compile cache.
#
#   bash bench/plugin_languages.sh
#   LINES=20000 bash bench/plugin_languages.sh     # quicker
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

LINES=${LINES:-100000}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

bench_tools
rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build --release --quiet -p tailcar
CARGO_TARGET_DIR=target/plugins cargo build --quiet --locked --profile plugin --target wasm32-wasip2 \
  -p passthrough -p json_kv_parse
bash plugins/python/build.sh passthrough json_kv_parse
bash plugins/javascript/build.sh passthrough json_kv_parse
BIN=$PWD/target/release/tailcar

access_lines "$OUT/access-$LINES.log" "$LINES"
if [ ! -s "$OUT/kv-$LINES.log" ]; then
  python3 - "$OUT/kv-$LINES.log" "$LINES" <<'PY'
import json, sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    for i in range(n):
        if i % 2:
            f.write(json.dumps({"ts": f"2026-11-22T10:00:{i % 60:02d}.{i % 1000:03d}Z", "level": "info",
                                "msg": f"request {i} done", "status": 200 + i % 5, "ms": i % 997 / 10,
                                "user": {"id": i, "roles": ["a", "b"]}, "ok": True}) + "\n")
        else:
            f.write(f'ts=2026-11-22T10:00:{i % 60:02d}Z level=warn msg="slow request {i}" status={500 + i % 4} ms={i % 991} cached\n')
PY
fi

path_of() { # lang plugin
  case $1 in
    rust) echo "target/plugins/wasm32-wasip2/plugin/$2.wasm" ;;
    *) echo "target/plugins/$1/$2.wasm" ;;
  esac
}

echo "inputs: $LINES access-log lines (passthrough), $LINES JSON/logfmt lines (json_kv_parse); batches of 1000"
printf "%-11s %-14s %9s %11s %10s %8s %8s %11s %10s %8s %10s\n" lang plugin us/record records/s linear_MiB recycles \
  RSS_MiB compile_ms cached_ms init_ms process_ms
for plugin in passthrough json_kv_parse; do
  input="$OUT/access-$LINES.log"
  config='{}'
  if [ "$plugin" = json_kv_parse ]; then input="$OUT/kv-$LINES.log"; config='{"time_key":"ts"}'; fi
  for lang in rust python javascript; do
    wasm=$(path_of "$lang" "$plugin")
    cache="$OUT/lang-cache-$lang-$plugin"
    rm -rf "$cache"
    head -1 "$input" > "$OUT/one.log"
    # Cold: compiles (and fills the cache); then cached, whole process timed.
    "$BIN" plugin test "$wasm" "$OUT/one.log" --config "$config" --cache-dir "$cache" --quiet > "$OUT/cold.txt"
    compile=$(head -1 "$OUT/cold.txt" | sed -n 's/.*: compiled in \([0-9.]*\) ms.*/\1/p')
    start=$(date +%s%N)
    "$BIN" plugin test "$wasm" "$OUT/one.log" --config "$config" --cache-dir "$cache" --quiet > "$OUT/warm.txt"
    end=$(date +%s%N)
    cached=$(head -1 "$OUT/warm.txt" | sed -n 's/.*compile cache in \([0-9.]*\) ms.*/\1/p')
    init=$(head -1 "$OUT/warm.txt" | sed -n 's/.*initialised in \([0-9.]*\) ms.*/\1/p')
    process=$(awk "BEGIN{printf \"%.0f\", ($end-$start)/1e6}")
    # Throughput over the whole input, from the cache.
    timed "$OUT/time.txt" "$BIN" plugin test "$wasm" "$input" --config "$config" --cache-dir "$cache" --quiet > "$OUT/run.txt"
    read -r _ _ _ rss < "$OUT/time.txt"
    summary=$(tail -1 "$OUT/run.txt")
    ns=$(echo "$summary" | sed -n 's/.* \([0-9]*\) ns\/record in the plugin.*/\1/p')
    linear=$(echo "$summary" | sed -n 's/.*memory \([0-9]*\) KiB.*/\1/p')
    failed=$(echo "$summary" | sed -n 's/.*(\([0-9]*\) failed).*/\1/p')
    recycles=$(echo "$summary" | sed -n 's/.*, \([0-9]*\) recycled.*/\1/p')
    [ "$failed" = 0 ] || { echo "$lang $plugin: $summary" >&2; exit 1; }
    printf "%-11s %-14s %9.2f %11.0f %10.1f %8s %8.1f %11s %10s %8s %10s\n" "$lang" "$plugin" \
      "$(echo "$ns / 1000" | bc -l)" "$(echo "1000000000 / $ns" | bc -l)" "$(echo "$linear / 1024" | bc -l)" \
      "$recycles" "$(echo "$rss / 1024" | bc -l)" "$compile" "$cached" "$init" "$process"
  done
done
