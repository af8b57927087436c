#!/usr/bin/env bash
# Builds the Python plugins (examples/ and testing/) into target/plugins/python/NAME.wasm with the
# pinned componentize-py, installed into a virtualenv under target/ on first use. A plugin whose
# .wasm is newer than its sources, the SDK and the WIT is left alone.
#
#   bash plugins/python/build.sh                # all of them
#   bash plugins/python/build.sh passthrough    # just these
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPONENTIZE_PY=0.25.1
VENV=target/python-venv
OUT=target/plugins/python
mkdir -p "$OUT"

if ! "$VENV/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi

if [ $# -gt 0 ]; then
  dirs=()
  for name in "$@"; do dirs+=(plugins/python/*/"$name"); done
else
  dirs=(plugins/python/examples/* plugins/python/testing/*)
fi
for dir in "${dirs[@]}"; do
  [ -f "$dir/app.py" ] || { echo "no plugin at $dir" >&2; exit 1; }
  name=$(basename "$dir")
  wasm="$OUT/$name.wasm"
  if [ -f "$wasm" ] && [ -z "$(find "$dir" plugins/python/sdk wit -newer "$wasm" -type f | head -1)" ]; then
    continue
  fi
  "$VENV/bin/componentize-py" -d wit -w plugin componentize -p "$dir" -p plugins/python/sdk app \
    -o "$wasm.tmp" >/dev/null
  mv "$wasm.tmp" "$wasm"
  echo "built $wasm ($(( $(stat -c %s "$wasm") / 1024 )) KiB)"
done
