#!/usr/bin/env bash
# The local demo: installs what is missing, starts the demo storefront on 127.0.0.1:8788 and
# the Worker in front of it with `wrangler dev` on http://127.0.0.1:8787 (local KV and Durable
# Objects, dry-run sending unless .dev.vars has a TIKTOK_ACCESS_TOKEN). No account needed.
# `--shop <name>`: a shop of the demo registry (demo/shops.json) instead, with its own ports,
# settings and storage (scripts/dev-shop.mjs), so two shops run side by side.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
shop="" shop_args=() args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shop) shop=${2:?--shop needs a name from demo/shops.json}; shift 2 ;;
    --shop=*) shop=${1#--shop=}; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
bash scripts/setup.sh
[ -f .dev.vars ] || { cp .dev.vars.example .dev.vars; echo "dev: created .dev.vars from .dev.vars.example"; }
if [ -n "$shop" ]; then
  settings=$(node scripts/dev-shop.mjs "$shop")
  eval "$settings"
fi

node demo/origin.mjs &
origin_pid=$!
trap 'kill $origin_pid 2>/dev/null' EXIT

export WRANGLER_SEND_METRICS=false
export TIKTOK_EDGE_PROFILE=${TIKTOK_EDGE_PROFILE:-dev}
echo "dev: ${shop:-demo} shop through the Worker at http://127.0.0.1:${PORT:-8787}/ (health: /tt/health)"
wrangler dev --ip 127.0.0.1 --port "${PORT:-8787}" ${shop_args[@]+"${shop_args[@]}"} ${args[@]+"${args[@]}"}
