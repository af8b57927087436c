#!/usr/bin/env bash
# Builds the JavaScript plugins (examples/ and testing/) into target/plugins/javascript/NAME.wasm
# with the componentize-js pinned in package-lock.json (StarlingMonkey), installed with `npm install`
# on first use. A plugin whose .wasm is newer than its sources, the SDK and the WIT is left alone.
#
#   bash plugins/javascript/build.sh                # all of them
#   bash plugins/javascript/build.sh passthrough    # just these
set -euo pipefail
cd "$(dirname "$0")/../.."

JS=plugins/javascript
OUT=target/plugins/javascript
mkdir -p "$OUT"

if [ ! -x "$JS/node_modules/.bin/componentize-js" ] || [ "$JS/package-lock.json" -nt "$JS/node_modules/.package-lock.json" ]; then
  # Not `npm ci`: npm 11 refuses this lock file because it lacks entries for other platforms'
  # optional binaries; `npm install` still takes every version from package-lock.json.
  (cd "$JS" && npm install --no-audit --no-fund --no-save --loglevel=error)
fi

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
  # No wasi:http: tailcar offers plugins no network (the build would import it otherwise).
  "$JS/node_modules/.bin/componentize-js" "$dir/app.js" --wit wit --world-name plugin \
    --disable http fetch-event -o "$wasm.tmp" >/dev/null
  mv "$wasm.tmp" "$wasm"
  echo "built $wasm ($(( $(stat -c %s "$wasm") / 1024 )) KiB)"
done
