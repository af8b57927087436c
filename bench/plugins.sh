#!/usr/bin/env bash
# WASM plugin benchmark over ~1 M access-log lines (the Apache sample in tests/fixtures, repeated
# 100 times): the same `tailcar run --once` pipeline with no transform, the `passthrough` plugin,
# the `nginx_parse` plugin, and the native `nginx` parser. Output is raw lines to /dev/null, so
# the difference between runs is the transform's cost. Prints, for each, wall and CPU seconds,
# records/s, peak RSS, the time spent inside the plugin per record (from tailcar's plugin
# statistics: crossing the boundary both ways included), and the batch size; then the cold start
# of `tailcar plugin test` with and without the compile cache.
#
#   bash bench/plugins.sh
#   REPEAT=20 RUNS=1 bash bench/plugins.sh      # a quicker, smaller run
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=${REPEAT:-100}
RUNS=${RUNS:-3}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
FILE="$OUT/access-x$REPEAT.log"

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build --release --quiet -p tailcar
CARGO_TARGET_DIR=target/plugins cargo build --quiet --locked --profile plugin --target wasm32-wasip2 \
  -p passthrough -p nginx_parse
BIN=$PWD/target/release/tailcar
PLUGINS=$PWD/target/plugins/wasm32-wasip2/plugin

if [ ! -s "$FILE" ]; then
  for _ in $(seq "$REPEAT"); do cat tests/fixtures/apache_access_10k.log; done > "$FILE"
fi
LINES=$(wc -l < "$FILE")
echo "input: $FILE, $LINES lines, $(( $(stat -c %s "$FILE") / 1048576 )) MiB; best of $RUNS runs"
echo "batches: one per read of up to 128 KiB, about $(( 131072 * LINES / $(stat -c %s "$FILE") )) lines of this file"

config() { # name, transform yaml, output format
  cat > "$OUT/plugins-$1.yaml" <<EOF
checkpoint_dir: $OUT/state-$1
plugin_cache_dir: $OUT/plugin-cache
streams:
  access:
    paths: [$FILE]
$2
    sinks: [null]
sinks:
  null: { type: file, path: /dev/null, format: ${3:-raw} }
EOF
}
config none ""
config passthrough "    plugins: [{ path: $PLUGINS/passthrough.wasm }]"
config wasm_nginx "    plugins: [{ path: $PLUGINS/nginx_parse.wasm }]"
config native_nginx "    parser: nginx"
# The same with JSON output, as a shipper usually writes: a more realistic baseline.
config none_json "" json
config passthru_json "    plugins: [{ path: $PLUGINS/passthrough.wasm }]" json

printf "%-14s %8s %8s %12s %9s %14s\n" case wall_s cpu_s records/s rss_MiB plugin_ns/rec
declare -A WALL
for c in none passthrough wasm_nginx native_nginx none_json passthru_json; do
  best=""
  for _ in $(seq "$RUNS"); do
    rm -rf "$OUT/state-$c"
    /usr/bin/time -f "%e %U %S %M" -o "$OUT/time.txt" "$BIN" run --config "$OUT/plugins-$c.yaml" --once 2> "$OUT/log-$c.txt"
    read -r wall user sys rss < "$OUT/time.txt"
    if [ -z "$best" ] || awk "BEGIN{exit !($wall < $best)}"; then
      best=$wall; cpu=$(awk "BEGIN{print $user+$sys}"); mem=$rss
      busy=$(grep -o 'busy_ms=[0-9]*' "$OUT/log-$c.txt" | head -1 | cut -d= -f2 || true)
    fi
  done
  WALL[$c]=$best
  per=""
  [ -n "${busy:-}" ] && per=$(awk "BEGIN{printf \"%.0f\", $busy*1e6/$LINES}")
  printf "%-14s %8.2f %8.2f %12.0f %9.1f %14s\n" "$c" "$best" "$cpu" "$(awk "BEGIN{print $LINES/$best}")" "$(awk "BEGIN{print $mem/1024}")" "${per:--}"
  busy=""
done
awk -v n="${WALL[none]}" -v p="${WALL[passthrough]}" -v w="${WALL[wasm_nginx]}" -v x="${WALL[native_nginx]}" \
    -v nj="${WALL[none_json]}" -v pj="${WALL[passthru_json]}" -v l="$LINES" 'BEGIN {
  printf "passthrough costs %.1f%% of the no-plugin throughput with raw output (%.0f ns/record end to end)\n", (1 - n/p) * 100, (p - n) * 1e9 / l
  printf "passthrough costs %.1f%% of the no-plugin throughput with json output (%.0f ns/record end to end)\n", (1 - nj/pj) * 100, (pj - nj) * 1e9 / l
  printf "nginx parse: wasm %.0f ns/record, native %.0f ns/record (end to end over no transform): %.2fx\n", (w - n) * 1e9 / l, (x - n) * 1e9 / l, (w - n) / (x - n)
}'

echo "cold start of \`tailcar plugin test nginx_parse.wasm\` on one line (whole process):"
echo '1.2.3.4 - - [17/May/2015:10:05:03 +0000] "GET / HTTP/1.1" 200 1' > "$OUT/one.log"
rm -rf "$OUT/cold-cache"
for label in "no cache (compiles)" "cached" "cached"; do
  start=$(date +%s%N)
  "$BIN" plugin test "$PLUGINS/nginx_parse.wasm" "$OUT/one.log" --cache-dir "$OUT/cold-cache" --quiet > "$OUT/cold.txt"
  end=$(date +%s%N)
  printf "  %-20s %6.1f ms  (%s)\n" "$label" "$(awk "BEGIN{print ($end-$start)/1e6}")" "$(head -1 "$OUT/cold.txt" | sed 's/.*: \(.*\), started.*/\1/')"
done
