#!/usr/bin/env bash
# Every check, in the order CI runs them: installs what is missing (scripts/setup.sh), then
# formatting, clippy on the host and on wasm32, the pure-logic unit tests, a release build of
# the Worker, and the end-to-end suite against that build in workerd (Miniflare).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

step setup
bash scripts/setup.sh
step "cargo fmt --check"
cargo fmt --all --check
step "cargo clippy (host)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo clippy (wasm32)"
cargo clippy --lib --target wasm32-unknown-unknown --locked -- -D warnings
step "cargo test (pure logic)"
cargo test --workspace --locked
step "build the Worker (release)"
bash scripts/build.sh release
raw=$(wc -c < build/index_bg.wasm)
gz=$(gzip -9 -c build/index_bg.wasm | wc -c)
echo "wasm: $raw bytes raw, $gz bytes gzip"
step "end-to-end (workerd via Miniflare)"
node --test --test-concurrency=1 tests/
