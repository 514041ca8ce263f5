# Sourced by the other scripts: points worker-build at tools installed from crates.io and npm
# instead of its GitHub downloads, which fail on machines that reach only package registries.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$HOME/.cargo/bin:$ROOT/node_modules/.bin:$PATH"
export WASM_BINDGEN_BIN="$HOME/.cargo/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/.bin/esbuild"

# wrangler's launcher refuses Node < 22.12, but its CLI runs on Node 20 (this project's
# machines): call the CLI directly there, the launcher elsewhere.
wrangler() {
  if node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=12)?0:1)'; then
    "$ROOT/node_modules/.bin/wrangler" "$@"
  else
    node --no-warnings "$ROOT/node_modules/wrangler/wrangler-dist/cli.js" "$@"
  fi
}

# A headline for each stage of a long script.
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
