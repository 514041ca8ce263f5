#!/usr/bin/env bash
# Benchmarks and budgets (BENCHMARKS.md): builds the release Worker, runs the native
# micro-benchmarks of core, then bench/run.mjs (wasm size profile, passthrough against a plain
# JavaScript Worker, webhook ingest with a fast and a slow local TikTok, all in workerd through
# Miniflare), and prints one table with every figure and its budget. A budget that fails is
# printed as FAIL; the exit code stays 0 (a report, not a gate) unless a step could not run.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

step setup
bash scripts/setup.sh
step "build the Worker (release)"
bash scripts/build.sh release

native=$(mktemp)
native_o3=$(mktemp)
trap 'rm -f "$native" "$native_o3"' EXIT
step "native micro-benchmarks (release profile, opt-level z, as the Worker ships)"
cargo bench --locked -p tiktok-edge-core --bench core | tee "$native"
# The same at opt-level 3, for comparison only; its own target dir keeps the release build's
# artifacts untouched.
step "native micro-benchmarks (opt-level 3, for comparison)"
CARGO_PROFILE_BENCH_OPT_LEVEL=3 CARGO_TARGET_DIR="$ROOT/target/bench-opt3" \
  cargo bench --locked -p tiktok-edge-core --bench core | tee "$native_o3"

step "Worker benchmarks (workerd via Miniflare)"
# The Worker's own structured log lines ({"event":…}) are dropped: thousands of them would
# bury the report.
node bench/run.mjs --native "$native" --native-o3 "$native_o3" | { grep -v '^{"event":' || true; }
