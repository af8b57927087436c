#!/usr/bin/env bash
# Throughput benchmark: `tailcar tail --once FILE | wc -l` against `cat FILE | wc -l`, in the same
# run, on a generated file of ~150-byte lines (1 GiB by default). A pipe is what a container's
# stdout is. Prints MB/s, lines/s, CPU seconds and peak RSS of each, tailcar's share of cat's
# throughput, and checks that tailcar's output is byte-for-byte the file.
#
#   bash bench/tail_throughput.sh            # 1 GiB
#   SIZE_MB=256 RUNS=1 bash bench/tail_throughput.sh
set -euo pipefail
cd "$(dirname "$0")/.."

SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
FILE="$OUT/lines-${SIZE_MB}M.log"

for tool in /usr/bin/time:time bc:bc; do
  command -v "${tool%%:*}" >/dev/null || { apt-get update -qq && apt-get install -y -qq "${tool#*:}" >/dev/null; }
done
cargo build --release --quiet -p tailcar
BIN=target/release/tailcar

if [ ! -s "$FILE" ]; then
  echo "generating $FILE ($SIZE_MB MiB of ~150-byte lines)..."
  python3 - "$FILE" "$SIZE_MB" <<'PY'
import sys
path, size = sys.argv[1], int(sys.argv[2]) * 1024 * 1024
methods = ["GET", "POST", "PUT", "DELETE"]
with open(path, "w") as f:
    seq, written, buf = 0, 0, []
    while written < size:
        line = (f"10.{seq % 256}.{(seq >> 8) % 256}.{seq % 7} - - [22/Nov/2026:10:{seq % 60:02d}:{seq % 60:02d} +0000] "
                f"\"{methods[seq % 4]} /api/v1/items/{seq} HTTP/1.1\" {200 + seq % 5} {seq % 99999} \"-\" \"Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0\" seq={seq:010d}\n")
        buf.append(line)
        written += len(line)
        seq += 1
        if len(buf) == 100000:
            f.write("".join(buf)); buf = []
    f.write("".join(buf))
PY
fi

bytes=$(stat -c %s "$FILE")
lines=$(wc -l < "$FILE")
echo "file: $FILE, $bytes bytes, $lines lines ($(( bytes / lines )) bytes/line)"
cat "$FILE" > /dev/null # warm the page cache for both contenders

# Runs "$@ | wc -l", prints: wall_s cpu_s peak_rss_kib lines
measure() {
  local t
  t=$(mktemp)
  local n
  n=$( { /usr/bin/time -f "%e %U %S %M" -o "$t" "$@" | wc -l; } )
  read -r wall user sys rss < "$t"
  rm -f "$t"
  echo "$wall $(echo "$user + $sys" | bc -l) $rss $n"
}

best_cat=""; best_tc=""
for run in $(seq 1 "$RUNS"); do
  c=$(measure cat "$FILE")
  t=$(measure "$BIN" tail --once --log-level warn "$FILE")
  echo "run $run: cat: $c | tailcar: $t   (wall_s cpu_s peak_rss_kib lines)"
  [ "$(echo "$c" | cut -d' ' -f4)" = "$lines" ] || { echo "cat lost lines"; exit 1; }
  [ "$(echo "$t" | cut -d' ' -f4)" = "$lines" ] || { echo "tailcar lost lines: $t"; exit 1; }
  if [ -z "$best_cat" ] || (( $(echo "$(echo "$c" | cut -d' ' -f1) < $(echo "$best_cat" | cut -d' ' -f1)" | bc -l) )); then best_cat=$c; fi
  if [ -z "$best_tc" ] || (( $(echo "$(echo "$t" | cut -d' ' -f1) < $(echo "$best_tc" | cut -d' ' -f1)" | bc -l) )); then best_tc=$t; fi
done

report() { # name "wall cpu rss lines"
  read -r wall cpu rss _ <<< "$2"
  printf "%-8s %8.0f MB/s %12.0f lines/s %7.2f s wall %7.2f s CPU %7.1f MiB peak RSS\n" \
    "$1" "$(echo "$bytes / $wall / 1000000" | bc -l)" "$(echo "$lines / $wall" | bc -l)" "$wall" "$cpu" "$(echo "$rss / 1024" | bc -l)"
}
echo "best of $RUNS:"
report cat "$best_cat"
report tailcar "$best_tc"
printf "tailcar throughput = %.0f %% of cat's\n" "$(echo "100 * $(echo "$best_cat" | cut -d' ' -f1) / $(echo "$best_tc" | cut -d' ' -f1)" | bc -l)"

# Every line came out, byte for byte.
if "$BIN" tail --once --log-level warn "$FILE" | cmp -s - "$FILE"; then
  echo "output identical to the file: yes"
else
  echo "output identical to the file: NO"; exit 1
fi
