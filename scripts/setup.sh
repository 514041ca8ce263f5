#!/usr/bin/env bash
# Installs whatever is missing to build and test tiktok-edge, and nothing that is already there,
# so a second run takes seconds. Needs only rustup, cargo, node and npm on the machine; every
# other piece comes from crates.io or npm (no GitHub downloads, see scripts/env.sh).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

WORKER_BUILD_VERSION=0.8.7
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }
for tool in rustup cargo node npm; do
  command -v "$tool" >/dev/null || { echo "setup: $tool is required (install Rust with rustup, and Node 20+ with npm)" >&2; exit 1; }
done

installed_components=$(rustup component list --installed 2>/dev/null || true)
for component in rustfmt clippy; do
  grep -q "^$component" <<<"$installed_components" || { say "rustup component add $component"; rustup component add "$component"; }
done
rustup target list --installed | grep -qx wasm32-unknown-unknown \
  || { say "rustup target add wasm32-unknown-unknown"; rustup target add wasm32-unknown-unknown; }

if [ "$(worker-build --version 2>/dev/null | awk '{print $NF}')" != "$WORKER_BUILD_VERSION" ]; then
  say "cargo install worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked
fi
# wasm-bindgen's CLI must equal the library version in Cargo.lock.
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $NF}')" != "$WASM_BINDGEN_VERSION" ]; then
  say "cargo install wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --force
fi

# npm ci when node_modules is missing or older than the lock file.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Headless Chromium for the browser tests (tests/browser.test.mjs): Debian's package, driven by
# playwright-core, which downloads no browser of its own.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" = 0 ]; then
    say "apt-get install chromium (for the browser tests)"
    apt-get update -qq && apt-get install -y -qq chromium
  else
    say "/usr/bin/chromium is missing; the browser tests need it: sudo apt-get install -y chromium"
  fi
fi
