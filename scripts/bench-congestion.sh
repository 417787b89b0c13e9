#!/usr/bin/env bash
# Congestion control under a real bottleneck, on loopback only: creates a network namespace that
# has nothing but `lo`, limits `lo` with a token bucket (tc tbf), runs huddle-db and two
# huddle-peers there (a sends 640x360 video, b receives), and prints b's per-second stats and a's
# encoder targets. Needs root (unshare) and iproute2's tc; build first:
#   cargo build --release -p rtdb -p peer
# Usage: [CODEC=h264] scripts/bench-congestion.sh [RATE]   (default 600kbit, VP8)
set -euo pipefail
RATE=${1:-600kbit}
CODEC=${CODEC:-vp8}
B=${CARGO_TARGET_DIR:-$HOME/.cache/huddle/target}/release
OUT=$(mktemp -d)
export RATE B OUT CODEC
unshare -n bash -c '
  set -e
  ip link set lo up
  tc qdisc add dev lo root tbf rate "$RATE" burst 32kbit latency 100ms
  "$B/huddle-db" --listen 127.0.0.1:9555 --data "$OUT/db" >/dev/null 2>&1 &
  DB=$!
  sleep 0.5
  RUST_LOG=error,mesh=debug timeout 25 "$B/huddle-peer" --db http://127.0.0.1:9555 --room g --create \
    --name a --loopback --codec "$CODEC" --audio none --duration 18 >/dev/null 2>"$OUT/a.err" &
  sleep 0.5
  timeout 25 "$B/huddle-peer" --db http://127.0.0.1:9555 --room g --name b \
    --loopback --codec "$CODEC" --audio none --video none --duration 17 >"$OUT/b.out" 2>/dev/null || true
  sleep 1
  kill $DB 2>/dev/null || true
'
echo "link: $RATE on loopback, $CODEC; receiver b, per second:"
python3 - "$OUT/b.out" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    v = json.loads(line)
    if v["type"] == "stats":
        print(f'  t={v["t_ms"]/1000:5.1f}s fps={v["fps"]:4.1f} intact={v.get("intact_fps", 0):4.1f} received={v["bitrate_kbps"]:6.0f} kbit/s latency={v["latency_ms"]} ms')
PY
echo "sender a's encoder target (kbit/s) as congestion control moved it:"
sed 's/\x1b\[[0-9;]*m//g' "$OUT/a.err" | grep 'encoder follows' | grep -o 'kbps=[0-9]*' | tr '\n' ' '; echo
echo "sender a's send path at the end (NACK resends, stale resends dropped, pacer refusals) and keyframe sizes:"
sed 's/\x1b\[[0-9;]*m//g' "$OUT/a.err" | grep 'send path' | tail -1 | grep -o 'estimate_kbps.*'
sed 's/\x1b\[[0-9;]*m//g' "$OUT/a.err" | grep 'keyframe encoded' | grep -o 'bytes=[0-9]*' | tr '\n' ' '; echo
rm -rf "$OUT"
