#!/usr/bin/env bash
# Sets up what the test suite needs on a fresh machine, then runs it: formatting, clippy with
# warnings as errors, and every unit and integration test (the integration tests run the real
# binary against real files). This is the command the README gives and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
# A full run builds everything once: incremental state would only add gigabytes on disk.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
# Compiled dependencies are kept per machine, not per clone: a run in a fresh clone on a machine
# that ran the suite before rebuilds only tailcar's own crates (cargo names a workspace crate's
# artifacts by its path inside the workspace, so clones share and overwrite them rather than
# pile up). The suite's plugin compile cache lives there too (CARGO_TARGET_TMPDIR). Set
# CARGO_TARGET_DIR to choose another place; on a fresh machine the first run fills it.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/tailcar/target}"

command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)"; exit 1; }
# rustfmt and clippy ship with the machine's rustup toolchain; make sure they are there.
rustup component add rustfmt clippy >/dev/null 2>&1 || true
# The plugin tests build the plugins in plugins/ from source for WebAssembly.
rustup target add wasm32-wasip2
# The deployment tests validate the Kubernetes manifests offline against the API schemas.
python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
  kubernetes-validate==1.31.0
# The kafka sink tests produce to a real Kafka-protocol broker (tansu). Its default features have
# no storage engine: dynostore gives memory storage, libsql SQLite (the SASL test keeps its users
# across a broker restart). Built once (~10 min in debug); then cargo sees the same version and
# features installed and does nothing.
cargo install tansu --version 0.6.0 --locked --features dynostore,libsql --debug
# The syslog sink tests send to a real rsyslog (started by the tests, on free ports, with their
# own configuration; no system daemon).
if ! command -v rsyslogd >/dev/null || ! [ -e /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_ossl.so ]; then
  sudo=$(command -v sudo || true)
  $sudo apt-get install -y --no-install-recommends rsyslog rsyslog-openssl >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends rsyslog rsyslog-openssl >/dev/null; }
fi

# The Python and JavaScript plugin tests build plugins/python and plugins/javascript from source:
# componentize-py from PyPI into a virtualenv under target/, componentize-js from npm into
# plugins/javascript/node_modules, both at the versions pinned in the build scripts and
# package-lock.json. They need python3's venv module and Node.js with npm.
if ! python3 -c 'import ensurepip, venv' 2>/dev/null || ! command -v npm >/dev/null; then
  sudo=$(command -v sudo || true)
  $sudo apt-get install -y --no-install-recommends python3-venv nodejs npm >/dev/null \
    || { $sudo apt-get update >/dev/null && $sudo apt-get install -y --no-install-recommends python3-venv nodejs npm >/dev/null; }
fi
bash plugins/python/build.sh
bash plugins/javascript/build.sh

cargo fmt --all -- --check
# The example and test plugins, built once for WebAssembly (the integration tests reuse them,
# and find them under the same directory).
CARGO_TARGET_DIR="$CARGO_TARGET_DIR/plugins" cargo build --locked --profile plugin --target wasm32-wasip2 \
  -p nginx_parse -p drop_healthchecks -p json_kv_parse -p redact -p sample -p passthrough -p hostile \
  -p wrong_world
# Clippy runs inside the test build: as the workspace's compiler wrapper, clippy-driver compiles
# tailcar's crates (every target: lib, tests, benches, examples) and lints them in the same pass,
# with warnings as errors, so the dependencies are compiled once instead of once more in
# `cargo clippy`'s check mode. The same settings stay exported for `cargo test`, which then finds
# everything built.
export RUSTC_WORKSPACE_WRAPPER="$(command -v clippy-driver)"
export CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --workspace --all-targets --locked --no-run
cargo test --workspace --locked
