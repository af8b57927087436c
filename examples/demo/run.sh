#!/usr/bin/env bash
# The demo: an application writes access and error logs and rotates them; tailcar streams the
# access log to its stdout and the errors (stack traces joined into one record each) to a file,
# is killed with SIGKILL halfway and restarted, then stopped with SIGTERM. At the end the demo
# checks that every line written arrived, and counts the duplicates the SIGKILL caused.
set -euo pipefail
cd "$(dirname "$0")/../.."

cargo build --release --quiet -p tailcar
BIN=$PWD/target/release/tailcar
export DEMO_DIR=${DEMO_DIR:-$PWD/target/demo}
rm -rf "$DEMO_DIR" && mkdir -p "$DEMO_DIR"
echo "demo directory: $DEMO_DIR"

start() { "$BIN" run --config examples/demo/tailcar.yaml >> "$DEMO_DIR/access.stdout" 2>> "$DEMO_DIR/tailcar.log" & TC=$!; }

start
python3 examples/demo/app.py "$DEMO_DIR" tests/fixtures/apache_access_10k.log &
APP=$!
sleep 1.5
echo "SIGKILL tailcar (pid $TC) mid-stream, then restart it"
kill -KILL "$TC"; wait "$TC" 2>/dev/null || true
start
wait "$APP"
sleep 2
echo "SIGTERM tailcar: it drains and exits"
kill -TERM "$TC"
wait "$TC" && echo "tailcar exited 0"

echo
echo "== access-log (tailcar's stdout), first 3 lines =="
head -n 3 "$DEMO_DIR/access.stdout" | cut -c1-150
echo
echo "== error-log (file sink, JSON), first record =="
head -n 1 "$DEMO_DIR/shipped/errors.json" | python3 -m json.tool
echo
python3 - "$DEMO_DIR" tests/fixtures/apache_access_10k.log <<'PY'
import collections, json, sys
demo, replay = sys.argv[1], sys.argv[2]
read = lambda p: open(p, encoding="utf-8", errors="surrogateescape").read().splitlines()
written = collections.Counter(read(replay))
shipped = collections.Counter(read(f"{demo}/access.stdout"))
missing = sum((written - shipped).values())
dups = sum((shipped - written).values())
print(f"access: {sum(written.values())} lines written, {sum(shipped.values())} shipped, {missing} missing, {dups} duplicates (from the SIGKILL)")
records = [json.loads(l) for l in read(f"{demo}/shipped/errors.json")]
ids = collections.Counter(int(r["line"].split(" request ")[1].split()[0]) for r in records)
whole = all(r["line"].count("\n") == 3 for r in records)
expected = set(range(1, 21))
print(f"error:  {len(expected)} stack traces written, {len(ids)} distinct shipped, {sum(ids.values()) - len(ids)} duplicates, each one record: {whole}")
sys.exit(0 if missing == 0 and set(ids) == expected and whole else 1)
PY
echo "tailcar's own log: $DEMO_DIR/tailcar.log"
