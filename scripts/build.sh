#!/usr/bin/env bash
# Builds the Worker into build/ (index.js + index_bg.wasm). Also wrangler's [build] command.
# Profile: first argument, else $TIKTOK_EDGE_PROFILE, else release.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
profile=${1:-${TIKTOK_EDGE_PROFILE:-release}}
worker-build "--${profile#--}"

if [ "${profile#--}" = release ]; then
  # worker-build keeps the wasm `name` section (function names for stack traces): ~58 KB gzip
  # that every cold start pays. The shipped wasm goes without it; a named copy stays in
  # target/ for the size profile (bench/wasm-size.mjs).
  mkdir -p target/wasm-names
  cp build/index_bg.wasm target/wasm-names/index_bg.wasm
  node scripts/strip-wasm.mjs target/wasm-names/index_bg.wasm build/index_bg.wasm
fi
