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
pid=""
# Everything the app run starts (xvfb-run, its Xvfb, dbus-run-session and its bus, the app and its
# WebKit processes) lives in one new session whose id is $pid: killing that group ends all of it,
# where killing xvfb-run alone left the app, the bus and Xvfb running. Any process that still has
# our $tmp in its environment afterwards escaped the group, and fails the run.
ours() {
  grep -lsF "HUDDLE_DATA_DIR=$tmp/data" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | grep -vx "$$" || true
}
cleanup() {
  status=$?
  if [ -n "$pid" ]; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      pgrep -s "$pid" >/dev/null || break
      sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    sleep 0.2
    left=$( { pgrep -s "$pid" || true; ours; } | sort -u)
    if [ -n "$left" ]; then
      echo "left running after the test:" >&2
      ps -o pid,sid,args -p "$(echo $left | tr ' ' ',')" >&2 || true
      kill -KILL $left 2>/dev/null || true
      status=1
    fi
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT
# A background job of a non-interactive shell is not a process-group leader, so setsid(1) makes
# the new session in this very process (no fork): $! is the session and group id.
HUDDLE_CONFIG_DIR="$tmp/config" HUDDLE_DATA_DIR="$tmp/data" \
  setsid xvfb-run -a dbus-run-session -- /usr/bin/huddle >"$tmp/log" 2>&1 &
pid=$!
url=""
for _ in $(seq 1 120); do
  url=$(grep -o 'signaling database ready at http://[0-9.:]*' "$tmp/log" | head -n1 | awk '{print $NF}') || true
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "the installed app exited:" >&2; cat "$tmp/log" >&2; exit 1; }
  sleep 0.5
done
[ -n "$url" ] || { echo "the installed app did not start its database in 60 s:" >&2; cat "$tmp/log" >&2; exit 1; }
# The embedded database enforces the shipped rules: nothing for a client that has not signed
# in (401), and the sign-up endpoint the app itself uses answers with a uid.
status=$(curl -s -o /dev/null -w '%{http_code}' "$url/.json")
[ "$status" = 401 ] || { echo "an unauthenticated read of $url/.json answered $status, not 401" >&2; exit 1; }
signup=$(curl -sf -X POST -H 'Content-Type: application/json' -d '{"returnSecureToken":true}' \
  "$url/identitytoolkit.googleapis.com/v1/accounts:signUp?key=huddle-app")
uid=$(printf '%s' "$signup" | grep -o '"localId" *: *"[^"]*"' | sed 's/.*"\([^"]*\)"$/\1/')
[ -n "$uid" ] || { echo "the sign-up endpoint of $url answered without a uid: $signup" >&2; exit 1; }
echo "the installed app runs; its database at $url refuses an unauthenticated read (401) and signs up users (uid $uid)"
