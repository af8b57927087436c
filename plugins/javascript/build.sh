#!/usr/bin/env bash
# Builds the JavaScript plugins (examples/ and testing/) into target/plugins/javascript/NAME.wasm
# with the componentize-js pinned in package-lock.json (StarlingMonkey), installed with `npm install`
# on first use. A plugin whose .wasm is newer than its sources, the SDK and the WIT is left alone.
#
# Each component built is also kept under $CARGO_TARGET_DIR/components (target/ when unset),
# named by a hash of everything it is built from (its sources, the SDK, the WIT, the lock file);
# scripts/test.sh points CARGO_TARGET_DIR at a per-machine directory, so a fresh clone copies
# what another clone built instead of building it again. That matters more here than for Python:
# componentize-js does not give the same bytes twice, so each new build is also a new entry for
# the compiled-plugin cache, compiled again by every test run.
#
#   bash plugins/javascript/build.sh                # all of them
#   bash plugins/javascript/build.sh passthrough    # just these
set -euo pipefail
cd "$(dirname "$0")/../.."

JS=plugins/javascript
OUT=target/plugins/javascript
BUILT="${CARGO_TARGET_DIR:-target}/components/javascript"
mkdir -p "$OUT"

ensure_componentize_js() {
  if [ ! -x "$JS/node_modules/.bin/componentize-js" ] || [ "$JS/package-lock.json" -nt "$JS/node_modules/.package-lock.json" ]; then
    # Not `npm ci`: npm 11 refuses this lock file because it lacks entries for other platforms'
    # optional binaries; `npm install` still takes every version from package-lock.json.
    (cd "$JS" && npm install --no-audit --no-fund --no-save --loglevel=error)
  fi
}

# A hash of what the plugin in $1 is built from.
inputs_hash() {
  find "$1" "$JS/sdk" wit "$JS/package-lock.json" -type f | LC_ALL=C sort | xargs sha256sum \
    | sha256sum | cut -c1-32
}

if [ $# -gt 0 ]; then
  dirs=()
  for name in "$@"; do dirs+=("$JS"/*/"$name"); done
else
  dirs=("$JS"/examples/* "$JS"/testing/*)
fi
for dir in "${dirs[@]}"; do
  [ -f "$dir/app.js" ] || { echo "no plugin at $dir" >&2; exit 1; }
  name=$(basename "$dir")
  wasm="$OUT/$name.wasm"
  if [ -f "$wasm" ] && [ -z "$(find "$dir" "$JS/sdk" wit -newer "$wasm" -type f | head -1)" ]; then
    continue
  fi
  kept="$BUILT/$name-$(inputs_hash "$dir").wasm"
  if [ -f "$kept" ]; then
    cp "$kept" "$wasm.tmp" && mv "$wasm.tmp" "$wasm"
    echo "reused $wasm (built before from the same sources: $kept)"
    continue
  fi
  ensure_componentize_js
  # No wasi:http: tailcar offers plugins no network (the build would import it otherwise).
  "$JS/node_modules/.bin/componentize-js" "$dir/app.js" --wit wit --world-name plugin \
    --disable http fetch-event -o "$wasm.tmp" >/dev/null
  mv "$wasm.tmp" "$wasm"
  mkdir -p "$BUILT" && cp "$wasm" "$kept.tmp.$$" && mv "$kept.tmp.$$" "$kept"
  echo "built $wasm ($(( $(stat -c %s "$wasm") / 1024 )) KiB)"
done
