#!/usr/bin/env bash
# Throughput of the http sink: `tailcar run --once` ships a file of ~150-byte lines to a receiver
# on 127.0.0.1 that discards what it gets (host/examples/discard_server.rs). Prints records/s,
# MB/s of lines, CPU seconds and peak RSS: http NDJSON with gzip and without, and loki protobuf.
#
#   bash bench/http_sink.sh                 # 1,000,000 lines
#   LINES=200000 bash bench/http_sink.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-1000000}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
FILE="$OUT/http-$LINES.log"
PORT=${PORT:-18080}

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet -p tailcar --bin tailcar --example discard_server
BIN=target/release/tailcar

if [ ! -s "$FILE" ]; then
  python3 - "$FILE" "$LINES" <<'PY'
import sys
path, n = sys.argv[1], int(sys.argv[2])
with open(path, "w") as f:
    buf = []
    for i in range(n):
        buf.append(f"10.0.{i % 256}.{i % 7} - - [22/Nov/2026:10:00:00 +0000] \"GET /api/v1/items/{i} HTTP/1.1\" 200 {i % 9999} \"-\" \"Mozilla/5.0 (X11; Linux x86_64)\"\n")
        if len(buf) == 100000:
            f.write("".join(buf)); buf = []
    f.write("".join(buf))
PY
fi
bytes=$(stat -c %s "$FILE")

for sink in "http, compression: gzip" "http, compression: none" "loki, labels: { app: bench, stream: '{stream}' }"; do
  target/release/examples/discard_server "127.0.0.1:$PORT" > "$OUT/discard.out" &
  SERVER=$!
  sleep 0.3
  dir=$(mktemp -d)
  cat > "$dir/tailcar.yaml" <<YAML
checkpoint_dir: $dir/ck
streams:
  bench:
    paths: [$PWD/$FILE]
    sinks: [remote]
sinks:
  remote: { type: $sink, url: "http://127.0.0.1:$PORT" }
YAML
  /usr/bin/time -f "%e %U %S %M" -o "$dir/time" "$BIN" run --once --log-level warn --config "$dir/tailcar.yaml"
  read -r wall user sys rss < "$dir/time"
  kill -TERM "$SERVER"; wait "$SERVER" || true
  printf "%-60s %9.0f records/s %6.0f MB/s of lines  %5.2f s wall  %5.2f s CPU  %5.1f MiB peak RSS  (server: %s)\n" \
    "$sink" "$(echo "$LINES / $wall" | bc -l)" "$(echo "$bytes / $wall / 1000000" | bc -l)" "$wall" \
    "$(echo "$user + $sys" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "$(cat "$OUT/discard.out")"
  rm -rf "$dir"
done
