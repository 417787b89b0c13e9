#!/usr/bin/env bash
# Installs what Huddle needs to build, run and test, skipping what is already there (idempotent):
# Debian packages, the Tauri CLI (npm, into node_modules/) and tauri-driver (cargo, for the
# end-to-end app test).
# Usage: scripts/install-deps.sh [run|test]   (default: test, which is a superset)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-test}"

packages=(
  build-essential pkg-config libssl-dev curl cmake
  libvpx-dev libopus-dev nasm
  # the outage test takes loopback down in its own network namespace
  iproute2
  # devices: cpal (ALSA), nokhwa (V4L2 bindings via bindgen), scrap (X11 shm capture)
  libasound2-dev libclang-dev libxcb1-dev libxcb-randr0-dev libxcb-shm0-dev
  # Tauri 2 (WebKitGTK webview, tray)
  libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev
)
if [ "$what" = test ]; then
  packages+=(
    # the app under a virtual display, WebDriver for its webview, a private session bus and
    # a stand-in notification service (Python)
    xvfb xauth webkit2gtk-driver dbus python3 python3-dbus python3-gi gir1.2-gtk-3.0
    # browser interop tests and huddle-web-bench (crates/peer); Firefox is driven over the
    # WebDriver BiDi it serves itself
    chromium chromium-driver firefox-esr
    # screen-capture tests draw on the virtual display with xsetroot; the app test pastes what
    # the app copied with xclip
    x11-xserver-utils xclip
    # the NAT tests (crates/peer/tests/nat.rs): NATs in network namespaces, a STUN/TURN server
    nftables coturn
  )
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
    --no-install-recommends "${missing[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) and run this again" >&2
  exit 1
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm not found: install Node.js 18 or newer (Debian package nodejs + npm) and run this again" >&2
  exit 1
fi
# The Tauri CLI (bundles the .deb), at the version package-lock.json pins. (`npm install`, not
# `npm ci`: this npm records only this platform's optional CLI binary in the lock file.)
if [ ! -x node_modules/.bin/tauri ]; then
  npm install --no-audit --no-fund --loglevel=error
fi
if [ "$what" = test ] && ! command -v tauri-driver >/dev/null 2>&1 && [ ! -x "$HOME/.cargo/bin/tauri-driver" ]; then
  echo "installing tauri-driver (WebDriver bridge for the end-to-end app test)"
  cargo install tauri-driver --locked --version 2.1.0
fi
# Firebase's Auth emulator (the sign-in tests start it; it runs offline), targaryen (checks the
# shipped database.rules.json against an independent implementation of Firebase's rule semantics),
# and the official SDKs, firebase and firebase-admin, that judge huddle-db's realtime protocol.
if [ "$what" = test ] && { [ ! -x tests/firebase/node_modules/.bin/firebase ] || [ ! -x tests/firebase/node_modules/.bin/targaryen ] \
    || [ ! -f tests/firebase/node_modules/firebase/package.json ] || [ ! -f tests/firebase/node_modules/firebase-admin/package.json ]; }; then
  echo "installing firebase-tools, targaryen and the Firebase SDKs (tests/firebase)"
  npm install --prefix tests/firebase --no-audit --no-fund --loglevel=error
fi
