#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind (issue 16): a
# figure that does not move with the machine's load, for tracking the cost of
# a change to the status GET or the create path. Not in CI (slow: ~2 min).
# Rows: the bare axum baseline; per database, GET of a queued task, GET of
# the same task once ended (canceled; served from the ended-task cache), and
# create.
#
#   bench/instructions.sh                  SQLite and PostgreSQL, 500 requests x 3
#   GG_INSN_DBS=sqlite bench/instructions.sh
#   GG_INSN_REQUESTS=1000 GG_INSN_REPEAT=5 bench/instructions.sh
#
# Method, per path (get, create) and database:
#   1. the release server runs under `valgrind --tool=callgrind
#      --instr-atstart=no` (nothing counted until switched on), --no-runner,
#      with the API key cached for an hour (so the key read, amortised over
#      thousands of requests in production, is not in the figure);
#   2. a warm-up of 50 requests (connection pools, caches, lazy statics);
#   3. `callgrind_control -i on`, N requests one after another on one
#      keep-alive connection, `-i off`, dump: instructions I_req in time T;
#   4. `-i on` again for the same T with no request, `-i off`, dump: I_idle
#      (timers, the sweeper: what the server does anyway);
#   5. per request = (I_req - I_idle) / N. Repeated GG_INSN_REPEAT times on
#      the same server; the table gives the median and the range.
# Only the server process is counted: on PostgreSQL the database's own work is
# not in the figure (the client side of the protocol is).
#
# Results: a table on stdout and in bench/results/instructions-<date>.md.
# `perf stat -e instructions` would be cheaper, but this machine's VM exposes
# no hardware counters (perf reports `<not supported>`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PG_BASE="${GG_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
DBS="${GG_INSN_DBS:-sqlite postgres}"
N="${GG_INSN_REQUESTS:-500}"
REPEAT="${GG_INSN_REPEAT:-3}"
PORT=18085
SERVER_PID=

# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
bench_init insn insn
# The server's own last words, if it stopped answering.
bench_on_die() {
    if [[ -s "$WORK/server.log" ]]; then
        log "server log (last 20 lines):"
        tail -20 "$WORK/server.log" >&2
    fi
}

if ! command -v valgrind >/dev/null || ! command -v callgrind_control >/dev/null; then
    log "installing valgrind"
    apt-get install -y valgrind >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
fi
command -v python3 >/dev/null || die "python3 is missing"
if [[ " $DBS " == *" postgres "* ]]; then command -v psql >/dev/null || die "psql is missing"; fi

log "building (release)"
(cd "$ROOT" && cargo build -q --release -p gengate-server -p gengate-bench-baseline)
GENGATE="$TARGET/release/gengate"
BASELINE="$TARGET/release/gengate-bench-baseline"
API="http://127.0.0.1:$PORT"

# new_db, gg: bench/lib.sh

# start_server [CMD...]: the command under callgrind (default: gengate).
start_server() {
    if (($# == 0)); then
        set -- "$GENGATE" serve --listen "127.0.0.1:$PORT" --database-url "$DB_URL" --data-dir "$DATA_DIR" \
            --no-bootstrap --no-runner --key-cache-ms 3600000 --log-format json \
            --rate-create-per-min 100000000 --rate-read-per-min 100000000
    fi
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$WORK/cg.out.%p" \
        "$@" >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 1 600); do
        if curl -fsS -o /dev/null "$API/healthz" 2>/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$WORK/server.log" >&2; die "server exited at start"; }
        sleep 0.1
    done
    die "server under valgrind did not answer in 60 s"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

# requests KIND COUNT: COUNT requests one after another on one keep-alive
# connection; fails on any unexpected status.
requests() {
    python3 - "$1" "$2" "$PORT" "${KEY:-}" "${TASK_ID:-}" <<'PY'
import http.client, json, sys
kind, n, port, key, task = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
body = json.dumps({"model": "kling-3-0", "prompt": "A lighthouse at dusk", "params": {"duration": "5"}})
for _ in range(n):
    if kind == "baseline":
        c.request("GET", "/")
        want = 200
    elif kind in ("get", "get-ended"):
        c.request("GET", f"/api/v1/generations/{task}", headers={"Authorization": f"Bearer {key}"})
        want = 200
    else:
        c.request("POST", "/api/v1/generations", body=body,
                  headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        want = 202
    r = c.getresponse()
    data = r.read()
    if r.status != want:
        sys.exit(f"{kind}: HTTP {r.status} {data[:200]!r}")
PY
}

# Total instructions (Ir) of the newest callgrind dump of the server. Dumps
# are cg.out.PID.1, .2, …; the file's `summary:` line is 0 for a dump asked
# for with callgrind_control, its `totals:` line is the count.
last_dump_total() {
    local f n last=0
    for f in "$WORK/cg.out.$SERVER_PID".*; do
        n=${f##*.}
        [[ $n =~ ^[0-9]+$ ]] && ((n > last)) && last=$n
    done
    ((last > 0)) || die "no callgrind dump"
    awk '/^totals:/ { print $2; exit }' "$WORK/cg.out.$SERVER_PID.$last"
}

# window KIND COUNT → prints "INSTRUCTIONS SECONDS" of one counted window.
window() {
    local t0 t1
    callgrind_control -i on "$SERVER_PID" >/dev/null 2>&1
    t0=$(date +%s.%N)
    if (($2 > 0)); then
        requests "$1" "$2" || die "$1 requests failed"
    else
        sleep "$IDLE_S"
    fi
    t1=$(date +%s.%N)
    callgrind_control -i off "$SERVER_PID" >/dev/null 2>&1
    callgrind_control -d "$SERVER_PID" >/dev/null 2>&1
    sleep 0.2
    echo "$(last_dump_total) $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }')"
}

ROWS=()
# repeat_windows DB KIND: the REPEAT counted windows; sets PER_REQ (median),
# LO, HI.
repeat_windows() {
    local db=$1 kind=$2 r ireq treq iidle tidle per all=()
    for r in $(seq 1 "$REPEAT"); do
        read -r ireq treq < <(window "$kind" "$N")
        IDLE_S=$treq
        read -r iidle tidle < <(window "$kind" 0)
        per=$(awk -v a="$ireq" -v b="$iidle" -v n="$N" 'BEGIN { printf "%.0f", (a - b) / n }')
        log "$db $kind run $r: $ireq instructions for $N requests in $treq s, idle $iidle in $tidle s: $per per request"
        all+=("$per")
    done
    local sorted
    sorted=$(printf '%s\n' "${all[@]}" | sort -n)
    PER_REQ=$(echo "$sorted" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
    LO=$(echo "$sorted" | head -1)
    HI=$(echo "$sorted" | tail -1)
}

# The bare axum handler of bench/run.sh's baseline: what the HTTP stack and
# runtime cost alone, to set the gateway's figures against.
measure_baseline() {
    start_server "$BASELINE" "127.0.0.1:$PORT"
    requests baseline 50 || die "baseline: warm-up failed"
    repeat_windows - baseline
    stop_server
    ROWS+=("| bare axum GET (bench/baseline) | - | $PER_REQ | $LO–$HI | $N × $REPEAT |")
}

measure() {
    local db=$1 kind=$2
    new_db "$db"
    gg accounts create bench --credits 1000000000000 >/dev/null
    KEY=$(gg keys create --account bench --name insn --rate-read-per-min 100000000 \
        --rate-create-per-min 100000000 | awk '/^secret:/ { print $2 }')
    [[ -n $KEY ]] || die "$db/$kind: no key"
    start_server
    TASK_ID=$(curl -fsS "$API/api/v1/generations" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' \
        -d '{"model":"kling-3-0","prompt":"A lighthouse at dusk","params":{"duration":"5"}}' |
        sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [[ -n $TASK_ID ]] || die "$db/$kind: could not create a task"
    requests "$kind" 50 || die "$db/$kind: warm-up failed"
    repeat_windows "$db" "$kind"
    if [[ $kind == get ]]; then
        # The same task once ended (canceled): served from the ended-task cache.
        curl -fsS -o /dev/null -X POST "$API/api/v1/generations/$TASK_ID/cancel" \
            -H "Authorization: Bearer $KEY" || die "$db: could not cancel the task"
        requests get 50 || die "$db/get ended: warm-up failed"
        local queued_row="| GET /api/v1/generations/{id} | $db | $PER_REQ | $LO–$HI | $N × $REPEAT |"
        repeat_windows "$db" "get-ended"
        ROWS+=("$queued_row")
        ROWS+=("| GET /api/v1/generations/{id}, ended task | $db | $PER_REQ | $LO–$HI | $N × $REPEAT |")
    fi
    stop_server
    if [[ $kind == create ]]; then
        gg credits audit >"$WORK/audit.out" 2>&1 || { cat "$WORK/audit.out" >&2; die "$db/create: ledger audit"; }
    fi
    if [[ $kind == create ]]; then
        ROWS+=("| POST /api/v1/generations (--no-runner) | $db | $PER_REQ | $LO–$HI | $N × $REPEAT |")
    fi
}

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
measure_baseline
for db in $DBS; do
    measure "$db" get
    measure "$db" create
done

mkdir -p "$ROOT/bench/results"
OUT="$ROOT/bench/results/instructions-$(date -u +%Y-%m-%d-%H%M%S).md"
{
    echo "## gengate instructions per request (callgrind, release) — $START"
    echo
    echo "Commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')$(cd "$ROOT" && git diff --quiet HEAD 2>/dev/null || echo ' (+ uncommitted changes)'); $(valgrind --version)."
    echo "Server process only (not PostgreSQL's); sequential requests on one keep-alive connection; idle instructions subtracted."
    if env | grep -q '^GENGATE_'; then echo "Server settings from the environment: $(env | grep '^GENGATE_' | sort | tr '\n' ' ')"; fi
    echo
    echo "| request | db | instructions per request (median) | range | requests × runs |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
log "written to $OUT"
