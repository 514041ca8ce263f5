#!/usr/bin/env bash
# The local demo: installs what is missing, starts the demo storefront on 127.0.0.1:8788 and
# the Worker in front of it with `wrangler dev` on http://127.0.0.1:8787 (local KV and Durable
# Objects, dry-run sending unless .dev.vars has a TIKTOK_ACCESS_TOKEN). No account needed.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
bash scripts/setup.sh
[ -f .dev.vars ] || { cp .dev.vars.example .dev.vars; echo "dev: created .dev.vars from .dev.vars.example"; }

node demo/origin.mjs &
origin_pid=$!
trap 'kill $origin_pid 2>/dev/null' EXIT

export WRANGLER_SEND_METRICS=false
export TIKTOK_EDGE_PROFILE=${TIKTOK_EDGE_PROFILE:-dev}
echo "dev: shop through the Worker at http://127.0.0.1:${PORT:-8787}/ (health: /tt/health)"
wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" "$@"
