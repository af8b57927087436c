#!/usr/bin/env bash
# Builds the Python plugins (examples/ and testing/) into target/plugins/python/NAME.wasm with the
# pinned componentize-py, installed into a virtualenv under target/ on first use. A plugin whose
# .wasm is newer than its sources, the SDK and the WIT is left alone.
#
# Each component built is also kept under $CARGO_TARGET_DIR/components (target/ when unset),
# named by a hash of everything it is built from (its sources, the SDK, the WIT, the
# componentize-py version); scripts/test.sh points CARGO_TARGET_DIR at a per-machine
# directory, so a fresh clone copies what another clone built instead of building it again,
# and the compiled-plugin cache, which is keyed by the component's bytes, finds it too.
#
#   bash plugins/python/build.sh                # all of them
#   bash plugins/python/build.sh passthrough    # just these
set -euo pipefail
cd "$(dirname "$0")/../.."

COMPONENTIZE_PY=0.25.1
VENV=target/python-venv
OUT=target/plugins/python
BUILT="${CARGO_TARGET_DIR:-target}/components/python"
mkdir -p "$OUT"

ensure_componentize_py() {
  if ! "$VENV/bin/componentize-py" --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY"; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
  fi
}

# A hash of what the plugin in $1 is built from.
inputs_hash() {
  {
    echo "componentize-py $COMPONENTIZE_PY"
    find "$1" plugins/python/sdk wit -type f -not -name '*.pyc' | LC_ALL=C sort | xargs sha256sum
  } | sha256sum | cut -c1-32
}

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
  if [ -f "$wasm" ] && [ -z "$(find "$dir" plugins/python/sdk wit -newer "$wasm" -type f -not -name '*.pyc' | head -1)" ]; then
    continue
  fi
  kept="$BUILT/$name-$(inputs_hash "$dir").wasm"
  if [ -f "$kept" ]; then
    cp "$kept" "$wasm.tmp" && mv "$wasm.tmp" "$wasm"
    echo "reused $wasm (built before from the same sources: $kept)"
    continue
  fi
  ensure_componentize_py
  "$VENV/bin/componentize-py" -d wit -w plugin componentize -p "$dir" -p plugins/python/sdk app \
    -o "$wasm.tmp" >/dev/null
  mv "$wasm.tmp" "$wasm"
  mkdir -p "$BUILT" && cp "$wasm" "$kept.tmp.$$" && mv "$kept.tmp.$$" "$kept"
  echo "built $wasm ($(( $(stat -c %s "$wasm") / 1024 )) KiB)"
done
