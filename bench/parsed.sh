#!/usr/bin/env bash
# Parsed logs end to end: the job most users run. 1,000,000 real access lines (the Apache sample
# in tests/fixtures, repeated 100 times), `tailcar run --once`, release build, page cache warm:
#
#   nginx_json      parser: nginx → JSON lines to /dev/null (file sink, format: json)
#   nginx_es        parser: nginx → Elasticsearch bulk, gzip, to a local receiver that answers
#                   like Elasticsearch (host/examples/discard_server.rs --elasticsearch)
#   nginx_es_busy   the same with the other core kept busy (CPU per line should not change)
#   wasm_json       the WASM nginx_parse plugin → JSON lines
#   passthru_json   parser: nginx, then the passthrough plugin → JSON lines
#   enrich_es       nginx_es plus `fields:` (three static keys) and `enrich:` (the pod's identity
#                   and six labels from a Downward API file, and the file path): what a batch's
#                   shared fields cost when every document carries them
#
# CASES="nginx_es enrich_es" runs only those cases.
#
# For each: median of RUNS runs of wall time, lines/s, CPU seconds per million lines and peak
# RSS, with the issue's targets beside them. BEFORE=/path/to/an/older/tailcar runs that binary
# too, interleaved with this one, for a before/after table from the same session.
#
#   bash bench/parsed.sh
#   RUNS=1 REPEAT=20 bash bench/parsed.sh                # quicker, 200,000 lines
#   BEFORE=/tmp/tailcar-before bash bench/parsed.sh
set -euo pipefail
cd "$(dirname "$0")/.."

REPEAT=${REPEAT:-100}
RUNS=${RUNS:-3}
PORT=${PORT:-18090}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
FILE="$OUT/access-x$REPEAT.log"

source bench/lib.sh
bench_tools
rustup target add wasm32-wasip2 >/dev/null 2>&1
cargo build --release --quiet --locked -p tailcar --bin tailcar --example discard_server
CARGO_TARGET_DIR=target/plugins cargo build --quiet --locked --profile plugin --target wasm32-wasip2 \
  -p passthrough -p nginx_parse
AFTER=$PWD/target/release/tailcar
PLUGINS=$PWD/target/plugins/wasm32-wasip2/plugin
SERVER_BIN=$PWD/target/release/examples/discard_server

if [ ! -s "$FILE" ]; then
  for _ in $(seq "$REPEAT"); do cat tests/fixtures/apache_access_10k.log; done > "$FILE"
fi
LINES=$(wc -l < "$FILE")
echo "input: $FILE, $LINES lines, $(( $(stat -c %s "$FILE") / 1048576 )) MiB; median of $RUNS runs"

config() { # case name, transform yaml, sink yaml
  cat > "$OUT/parsed-$1.yaml" <<EOF
plugin_cache_dir: $OUT/plugin-cache
admin: { enabled: false }
streams:
  access:
    paths: [$FILE]
$2
    sinks: [out]
sinks:
  out: $3
EOF
}
JSON="{ type: file, path: /dev/null, format: json }"
ES="{ type: elasticsearch, url: 'http://127.0.0.1:$PORT', compression: gzip }"
config nginx_json "    parser: nginx" "$JSON"
config nginx_es "    parser: nginx" "$ES"
config nginx_es_busy "    parser: nginx" "$ES"
config wasm_json "    plugins: [{ path: $PLUGINS/nginx_parse.wasm }]" "$JSON"
config passthru_json "    parser: nginx
    plugins: [{ path: $PLUGINS/passthrough.wasm }]" "$JSON"
mkdir -p "$OUT/podinfo"
printf '%s\n' 'app="web"' 'pod-template-hash="5d9c8b7f6"' 'tier="frontend"' 'version="1.4.2"' \
  'team="shop"' 'release="stable"' > "$OUT/podinfo/labels"
config enrich_es "    parser: nginx
    fields: { cluster: prod-eu-1, env: production, region: eu-west-1 }
    enrich: { pod: true, labels: $OUT/podinfo/labels, file: true }" "$ES"
export POD_NAME=web-5d9c8b7f6-x2x7q POD_NAMESPACE=shop NODE_NAME=node-3 POD_IP=10.1.2.3 \
  CONTAINER_NAME=access-log

"$SERVER_BIN" --elasticsearch "127.0.0.1:$PORT" > "$OUT/parsed-server.out" &
SERVER=$!
BUSY=
cleanup() {
  kill "$SERVER" 2>/dev/null || true
  [ -n "$BUSY" ] && kill "$BUSY" 2>/dev/null || true
}
trap cleanup EXIT
sleep 0.3

# one BIN CASE: one run; prints "wall cpu rss_kib".
one() {
  local bin=$1 c=$2 t
  t=$(mktemp)
  rm -rf "$OUT/parsed-state"
  sed "1i checkpoint_dir: $OUT/parsed-state" "$OUT/parsed-$c.yaml" > "$OUT/parsed-run.yaml"
  if [ "$c" = nginx_es_busy ]; then
    sh -c 'while :; do :; done' & BUSY=$!
  fi
  timed "$t" "$bin" run --once --log-level warn --config "$OUT/parsed-run.yaml" >/dev/null
  if [ -n "$BUSY" ]; then kill "$BUSY"; wait "$BUSY" 2>/dev/null || true; BUSY=; fi
  read -r wall user sys rss < "$t"
  rm -f "$t"
  echo "$wall $(echo "$user + $sys" | bc -l) $rss"
}

median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

declare -A TARGET=(
  [nginx_json]="≥ 1,000,000 lines/s"
  [nginx_es]="≥ 800,000 lines/s, ≤ 4 CPU s/M"
  [nginx_es_busy]="CPU s/M as nginx_es"
  [wasm_json]="≥ 80 % of nginx_json"
  [passthru_json]="≤ 10 % over nginx_json"
  [enrich_es]="(no target; compare with nginx_es)"
)
BINS=("$AFTER")
[ -n "${BEFORE:-}" ] && BINS=("$BEFORE" "$AFTER")
printf "%-14s %-7s %8s %12s %10s %9s  %s\n" case binary wall_s lines/s cpu_s/M rss_MiB target
for c in ${CASES:-nginx_json nginx_es nginx_es_busy wasm_json passthru_json enrich_es}; do
  declare -A W=() C=() R=()
  for _ in $(seq "$RUNS"); do
    for bin in "${BINS[@]}"; do # interleaved, so a noisy moment hits both
      read -r wall cpu rss < <(one "$bin" "$c")
      W[$bin]+="$wall "; C[$bin]+="$cpu "; R[$bin]+="$rss "
    done
  done
  for bin in "${BINS[@]}"; do
    label=after; [ "$bin" != "$AFTER" ] && label=before
    wall=$(tr ' ' '\n' <<< "${W[$bin]}" | grep . | median)
    cpu=$(tr ' ' '\n' <<< "${C[$bin]}" | grep . | median)
    rss=$(tr ' ' '\n' <<< "${R[$bin]}" | grep . | median)
    printf "%-14s %-7s %8.2f %12.0f %10.2f %9.1f  %s\n" "$c" "$label" "$wall" \
      "$(echo "$LINES / $wall" | bc -l)" "$(echo "$cpu * 1000000 / $LINES" | bc -l)" \
      "$(echo "$rss / 1024" | bc -l)" "${TARGET[$c]}"
  done
  unset W C R
done
kill -TERM "$SERVER"; wait "$SERVER" 2>/dev/null || true
echo "receiver: $(cat "$OUT/parsed-server.out")"
