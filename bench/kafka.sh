#!/usr/bin/env bash
# Throughput of the kafka sink: `tailcar run --once` produces a file of ~150-byte lines to a
# tansu broker on 127.0.0.1 (memory storage; the one scripts/test.sh installs, a debug build
# unless TANSU points at another). Prints records/s, MB/s of lines, tailcar's CPU seconds and peak
# RSS, for JSON values uncompressed, raw lines, and JSON with zstd and lz4.
#
#   bash bench/kafka.sh                     # 1,000,000 lines
#   LINES=200000 bash bench/kafka.sh
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${LINES:-1000000}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
FILE="$OUT/kafka-$LINES.log"
PORT=${PORT:-19092}
TANSU=${TANSU:-$HOME/.cargo/bin/tansu}

source bench/lib.sh
bench_tools
cargo build --release --quiet -p tailcar --bin tailcar
BIN=target/release/tailcar

access_lines "$FILE" "$LINES"
bytes=$(stat -c %s "$FILE")

for opts in "format: json" "format: raw" "format: json, compression: zstd" "format: json, compression: lz4"; do
  work=$(mktemp -d)
  (cd "$work" && "$TANSU" broker --listener-url "tcp://127.0.0.1:$PORT" \
     --advertised-listener-url "tcp://127.0.0.1:$PORT" --storage-engine memory://tansu/ --silent) &
  BROKER=$!
  for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.2; done
  (cd "$work" && "$TANSU" topic create bench --broker "tcp://127.0.0.1:$PORT" --partitions 3 >/dev/null)
  cat > "$work/tailcar.yaml" <<YAML
checkpoint_dir: $work/ck
admin: { enabled: false }
streams:
  bench:
    paths: [$PWD/$FILE]
    sinks: [kafka]
sinks:
  kafka: { type: kafka, bootstrap_servers: ["127.0.0.1:$PORT"], topic: bench, $opts }
YAML
  timed "$work/time" "$BIN" run --once --log-level warn --config "$work/tailcar.yaml"
  kill "$BROKER"; wait "$BROKER" 2>/dev/null || true
  report "$opts" "$LINES" "$bytes" "$work/time"
  rm -rf "$work"
done
