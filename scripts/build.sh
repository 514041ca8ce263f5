#!/usr/bin/env bash
# Builds the Worker into build/ (index.js + index_bg.wasm). Also wrangler's [build] command.
# Profile: first argument, else $TIKTOK_EDGE_PROFILE, else release.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
profile=${1:-${TIKTOK_EDGE_PROFILE:-release}}
worker-build "--${profile#--}"
