#!/usr/bin/env bash
# Peak RSS of a gengate node under concurrent image-decode bombs (issue 10,
# item 3; docs/HARDENING.md "Decode memory budget").
#
#   bench/decode_rss.sh [BINARY]
#
# Uploads N (default 8) copies of a ~350 KB PNG declaring 11000x11000 pixels
# (~363 MB decoded each) at once, twice: with the decode budget effectively
# off (--max-decode-memory 1 TiB: the behaviour before the budget) and with
# the default budget (512 MiB). Prints the answers' status codes and the
# server's peak RSS (VmHWM) for each run. BINARY defaults to
# target/debug/gengate (build it with `cargo build`); loopback only.
# Environment: GG_DECODE_UPLOADS (N), GG_DECODE_SIDE (pixels per side).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${1:-$ROOT/target/debug/gengate}
N=${GG_DECODE_UPLOADS:-8}
SIDE=${GG_DECODE_SIDE:-11000}
WORK=$(mktemp -d)
PID=
cleanup() {
  if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

[[ -x "$BIN" ]] || { echo "no binary at $BIN (cargo build first)" >&2; exit 1; }

python3 - "$WORK/big.png" "$SIDE" <<'EOF'
import struct, sys, zlib
path, side = sys.argv[1], int(sys.argv[2])
row = b"\0" * (1 + side * 3)
z = zlib.compressobj(9)
idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
with open(path, "wb") as f:
    f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
EOF

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run() {
  local label=$1; shift
  local data="$WORK/data-$label"
  mkdir -p "$data"
  "$BIN" accounts create bench --credits 0 --data-dir "$data" >/dev/null
  local key
  key=$("$BIN" keys create --account bench --name bench --data-dir "$data" | awk '/^secret:/ {print $2}')
  local port; port=$(free_port)
  GENGATE_LOG=warn "$BIN" serve --listen "127.0.0.1:$port" --data-dir "$data" \
    --no-bootstrap --no-runner "$@" >"$WORK/$label.log" 2>&1 &
  PID=$!
  for _ in $(seq 1 200); do
    curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.05
  done
  local before; before=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
  local codes=()
  local pids=()
  for i in $(seq 1 "$N"); do
    curl -sS -o "$WORK/$label-$i.json" -w '%{http_code}' \
      -H "Authorization: Bearer $key" -F kind=image -F "file=@$WORK/big.png;type=image/png" \
      "http://127.0.0.1:$port/api/v1/files" >"$WORK/$label-$i.code" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || true; done
  for i in $(seq 1 "$N"); do codes+=("$(cat "$WORK/$label-$i.code")"); done
  local peak; peak=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
  kill "$PID"; wait "$PID" 2>/dev/null || true; PID=
  printf '%-10s answers: %s\n' "$label" "$(printf '%s\n' "${codes[@]}" | sort | uniq -c | awk '{printf "%s×%s ", $1, $2}')"
  printf '%-10s peak RSS: %d MB (idle: %d MB)\n' "$label" $((peak / 1024)) $((before / 1024))
}

echo "$N concurrent uploads of a $(stat -c %s "$WORK/big.png")-byte PNG declaring ${SIDE}x${SIDE}"
run unbounded --max-decode-memory 1099511627776
run budget
