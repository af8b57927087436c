#!/usr/bin/env bash
# Throughput of the http sink: `tailcar run --once` ships a file of ~150-byte lines to a receiver
# on 127.0.0.1 that discards what it gets (host/examples/discard_server.rs). Prints records/s,
# MB/s of lines, CPU seconds and peak RSS: http NDJSON with gzip and without, loki protobuf,
# otlp protobuf and OTLP/JSON (both gzipped).
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

source bench/lib.sh
bench_tools
cargo build --release --quiet -p tailcar --bin tailcar --example discard_server
BIN=target/release/tailcar

access_lines "$FILE" "$LINES"
bytes=$(stat -c %s "$FILE")

for sink in "http, compression: gzip" "http, compression: none" \
    "loki, labels: { app: bench, stream: '{stream}' }" "otlp, encoding: protobuf" "otlp, encoding: json"; do
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
  timed "$dir/time" "$BIN" run --once --log-level warn --config "$dir/tailcar.yaml"
  kill -TERM "$SERVER"; wait "$SERVER" || true
  report "$sink" "$LINES" "$bytes" "$dir/time" "(server: $(cat "$OUT/discard.out"))"
  rm -rf "$dir"
done
