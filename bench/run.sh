#!/usr/bin/env bash
# gengate benchmarks (issue 7). Run from anywhere:
#
#   bench/run.sh            release build, ~10 s per measurement (the real run)
#   bench/run.sh --smoke    debug build, ~1 s per measurement: proves the
#                           scripts still work (CI); its figures mean nothing
#
# The server under test is pinned to CPU 0 (taskset -c 0), wrk to CPU 1. Every
# run first measures the bare axum baseline (bench/baseline) and reports each
# figure as absolute req/s, p50, p99 and a ratio to that baseline, so runs on
# noisy or different machines stay comparable.
#
# Scenarios, each on SQLite and on PostgreSQL (a fresh database per scenario):
#   get      authenticated GET /api/v1/generations/{id}; rate limiting on (a
#            high per-key budget), metrics on, as in production
#   create   POST /api/v1/generations at 1, 64 and 256 connections with
#            --no-runner: tasks stay queued, so creation (auth, rate limit,
#            validation, the debit + insert transaction) is what is measured
#   exhaust  many accounts with credits for a few tasks each, hammered with
#            creates round-robin until all run out; counts 202 vs 402, checks
#            every balance is 0 and `gengate credits audit` reports no mismatch
#   longpoll 10,000 queued tasks and 10,000 open long polls (bench/longpoll.py):
#            peak RSS, and "status change -> long poll answered" latency (a
#            catalog with a short deadline lets the deadline sweeper change
#            the status in process)
#   callback kling-3-0 on the in-repo fake Kling (`gengate dev fake-kling`):
#            GG_BENCH_CB_TASKS tasks (1,000) in flight upstream at once, the
#            fake finishing them; the fake's finish time -> `succeeded` seen by
#            a waiting long poll (bench/callback.py), once with callbacks and
#            once with callbacks lost (the server's polling finds the end)
#
# Environment: GG_BENCH_PG (default postgres://postgres@127.0.0.1:5432),
# GG_BENCH_DBS (default "sqlite postgres"), GG_BENCH_DURATION (seconds),
# GG_BENCH_PROFILE (debug|release: overrides the build profile),
# GG_BENCH_ACCOUNTS (exhaustion accounts), GG_BENCH_LP_TASKS (long-poll tasks),
# GG_BENCH_CB_TASKS, GG_BENCH_CB_RATE (callback scenario: tasks, creates per s),
# GG_BENCH_ONLY (scenarios to run, e.g. "longpoll"; default all).
# Exits non-zero when anything fails: a server that does not start, wrk errors
# or non-2xx answers where none are expected, a ledger mismatch, a long poll
# not answered with the changed status, a Kling task that did not succeed.
set -euo pipefail

MODE=release
if [[ "${1:-}" == "--smoke" ]]; then MODE=smoke; fi

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PG_BASE="${GG_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
DBS="${GG_BENCH_DBS:-sqlite postgres}"
if [[ $MODE == smoke ]]; then
    DUR="${GG_BENCH_DURATION:-1}"
    ACCOUNTS="${GG_BENCH_ACCOUNTS:-5}"
    LP_TASKS="${GG_BENCH_LP_TASKS:-100}"
    LP_DEADLINE=4
    LP_WAIT=20
    CB_TASKS="${GG_BENCH_CB_TASKS:-100}"
    CB_RATE="${GG_BENCH_CB_RATE:-100}"
    CB_SUBMITTED_MS=300
    CB_PROCESSING_MS=1500
    CB_POLL_MS=500
    PROFILE=debug
else
    DUR="${GG_BENCH_DURATION:-10}"
    ACCOUNTS="${GG_BENCH_ACCOUNTS:-200}"
    LP_TASKS="${GG_BENCH_LP_TASKS:-10000}"
    LP_DEADLINE=90
    LP_WAIT=60
    CB_TASKS="${GG_BENCH_CB_TASKS:-1000}"
    CB_RATE="${GG_BENCH_CB_RATE:-200}"
    CB_SUBMITTED_MS=1000
    CB_PROCESSING_MS=7000
    CB_POLL_MS=5000 # the server's default --kling-poll-ms
    PROFILE=release
fi
TASKS_PER_ACCOUNT=3
PRICE=90
BASE_PORT=18090
PORT=18080
FAKE_PORT=18094
# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_init bench bench

# --- tools and binaries -----------------------------------------------------
need_wrk
command -v taskset >/dev/null || die "taskset (util-linux) is missing"
command -v python3 >/dev/null || die "python3 is missing (bench/longpoll.py)"
# 10k long polls need 10k sockets on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" || true
if [[ " $DBS " == *" postgres "* ]]; then command -v psql >/dev/null || die "psql is missing"; fi
CPUS=$(nproc)
if ((CPUS >= 2)); then
    PIN_SERVER=(taskset -c 0)
    PIN_WRK=(taskset -c 1)
else
    log "only $CPUS CPU: not pinning"
    PIN_SERVER=()
    PIN_WRK=()
fi

PROFILE="${GG_BENCH_PROFILE:-$PROFILE}"
log "building ($PROFILE)"
if [[ $PROFILE == release ]]; then
    (cd "$ROOT" && cargo build -q --release -p gengate-server -p gengate-bench-baseline)
else
    (cd "$ROOT" && cargo build -q -p gengate-server -p gengate-bench-baseline)
fi
GENGATE="$TARGET/$PROFILE/gengate"
BASELINE="$TARGET/$PROFILE/gengate-bench-baseline"

# --- helpers ----------------------------------------------------------------
SERVER_PID=
# start_server PORT LOGFILE CMD...: starts CMD pinned to CPU 0, waits until
# GET /healthz (or /) answers.
start_server() {
    local port=$1 logf=$2
    shift 2
    "${PIN_SERVER[@]}" "$@" >"$logf" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    local i
    for i in $(seq 1 200); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then return 0; fi
        kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$logf" >&2; die "server exited at start: $*"; }
        sleep 0.05
    done
    tail -20 "$logf" >&2
    die "server did not answer on port $port: $*"
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}

# Peak resident set of the running server, in MB.
peak_rss_mb() {
    awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$SERVER_PID/status" 2>/dev/null || echo "?"
}

# wrk output → "REQS P50_MS P99_MS NON2XX SOCKERR"
parse_wrk() {
    awk '
        function ms(v) {
            if (v ~ /us$/) { sub(/us$/, "", v); return v / 1000 }
            if (v ~ /ms$/) { sub(/ms$/, "", v); return v + 0 }
            if (v ~ /m$/)  { sub(/m$/, "", v);  return v * 60000 }
            if (v ~ /s$/)  { sub(/s$/, "", v);  return v * 1000 }
            return v
        }
        /^ +50%/ { p50 = ms($2) }
        /^ +99%/ { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ {
            gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10
        }
        END { printf "%s %.3f %.3f %d %d\n", rps, p50, p99, non2xx, sockerr }
    '
}

# run_wrk OUTFILE CONNS LUA URL: runs wrk pinned to CPU 1.
run_wrk() {
    local out=$1 conns=$2 lua=$3 url=$4
    local args=(-t1 -c"$conns" -d"${DUR}s" --timeout 10s --latency)
    if [[ -n $lua ]]; then args+=(-s "$lua"); fi
    "${PIN_WRK[@]}" wrk "${args[@]}" "$url" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed: $url"; }
}

ROWS=()
BASE_RPS=
# row SCENARIO DB CONNS RPS P50 P99 RSS NOTES
row() {
    local ratio="-" rps="$4"
    if [[ $4 != "-" ]]; then
        rps=$(printf '%.0f' "$4")
        if [[ -n $BASE_RPS ]]; then ratio=$(awk -v a="$4" -v b="$BASE_RPS" 'BEGIN { printf "%.2f", a / b }'); fi
    fi
    ROWS+=("| $1 | $2 | $3 | $rps | $5 | $6 | $ratio | $7 | $8 |")
    log "$1 $2 c=$3: $4 req/s p50 $5 ms p99 $6 ms ratio $ratio rss ${7}MB $8"
}

FAILURES=0
fail_soft() {
    log "FAILED: $*"
    FAILURES=$((FAILURES + 1))
}

# new_db, gg: bench/lib.sh

# new_key ACCOUNT CREDITS → prints the secret of a fresh key with high (but
# enforced) rate limits.
new_key() {
    gg accounts create "$1" --credits "$2" >/dev/null
    gg keys create --account "$1" --name bench --rate-read-per-min 100000000 \
        --rate-create-per-min 100000000 | awk '/^secret:/ { print $2 }'
}

serve() {
    start_server "$PORT" "$WORK/server.log" "$GENGATE" serve --listen "127.0.0.1:$PORT" \
        --database-url "$DB_URL" --data-dir "$DATA_DIR" --no-bootstrap --no-runner \
        --rate-create-per-min 100000000 --rate-read-per-min 100000000 "$@"
}

API="http://127.0.0.1:$PORT"

# --- baseline ---------------------------------------------------------------
scenario_baseline() {
    start_server "$BASE_PORT" "$WORK/baseline.log" "$BASELINE" "127.0.0.1:$BASE_PORT"
    run_wrk "$WORK/wrk.out" 64 "" "http://127.0.0.1:$BASE_PORT/"
    read -r rps p50 p99 non2xx sockerr < <(parse_wrk <"$WORK/wrk.out")
    ((non2xx == 0 && sockerr == 0)) || die "baseline: $non2xx non-2xx, $sockerr socket errors"
    local rss
    rss=$(peak_rss_mb)
    stop_server
    BASE_RPS=$rps
    row baseline - 64 "$rps" "$p50" "$p99" "$rss" "bare axum GET, JSON body"
    if wanted longpoll; then
        # What the HTTP stack alone keeps per open connection, to set against
        # the long-poll run's RSS.
        start_server "$BASE_PORT" "$WORK/baseline.log" "$BASELINE" "127.0.0.1:$BASE_PORT"
        local out kv
        out=$("${PIN_WRK[@]}" python3 "$BENCH/idleconns.py" --port "$BASE_PORT" --pid "$SERVER_PID" \
            --conns "$LP_TASKS") || { echo "$out" >&2; fail_soft "baseline idle connections"; }
        rss=$(peak_rss_mb)
        stop_server
        log "baseline idle connections: $out"
        kv() { echo "$out" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
        row "baseline, $LP_TASKS idle keep-alive connections" - "$LP_TASKS" - - - "$rss" \
            "bare axum after one GET on each connection: $(kv per_conn_kb) KB per open connection"
    fi
}

# --- a. authenticated status GET ---------------------------------------------
scenario_get() {
    local db=$1 key id
    new_db "$db"
    key=$(new_key bench 1000000)
    [[ -n $key ]] || die "get/$db: no key"
    serve
    id=$(curl -fsS "$API/api/v1/generations" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/json' \
        -d '{"model":"kling-3-0","prompt":"A lighthouse at dusk","params":{"duration":"5"}}' |
        sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [[ -n $id ]] || die "get/$db: could not create a task"
    GG_KEY=$key run_wrk "$WORK/wrk.out" 64 "$BENCH/get.lua" "$API/api/v1/generations/$id"
    read -r rps p50 p99 non2xx sockerr < <(parse_wrk <"$WORK/wrk.out")
    ((non2xx == 0 && sockerr == 0)) || fail_soft "get/$db: $non2xx non-2xx, $sockerr socket errors"
    row "GET /generations/{id}" "$db" 64 "$rps" "$p50" "$p99" "$(peak_rss_mb)" "auth + rate limit + metrics + store read"
    # The same task once it has ended (canceled: failed, refunded): an ended
    # task never changes, so it is served from the in-process cache.
    curl -fsS -o /dev/null -X POST "$API/api/v1/generations/$id/cancel" -H "Authorization: Bearer $key" ||
        die "get/$db: could not cancel the task"
    GG_KEY=$key run_wrk "$WORK/wrk.out" 64 "$BENCH/get.lua" "$API/api/v1/generations/$id"
    read -r rps p50 p99 non2xx sockerr < <(parse_wrk <"$WORK/wrk.out")
    local rss
    rss=$(peak_rss_mb)
    stop_server
    ((non2xx == 0 && sockerr == 0)) || fail_soft "get ended/$db: $non2xx non-2xx, $sockerr socket errors"
    row "GET /generations/{id}, ended task" "$db" 64 "$rps" "$p50" "$p99" "$rss" "auth + rate limit + metrics; the task from the ended-task cache"
}

# --- b. creates ---------------------------------------------------------------
scenario_create() {
    local db=$1 conns key
    for conns in 1 64 256; do
        new_db "$db"
        key=$(new_key bench 1000000000000)
        [[ -n $key ]] || die "create/$db: no key"
        serve
        GG_KEY=$key run_wrk "$WORK/wrk.out" "$conns" "$BENCH/post.lua" "$API/api/v1/generations"
        read -r rps p50 p99 non2xx sockerr < <(parse_wrk <"$WORK/wrk.out")
        local rss
        rss=$(peak_rss_mb)
        stop_server
        ((non2xx == 0 && sockerr == 0)) || fail_soft "create/$db c=$conns: $non2xx non-2xx, $sockerr socket errors"
        gg credits audit >"$WORK/audit.out" 2>&1 || { cat "$WORK/audit.out" >&2; fail_soft "create/$db c=$conns: ledger audit"; }
        row "POST /generations (--no-runner)" "$db" "$conns" "$rps" "$p50" "$p99" "$rss" "debit, ledger row, task, job (group-committed); audit ok"
    done
}

# --- c. credits exhaustion ------------------------------------------------------
scenario_exhaust() {
    local db=$1 n k key conns=256
    new_db "$db"
    : >"$WORK/keys"
    for n in $(seq 1 "$ACCOUNTS"); do
        key=$(new_key "acct$n" $((TASKS_PER_ACCOUNT * PRICE)))
        [[ -n $key ]] || die "exhaust/$db: no key for acct$n"
        echo "$key" >>"$WORK/keys"
    done
    serve
    GG_KEYS_FILE="$WORK/keys" run_wrk "$WORK/wrk.out" "$conns" "$BENCH/exhaust.lua" "$API/api/v1/generations"
    read -r rps p50 p99 non2xx sockerr < <(parse_wrk <"$WORK/wrk.out")
    local rss
    rss=$(peak_rss_mb)
    stop_server
    local ok202 n402 other expected
    ok202=$(awk '$1 == "status" && $2 == 202 { print $3 }' "$WORK/wrk.out")
    n402=$(awk '$1 == "status" && $2 == 402 { print $3 }' "$WORK/wrk.out")
    other=$(awk '$1 == "status" && $2 != 202 && $2 != 402 { s += $3 } END { print s + 0 }' "$WORK/wrk.out")
    ok202=${ok202:-0}
    n402=${n402:-0}
    expected=$((ACCOUNTS * TASKS_PER_ACCOUNT))
    local audit="audit ok"
    gg credits audit >"$WORK/audit.out" 2>&1 || { cat "$WORK/audit.out" >&2; audit="AUDIT MISMATCH"; fail_soft "exhaust/$db: ledger audit"; }
    # Every account must have run out: balance 0, i.e. exactly
    # TASKS_PER_ACCOUNT debits each (the audit ties balances to the ledger).
    local nonzero
    nonzero=$(gg accounts list | awk -F'\t' '$3 != "0 credits"' | wc -l)
    ((nonzero == 0)) || fail_soft "exhaust/$db: $nonzero account(s) with credits left"
    ((ok202 <= expected)) || fail_soft "exhaust/$db: $ok202 accepted > $expected paid for"
    ((other == 0 && sockerr == 0)) || fail_soft "exhaust/$db: $other other statuses, $sockerr socket errors"
    # wrk does not count answers still in flight when it stops, so 202 may be
    # a little under the tasks created; the balances above are exact.
    row "credits exhaustion" "$db" "$conns" "$rps" "$p50" "$p99" "$rss" \
        "$ACCOUNTS accounts x $TASKS_PER_ACCOUNT tasks: 202=$ok202 (of $expected) 402=$n402 other=$other; balances 0; $audit"
}

# --- d. 10k in-flight tasks + 10k open long polls --------------------------------
scenario_longpoll() {
    local db=$1 key out
    new_db "$db"
    key=$(new_key bench $((LP_TASKS * PRICE)))
    [[ -n $key ]] || die "longpoll/$db: no key"
    # A catalog whose kling-3-0 tasks time out after LP_DEADLINE s: the
    # deadline sweeper then fails them in process, which is the status change
    # the long polls wait for.
    sed "s/\"deadline_seconds\": [0-9]*/\"deadline_seconds\": $LP_DEADLINE/" "$ROOT/catalog/models.json" >"$WORK/catalog.json"
    serve --catalog "$WORK/catalog.json" --sweep-ms 50
    out=$("${PIN_WRK[@]}" python3 "$BENCH/longpoll.py" --port "$PORT" --key "$key" --pid "$SERVER_PID" \
        --tasks "$LP_TASKS" --wait "$LP_WAIT") || { echo "$out" >&2; fail_soft "longpoll/$db"; }
    stop_server
    log "longpoll/$db: $out"
    local kv p50 p99 hwm
    kv() { echo "$out" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    p50=$(kv lat_p50_ms)
    p99=$(kv lat_p99_ms)
    hwm=$(kv hwm_mb)
    gg credits audit >"$WORK/audit.out" 2>&1 || { cat "$WORK/audit.out" >&2; fail_soft "longpoll/$db: ledger audit"; }
    row "$LP_TASKS in flight + $LP_TASKS long polls" "$db" "$LP_TASKS" - "${p50:-?}" "${p99:-?}" "${hwm:-?}" \
        "p50/p99 = status change -> poll answered; rss after create $(kv rss_created_mb) MB, with all open $(kv rss_open_mb) MB; create $(kv create_s) s, open $(kv open_s) s; answered $(kv answered), before open $(kv changed_before_open)"
}

# --- e. Kling finished -> `succeeded` seen by a long poll, 1,000 in flight ------
# start_fake_kling ARGS...: the fake, pinned with the client (it is the
# upstream, not the server under test); waits until it answers.
start_fake_kling() {
    "${PIN_WRK[@]}" "$GENGATE" dev fake-kling --listen "127.0.0.1:$FAKE_PORT" "$@" >"$WORK/fake.log" 2>&1 &
    FAKE_PID=$!
    PIDS+=("$FAKE_PID")
    local i
    for i in $(seq 1 200); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$FAKE_PORT/fake/completions" 2>/dev/null; then return 0; fi
        kill -0 "$FAKE_PID" 2>/dev/null || { tail -20 "$WORK/fake.log" >&2; die "fake kling exited at start"; }
        sleep 0.05
    done
    die "fake kling did not answer on port $FAKE_PORT"
}

# scenario_callback DB MODE: MODE is `callbacks` (the fake calls back; the
# server's polling is set to 20 s so only a callback can be fast) or `polling`
# (the fake never calls back; --kling-poll-ms CB_POLL_MS finds the end).
scenario_callback() {
    local db=$1 mode=$2 key out fake_flags=() poll_ms
    new_db "$db"
    key=$(new_key bench $((CB_TASKS * PRICE)))
    [[ -n $key ]] || die "callback/$db: no key"
    if [[ $mode == callbacks ]]; then
        poll_ms=20000
    else
        poll_ms=$CB_POLL_MS
        fake_flags+=(--no-callbacks)
    fi
    # Room for every task at once: a 1303 would hold tasks back locally and
    # the figure would include the wait for a slot.
    start_fake_kling --concurrency-limit $((CB_TASKS * 2)) --submitted-ms "$CB_SUBMITTED_MS" \
        --processing-ms "$CB_PROCESSING_MS" "${fake_flags[@]}"
    start_server "$PORT" "$WORK/server.log" "$GENGATE" serve --listen "127.0.0.1:$PORT" \
        --database-url "$DB_URL" --data-dir "$DATA_DIR" --no-bootstrap \
        --rate-create-per-min 100000000 --rate-read-per-min 100000000 \
        --kling-base-url "http://127.0.0.1:$FAKE_PORT/" --kling-access-key fake-access-key \
        --kling-secret-key fake-secret-key --kling-poll-ms "$poll_ms"
    out=$("${PIN_WRK[@]}" python3 "$BENCH/callback.py" --port "$PORT" --key "$key" \
        --fake "http://127.0.0.1:$FAKE_PORT/" --tasks "$CB_TASKS" --rate "$CB_RATE" \
        --wait "$LP_WAIT") || { echo "$out" >&2; fail_soft "callback/$db/$mode"; }
    local rss
    rss=$(peak_rss_mb)
    stop_server
    kill "$FAKE_PID" 2>/dev/null || true
    wait "$FAKE_PID" 2>/dev/null || true
    log "callback/$db/$mode: $out"
    local kv p50 p99
    kv() { echo "$out" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
    p50=$(kv lat_p50_ms)
    p99=$(kv lat_p99_ms)
    local audit="audit ok"
    gg credits audit >"$WORK/audit.out" 2>&1 || { cat "$WORK/audit.out" >&2; audit="AUDIT MISMATCH"; fail_soft "callback/$db/$mode: ledger audit"; }
    local what="callback (poll 20 s)"
    if [[ $mode == polling ]]; then what="callbacks lost, poll $((CB_POLL_MS / 1000)).$(((CB_POLL_MS % 1000) / 100)) s"; fi
    row "kling finished -> long poll sees succeeded: $what" "$db" "$CB_TASKS" - "${p50:-?}" "${p99:-?}" "$rss" \
        "p50/p99 = fake's succeed -> poll answered; peak in flight upstream $(kv peak_in_flight); succeeded $(kv succeeded) of $CB_TASKS, measured $(kv waited); max $(kv lat_max_ms) ms; creates at $CB_RATE/s; $audit"
}

# --- run ------------------------------------------------------------------------
START=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# GG_BENCH_ONLY="get create exhaust longpoll callback" picks scenarios (the baseline always runs).
ONLY="${GG_BENCH_ONLY:-get create exhaust longpoll callback}"
wanted() { [[ " $ONLY " == *" $1 "* ]]; }
scenario_baseline
for db in $DBS; do
    if wanted get; then scenario_get "$db"; fi
    if wanted create; then scenario_create "$db"; fi
    if wanted exhaust; then scenario_exhaust "$db"; fi
    if wanted longpoll; then scenario_longpoll "$db"; fi
    if wanted callback; then
        scenario_callback "$db" callbacks
        scenario_callback "$db" polling
    fi
done

mkdir -p "$BENCH/results"
if [[ $MODE == smoke ]]; then
    OUT="$BENCH/results/smoke-$(date -u +%Y-%m-%d-%H%M%S).md" # git-ignored
else
    OUT="$BENCH/results/$(date -u +%Y-%m-%d-%H%M%S).md"
fi
{
    echo "## gengate bench ($MODE, ${DUR}s per measurement) — $START"
    echo
    echo "Machine: $(nproc) CPU, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); server pinned to CPU 0, wrk (1 thread) to CPU 1."
    echo "Commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    if env | grep -q '^GENGATE_'; then echo "Server settings from the environment: $(env | grep '^GENGATE_' | sort | tr '\n' ' ')"; fi
    echo
    echo "| scenario | db | conns | req/s | p50 ms | p99 ms | ratio to baseline | peak RSS MB | notes |"
    echo "|---|---|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
log "written to $OUT"

if ((FAILURES > 0)); then
    log "$FAILURES check(s) failed"
    exit 1
fi
