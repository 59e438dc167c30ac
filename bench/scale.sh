#!/usr/bin/env bash
# Scaling out (issue 13): creates/s and status GETs/s through 1 and 2 api
# nodes on one PostgreSQL database, with budgets shared in Redis.
#
#   bench/scale.sh            release build, ~10 s per measurement
#   bench/scale.sh --smoke    debug build, ~1 s per measurement: proves the
#                             script works; its figures mean nothing
#
# Every run first measures the bare axum baseline (bench/baseline) and
# reports each figure as req/s and a ratio to it, like bench/run.sh.
# Rows: one api node without Redis (budgets in process), one api node with
# Redis (one EVALSHA per request), two api nodes with Redis (one wrk per node
# at the same time, figures summed). All nodes run `--role api` (no runner:
# tasks stay queued, so a create is auth + budget + the debit/insert
# transaction). Nothing is pinned: the nodes, wrk, PostgreSQL and Redis share
# the machine's cores, so on a small machine the two-node figure shows what
# splitting costs, not what a second machine would add (docs/BENCHMARKS.md).
#
# Environment: GG_BENCH_PG (default postgres://postgres@127.0.0.1:5432),
# GG_BENCH_DURATION (seconds), GG_BENCH_PROFILE (debug|release).
set -euo pipefail

MODE=release
if [[ "${1:-}" == "--smoke" ]]; then MODE=smoke; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
PG_BASE="${GG_BENCH_PG:-postgres://postgres@127.0.0.1:5432}"
if [[ $MODE == smoke ]]; then
    DUR="${GG_BENCH_DURATION:-1}"
    PROFILE=debug
else
    DUR="${GG_BENCH_DURATION:-10}"
    PROFILE=release
fi
PROFILE="${GG_BENCH_PROFILE:-$PROFILE}"
CONNS=64
BASE_PORT=18190
PORTS=(18181 18182)
REDIS_PORT=18179
export GENGATE_SIGNING_KEY="bench-scale-signing-key-0123456789abcdef"

# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_init scale scale

need_wrk
for tool in wrk psql redis-server curl; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done

log "building ($PROFILE)"
if [[ $PROFILE == release ]]; then
    (cd "$ROOT" && cargo build -q --release -p gengate-server -p gengate-bench-baseline)
else
    (cd "$ROOT" && cargo build -q -p gengate-server -p gengate-bench-baseline)
fi
GENGATE="$TARGET/$PROFILE/gengate"
BASELINE="$TARGET/$PROFILE/gengate-bench-baseline"

wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 1 200); do
        if curl -fsS -o /dev/null "http://127.0.0.1:$port/healthz" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || die "server on $port exited at start"
        sleep 0.05
    done
    die "server did not answer on port $port"
}

# wrk output → "REQS NON2XX SOCKERR"
parse_wrk() {
    awk '
        /^Requests\/sec:/ { rps = $2 }
        /Non-2xx or 3xx responses:/ { non2xx = $NF }
        /Socket errors:/ { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
        END { printf "%s %d %d\n", rps, non2xx, sockerr }
    '
}

ROWS=()
BASE_RPS=
row() {
    local ratio=-
    if [[ -n $BASE_RPS ]]; then ratio=$(awk -v a="$3" -v b="$BASE_RPS" 'BEGIN { printf "%.2f", a / b }'); fi
    ROWS+=("| $1 | $2 | $(printf '%.0f' "$3") | $ratio | $4 |")
    log "$1 $2: $3 req/s ratio $ratio $4"
}

# measure LUA PATH NODE_COUNT → summed req/s of one wrk per node, run at once
measure() {
    local lua=$1 path=$2 n=$3 i pids=() total=0 rps non2xx sockerr
    for ((i = 0; i < n; i++)); do
        wrk -t1 -c$((CONNS / n)) -d"${DUR}s" --timeout 10s ${lua:+-s "$lua"} \
            "http://127.0.0.1:${PORTS[$i]}$path" >"$WORK/wrk.$i" 2>&1 &
        pids+=($!)
    done
    for ((i = 0; i < n; i++)); do
        wait "${pids[$i]}" || { cat "$WORK/wrk.$i" >&2; die "wrk failed"; }
        read -r rps non2xx sockerr < <(parse_wrk <"$WORK/wrk.$i")
        ((non2xx == 0 && sockerr == 0)) || die "$path: $non2xx non-2xx, $sockerr socket errors"
        total=$(awk -v a="$total" -v b="$rps" 'BEGIN { print a + b }')
    done
    echo "$total"
}

# --- baseline -------------------------------------------------------------------
"$BASELINE" "127.0.0.1:$BASE_PORT" >"$WORK/baseline.log" 2>&1 &
PIDS+=($!)
wait_port "$BASE_PORT" "$!"
wrk -t1 -c$CONNS -d"${DUR}s" "http://127.0.0.1:$BASE_PORT/" >"$WORK/wrk.base" 2>&1 || die "baseline wrk"
read -r BASE_RPS _ _ < <(parse_wrk <"$WORK/wrk.base")
kill "${PIDS[-1]}"
row "baseline (bare axum GET)" - "$BASE_RPS" "same machine, same run"

# --- Redis and the database ---------------------------------------------------------
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break; sleep 0.05; done

# run_nodes COUNT REDIS(yes|no): a fresh database, COUNT api nodes on it;
# sets KEY and TASK.
run_nodes() {
    local count=$1 redis=$2 dir i flags=()
    new_pg_db
    dir="$WORK/data.${DB_URL##*/}"
    "$GENGATE" accounts create bench --credits 1000000000000 --database-url "$DB_URL" --data-dir "$dir" >/dev/null
    KEY=$("$GENGATE" keys create --account bench --name bench --rate-read-per-min 100000000 \
        --rate-create-per-min 100000000 --database-url "$DB_URL" --data-dir "$dir" | awk '/^secret:/ { print $2 }')
    [[ -n $KEY ]] || die "no key"
    if [[ $redis == yes ]]; then flags=(--redis-url "redis://127.0.0.1:$REDIS_PORT" --expected-nodes "$count"); fi
    NODE_PIDS=()
    for ((i = 0; i < count; i++)); do
        "$GENGATE" serve --role api --node-id "api-$i" --listen "127.0.0.1:${PORTS[$i]}" \
            --database-url "$DB_URL" --data-dir "$dir/n$i" --no-bootstrap --log-format json \
            --rate-create-per-min 100000000 --rate-read-per-min 100000000 "${flags[@]}" \
            >"$WORK/node$i.log" 2>&1 &
        NODE_PIDS+=($!)
        PIDS+=($!)
        wait_port "${PORTS[$i]}" "$!"
    done
    TASK=$(curl -fsS "http://127.0.0.1:${PORTS[0]}/api/v1/generations" -H "Authorization: Bearer $KEY" \
        -H 'Content-Type: application/json' \
        -d '{"model":"kling-3-0","prompt":"A lighthouse at dusk","params":{"duration":"5"}}' |
        sed -n 's/.*"id":"\([^"]*\)".*/\1/p')
    [[ -n $TASK ]] || die "could not create a task"
}

stop_nodes() {
    local pid
    for pid in "${NODE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
}

for setup in "1 no" "1 yes" "2 yes"; do
    read -r n redis <<<"$setup"
    label="$n api node(s), budgets $([[ $redis == yes ]] && echo "in Redis" || echo "in process")"
    run_nodes "$n" "$redis"
    export GG_KEY=$KEY
    rps=$(measure "$BENCH/get.lua" "/api/v1/generations/$TASK" "$n")
    row "GET /generations/{id}" "$label" "$rps" "c=$CONNS in total"
    rps=$(measure "$BENCH/post.lua" "/api/v1/generations" "$n")
    row "POST /generations" "$label" "$rps" "c=$CONNS in total; tasks stay queued"
    "$GENGATE" credits audit --database-url "$DB_URL" >/dev/null || die "ledger audit after $label"
    stop_nodes
done

mkdir -p "$BENCH/results"
if [[ $MODE == smoke ]]; then
    OUT="$BENCH/results/smoke-scale-$(date -u +%Y-%m-%d-%H%M%S).md"
else
    OUT="$BENCH/results/scale-$(date -u +%Y-%m-%d-%H%M%S).md"
fi
{
    echo "## gengate scale-out bench ($MODE, ${DUR}s per measurement) — $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo
    echo "Machine: $(nproc) CPU; nothing pinned (nodes, wrk, PostgreSQL and Redis share the cores)."
    echo "Commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
    echo "| scenario | setup | req/s | ratio to baseline | notes |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
} | tee "$OUT"
log "written to $OUT"
