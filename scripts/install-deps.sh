#!/usr/bin/env bash
# Installs the Debian packages Huddle needs, skipping what is already there (idempotent).
# Usage: scripts/install-deps.sh [build|test]
set -euo pipefail

packages=(build-essential pkg-config libssl-dev curl libvpx-dev libopus-dev cmake
  chromium chromium-driver) # the browser interop tests and huddle-web-bench (crates/peer)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi
