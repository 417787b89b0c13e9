#!/usr/bin/env bash
# A network outage mid-call, on loopback only: a network namespace with nothing but `lo`,
# huddle-db and two huddle-peers inside; once b decodes a's video, `lo` goes down for OUTAGE
# seconds (media and signaling lost), then comes back. Prints b's per-second stats so the
# recovery (reconnect without a rejoin, frame rate, intact frames, latency) can be read, then
# a's view of the connection (an outage longer than ~10 s is repaired by ICE restart). Needs root (unshare)
# and iproute2; build first: cargo build --release -p rtdb -p peer
# Usage: scripts/bench-outage.sh [OUTAGE_SECONDS]   (default 6)
set -euo pipefail
export OUTAGE=${1:-6}
export B=${CARGO_TARGET_DIR:-$HOME/.cache/huddle/target}/release
export OUT=$(mktemp -d)
unshare -n bash -c '
  set -u
  ip link set lo up
  "$B/huddle-db" --listen 127.0.0.1:9556 --data "$OUT/db" > /dev/null 2>&1 &
  DB=$!
  for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/9556) 2>/dev/null && break; sleep 0.1; done
  common="--db http://127.0.0.1:9556 --room r --loopback --size 320x180 --audio none --heartbeat-ms 1000 --expiry-ms 120000 --duration 30"
  RUST_LOG=error,mesh=debug "$B/huddle-peer" $common --create --name a > "$OUT/a.out" 2>"$OUT/a.err" &
  A=$!
  for i in $(seq 100); do grep -q joined "$OUT/a.out" 2>/dev/null && break; sleep 0.1; done
  "$B/huddle-peer" $common --name b > "$OUT/b.out" 2>/dev/null &
  PB=$!
  for i in $(seq 300); do grep -q first_frame "$OUT/b.out" 2>/dev/null && break; sleep 0.1; done
  sleep 1; ip link set lo down; sleep "$OUTAGE"; ip link set lo up
  wait $A $PB
  kill $DB
'
python3 - "$OUT/b.out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v["type"] == "stats":
        print(f'  t={v["t_ms"]/1000:5.1f}s fps={v["fps"]:4.1f} intact={v.get("intact_fps", 0):4.1f} received={v["bitrate_kbps"]:5.0f} kbit/s latency={v["latency_ms"]}')
    elif v["type"] in ("connection", "member_left", "member_joined", "ice_restart"):
        print(f'  t={v["t_ms"]/1000:5.1f}s {v["type"]} {v.get("state", v.get("reason", ""))}')
PY
echo "a's view of the connection:"
python3 - "$OUT/a.out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v["type"] in ("connection", "member_left", "member_joined", "ice_restart"):
        print(f'  t={v["t_ms"]/1000:5.1f}s {v["type"]} {v.get("state", v.get("reason", ""))}')
PY
echo "sender a's send path at the end (NACK resends, stale resends dropped, pacer refusals) and keyframe sizes:"
sed 's/\x1b\[[0-9;]*m//g' "$OUT/a.err" | grep 'send path' | tail -1 | grep -o 'estimate_kbps.*'
sed 's/\x1b\[[0-9;]*m//g' "$OUT/a.err" | grep 'keyframe encoded' | grep -o 'bytes=[0-9]*' | tr '\n' ' '; echo
rm -rf "$OUT"
