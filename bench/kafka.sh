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

command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release --quiet -p tailcar --bin tailcar
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
  /usr/bin/time -f "%e %U %S %M" -o "$work/time" "$BIN" run --once --log-level warn --config "$work/tailcar.yaml"
  read -r wall user sys rss < "$work/time"
  kill "$BROKER"; wait "$BROKER" 2>/dev/null || true
  printf "%-34s %9.0f records/s %6.1f MB/s of lines  %6.2f s wall  %5.2f s CPU  %5.1f MiB peak RSS\n" \
    "$opts" "$(echo "$LINES / $wall" | bc -l)" "$(echo "$bytes / $wall / 1000000" | bc -l)" "$wall" \
    "$(echo "$user + $sys" | bc -l)" "$(echo "$rss / 1024" | bc -l)"
  rm -rf "$work"
done
