#!/usr/bin/env bash
# Memory per tailed file: `tailcar tail` follows FILES files matched by one glob (2,200 by
# default), each written to in ROUNDS rounds of 10 lines, so every file has been opened and read
# and then sits idle, as the files of a busy emptyDir do. Prints tailcar's peak and final RSS
# (VmHWM, VmRSS), its open descriptors, and the RSS per file above a one-file run; checks every
# line arrived.
#
#   bash bench/many_files.sh                       # release build, 2,200 files
#   FILES=500 TAILCAR_BIN=target/debug/tailcar bash bench/many_files.sh
set -euo pipefail
cd "$(dirname "$0")/.."

FILES=${FILES:-2200}
ROUNDS=${ROUNDS:-3}
OUT=${BENCH_DIR:-target/bench}
mkdir -p "$OUT"
if [ -z "${TAILCAR_BIN:-}" ]; then
  cargo build --release --quiet -p tailcar
  TAILCAR_BIN=target/release/tailcar
fi

python3 - "$TAILCAR_BIN" "$OUT" "$FILES" "$ROUNDS" <<'PY'
import os, shutil, signal, subprocess, sys, tempfile, threading, time

binary, out, files, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])

def run(n):
    d = tempfile.mkdtemp(dir=out)
    logs = os.path.join(d, "logs")
    os.mkdir(logs)
    for i in range(n):
        open(os.path.join(logs, f"app-{i:05}.log"), "w").close()
    p = subprocess.Popen([binary, "tail", "--checkpoint-dir", os.path.join(d, "ck"),
                          os.path.join(logs, "*.log")],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    got = [0]
    def reader():
        for _ in p.stdout:
            got[0] += 1
    t = threading.Thread(target=reader); t.start()
    want = 0
    for r in range(rounds):
        for i in range(n):
            with open(os.path.join(logs, f"app-{i:05}.log"), "a") as f:
                f.write("".join(f"file {i} round {r} line {k} " + "x" * 100 + "\n" for k in range(10)))
        want += 10 * n
        deadline = time.time() + 300
        while got[0] < want and time.time() < deadline:
            time.sleep(0.05)
    assert got[0] == want, f"{got[0]} of {want} lines arrived"
    time.sleep(1.5)  # idle: rotated/quiet files settle, buffers released
    peak, rss = status(p.pid, "VmHWM"), status(p.pid, "VmRSS")
    fds = len(os.listdir(f"/proc/{p.pid}/fd"))
    p.send_signal(signal.SIGTERM); p.wait(); t.join()
    shutil.rmtree(d)
    return peak, rss, fds

base = run(1)
peak, rss, fds = run(files)
print(f"1 file:        peak RSS {base[0]/1024:6.1f} MiB, RSS {base[1]/1024:6.1f} MiB, {base[2]} descriptors")
print(f"{files} files: peak RSS {peak/1024:6.1f} MiB, RSS {rss/1024:6.1f} MiB, {fds} descriptors, "
      f"{(rss - base[1]) / files:.1f} KiB per idle file above one file, "
      f"{(peak - base[0]) / files:.1f} KiB per file at peak")
PY
