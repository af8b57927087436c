#!/usr/bin/env bash
# Sets up what the test suite needs on a fresh machine, then runs it: formatting, clippy with
# warnings as errors, and every unit and integration test (the integration tests run the real
# binary against real files). This is the command the README gives and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "cargo is required (rustup toolchain)"; exit 1; }
# rustfmt and clippy ship with the machine's rustup toolchain; make sure they are there.
rustup component add rustfmt clippy >/dev/null 2>&1 || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
