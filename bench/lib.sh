# Shared by the sink benchmarks (sourced): the tools they need, the input file, the figures.

# /usr/bin/time (peak RSS) and bc, installed from Debian when missing.
bench_tools() {
  command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
  command -v bc >/dev/null || { apt-get update -qq && apt-get install -y -qq bc >/dev/null; }
}

# access_lines FILE N: N ~150-byte Apache-style access lines in FILE (kept between runs).
access_lines() {
  [ -s "$1" ] && return 0
  python3 - "$1" "$2" <<'PY'
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
}

# timed TIMEFILE CMD...: runs CMD under /usr/bin/time, writing "wall user sys maxrss_kib".
timed() {
  local out=$1; shift
  /usr/bin/time -f "%e %U %S %M" -o "$out" "$@"
}

# report LABEL LINES BYTES TIMEFILE [EXTRA]: one line of figures.
report() {
  local wall user sys rss
  read -r wall user sys rss < "$4"
  printf "%-52s %9.0f records/s %6.1f MB/s of lines  %6.2f s wall  %5.2f s CPU  %5.1f MiB peak RSS  %s\n" \
    "$1" "$(echo "$2 / $wall" | bc -l)" "$(echo "$3 / $wall / 1000000" | bc -l)" "$wall" \
    "$(echo "$user + $sys" | bc -l)" "$(echo "$rss / 1024" | bc -l)" "${5:-}"
}
