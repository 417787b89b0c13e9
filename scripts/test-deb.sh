#!/usr/bin/env bash
# Builds the .deb with the Tauri CLI, checks what it contains, installs it with apt, and starts
# the installed /usr/bin/huddle under a virtual display until its built-in database answers.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/huddle/target}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

npx tauri build --bundles deb
deb=$(ls -t "$CARGO_TARGET_DIR"/release/bundle/deb/huddle_*.deb | head -n1)
echo "built $deb ($(du -h "$deb" | cut -f1))"

contents=$(dpkg-deb --contents "$deb")
for f in usr/bin/huddle usr/share/applications/huddle.desktop; do
  grep -Eq " (\./)?$f\$" <<<"$contents" || { echo "the .deb lacks /$f" >&2; exit 1; }
done
desktop=$(dpkg-deb --fsys-tarfile "$deb" | tar -xO --wildcards '*usr/share/applications/huddle.desktop')
grep -q 'x-scheme-handler/huddle' <<<"$desktop" || { echo "the .deb does not register huddle:// links" >&2; exit 1; }

DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq --reinstall "$deb" >/dev/null
echo "installed: $(dpkg-query -W -f='${Package} ${Version}' huddle)"

tmp=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
HUDDLE_CONFIG_DIR="$tmp/config" HUDDLE_DATA_DIR="$tmp/data" \
  xvfb-run -a dbus-run-session -- /usr/bin/huddle >"$tmp/log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 120); do
  url=$(grep -o 'signaling database ready at http://[0-9.:]*' "$tmp/log" | head -n1 | awk '{print $NF}') || true
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the installed app exited:" >&2; cat "$tmp/log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$url" ] || { echo "the installed app did not start its database in 60 s:" >&2; cat "$tmp/log" >&2; exit 1; }
answer=$(curl -sf "$url/.json")
echo "the installed app runs; its database at $url answers: $answer"
