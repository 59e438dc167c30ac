#!/usr/bin/env bash
# The peer comparison of issue 16: LiteLLM's proxy, which serves an
# OpenAI-style /v1/videos API and forwards it to a provider, side by side with
# gengate, in the same run, on the same pinning and connection counts as
# bench/run.sh. Not part of CI or of `run.sh --smoke`: it installs LiteLLM from
# PyPI (a pinned version, in its own venv under /tmp) and takes ~6 minutes.
#
#   bench/peer.sh                       release build, 10 s per measurement
#   GG_PEER_DURATION=2 bench/peer.sh    shorter, to check the script
#
# Targets, each measured for creates (1, 64, 256 connections) and status reads
# (1, 64 connections):
#   fake-openai   bench/openai_fake.py hit directly (LiteLLM's upstream; shows
#                 the fake is not LiteLLM's bottleneck)
#   litellm       LiteLLM proxy -> fake-openai; master-key auth, no database
#   fake-kling    `gengate dev fake-kling` hit directly (gengate's upstream)
#   gengate       gengate -> fake-kling, as in production: API key auth, rate
#                 limit, debit + ledger in one transaction, SQLite, runner on
# plus the bare axum baseline (bench/baseline) for the ratios.
#
# The server under test runs pinned to CPU 0; wrk (one thread) to CPU 1, and
# an upstream fake, when it is not the one under test, runs on CPU 1 with wrk
# (as run.sh does with the fake Kling): the gateway's core is the measured one.
#
# Environment: GG_PEER_DURATION (seconds, default 10), GG_PEER_LITELLM
# (version, default below), GG_PEER_VENV (default /tmp/gengate-peer-litellm-<v>).
# Exits non-zero when anything fails: an install, a server that does not
# start, wrk errors, non-2xx answers, a ledger mismatch, or a fake that is not
# at least twice as fast as the gateway in front of it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
DUR="${GG_PEER_DURATION:-10}"
# Pinned: litellm 1.110.x's `[proxy]` extra needs a `litellm-proxy` package of
# the same version that PyPI does not have (the install fails); 1.81.0 carries
# the proxy in the one package and has the /v1/videos routes.
LITELLM_VERSION="${GG_PEER_LITELLM:-1.81.0}"
VENV="${GG_PEER_VENV:-/tmp/gengate-peer-litellm-$LITELLM_VERSION}"
BASE_PORT=18090
GG_PORT=18080
KLING_PORT=18094
OAI_PORT=18095
LL_PORT=18096
OAI_KEY=sk-fake-openai
LL_MASTER=sk-bench-litellm-master
KLING_AK=fake-access-key
KLING_SK=fake-secret-key

# shellcheck source=bench/lib.sh
source "$BENCH/lib.sh"
bench_init peer peer

FAILURES=0
fail_soft() {
    log "FAILED: $*"
    FAILURES=$((FAILURES + 1))
}

# --- tools, binaries, LiteLLM -------------------------------------------------
need_wrk
command -v taskset >/dev/null || die "taskset (util-linux) is missing"
command -v python3 >/dev/null || die "python3 is missing"
command -v sqlite3 >/dev/null || die "sqlite3 is missing (counting gengate's tasks)"
ulimit -n 65536 2>/dev/null || true
(($(nproc) >= 2)) || die "needs 2 CPUs: the server under test and the client must not share one"
PIN_SERVER=(taskset -c 0)
PIN_CLIENT=(taskset -c 1)

if ! "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('litellm') != '$LITELLM_VERSION')" 2>/dev/null; then
    log "installing litellm[proxy]==$LITELLM_VERSION into $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV"
    "$VENV/bin/pip" install -q "litellm[proxy]==$LITELLM_VERSION" || die "pip install litellm[proxy]==$LITELLM_VERSION"
fi
"$VENV/bin/python" - <<'EOF' || die "this LiteLLM has no /v1/videos routes"
import litellm.proxy.video_endpoints.endpoints as e
paths = {r.path for r in e.router.routes}
assert {"/v1/videos", "/v1/videos/{video_id}"} <= paths, paths
EOF

log "building (release)"
(cd "$ROOT" && cargo build -q --release -p gengate-server -p gengate-bench-baseline)
GENGATE="$TARGET/release/gengate"
BASELINE="$TARGET/release/gengate-bench-baseline"

# --- helpers (as in run.sh) ------------------------------------------------------
# start PIN NAME URL CMD...: starts CMD with the given pinning (server|client),
# waits until URL answers 2xx; sets LAST_PID.
start() {
    local pin=$1 name=$2 url=$3
    shift 3
    local pinning=("${PIN_SERVER[@]}")
    [[ $pin == client ]] && pinning=("${PIN_CLIENT[@]}")
    "${pinning[@]}" "$@" >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
    local i
    # LiteLLM takes ~10 s to import and start, hence the long wait.
    for i in $(seq 1 1200); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        kill -0 "$LAST_PID" 2>/dev/null || { tail -30 "$WORK/$name.log" >&2; die "$name exited at start"; }
        sleep 0.05
    done
    tail -30 "$WORK/$name.log" >&2
    die "$name did not answer at $url"
}
stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

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
        /Socket errors:/ { gsub(/,/, ""); sockerr = $4 + $6 + $8 + $10 }
        END { printf "%s %.3f %.3f %d %d\n", rps, p50, p99, non2xx, sockerr }
    '
}

# settle PID: waits (up to 60 s) until PID uses under 5 % of a core over
# half a second. Why: after wrk stops, a slow server still has the queued
# requests of 256 connections and (LiteLLM) its after-response logging tasks
# to work off; measuring the next figure before that is done measured the
# backlog (a 1-connection GET through LiteLLM read 300 ms instead of 4 ms).
settle() {
    local pid=$1 i a b hz
    hz=$(getconf CLK_TCK)
    for i in $(seq 1 120); do
        a=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") || die "settle: $pid is gone"
        sleep 0.5
        b=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") || die "settle: $pid is gone"
        if (((b - a) * 100 < 5 * hz / 2)); then return 0; fi
    done
    die "settle: $pid still busy after 60 s"
}

ROWS=()
BASE_RPS=
declare -A RPS P50 P99
# measure KEY CONNS LUA URL NOTES: once the server under test (UNDER_TEST,
# a pid) is idle, runs wrk pinned to CPU 1, checks it, adds a row and keeps
# req/s, p50 and p99 under "KEY.c<CONNS>" for the summary.
measure() {
    local key=$1 conns=$2 lua=$3 url=$4 notes=$5
    settle "$UNDER_TEST"
    local args=(-t1 -c"$conns" -d"${DUR}s" --timeout 10s --latency)
    [[ -n $lua ]] && args+=(-s "$lua")
    "${PIN_CLIENT[@]}" wrk "${args[@]}" "$url" >"$WORK/wrk.out" 2>&1 || { cat "$WORK/wrk.out" >&2; die "wrk failed: $url"; }
    local rps p50 p99 non2xx sockerr ratio="-"
    read -r rps p50 p99 non2xx sockerr < <(parse_wrk <"$WORK/wrk.out")
    [[ -n $rps ]] || { cat "$WORK/wrk.out" >&2; die "$key c=$conns: no figures from wrk"; }
    ((non2xx == 0 && sockerr == 0)) || { cat "$WORK/wrk.out" >&2; fail_soft "$key c=$conns: $non2xx non-2xx, $sockerr socket errors"; }
    [[ -n $BASE_RPS ]] && ratio=$(awk -v a="$rps" -v b="$BASE_RPS" 'BEGIN { printf "%.3f", a / b }')
    RPS[$key.c$conns]=$rps
    P50[$key.c$conns]=$p50
    P99[$key.c$conns]=$p99
    ROWS+=("| $key | $conns | $(printf '%.0f' "$rps") | $p50 | $p99 | $ratio | $notes |")
    log "$key c=$conns: $rps req/s p50 $p50 ms p99 $p99 ms ratio $ratio"
}

# A Kling JWT (HS256, iss = access key, nbf 5 s back, exp in 2 h), as gengate
# signs them, for hitting the fake Kling directly; stdlib only.
kling_jwt() {
    python3 - "$KLING_AK" "$KLING_SK" <<'EOF'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
now = int(time.time())
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
claims = b64(json.dumps({"iss": sys.argv[1], "exp": now + 7200, "nbf": now - 5}).encode())
sig = b64(hmac.new(sys.argv[2].encode(), f"{head}.{claims}".encode(), hashlib.sha256).digest())
print(f"{head}.{claims}.{sig}")
EOF
}

jq_id() { python3 -c 'import json, sys; d = json.load(sys.stdin); print(d.get("id") or d["data"]["task_id"])'; }

# --- what each side is sent -------------------------------------------------------
OAI_BODY='{"model":"sora-2","prompt":"A lighthouse at dusk, slow dolly in","seconds":"4","size":"720x1280"}'
KLING_BODY='{"model_name":"kling-v3","mode":"std","duration":"5","sound":"off","aspect_ratio":"16:9","prompt":"A lighthouse at dusk, slow dolly in"}'
GG_BODY='{"model":"kling-3-0","prompt":"A lighthouse at dusk, slow dolly in","params":{"duration":"5"}}'
# Upstream tasks stay in flight for the whole run (10 min), so every status
# read is of a task that is not ended: gengate reads it from the store (the
# ended-task cache does not apply) and the fakes answer "queued"/"in progress".
FAKE_LIFE_MS=600000

# fake_openai PIN: starts bench/openai_fake.py; sets OAI_PID.
fake_openai() {
    start "$1" fake-openai "http://127.0.0.1:$OAI_PORT/healthz" python3 "$BENCH/openai_fake.py" \
        --listen "127.0.0.1:$OAI_PORT" --api-key "$OAI_KEY" --total-ms "$FAKE_LIFE_MS"
    OAI_PID=$LAST_PID
}
# fake_kling PIN: starts the fake Kling with room for every task at once (a
# 1303 would make gengate's runner hold tasks back and retry); sets KLING_PID.
fake_kling() {
    start "$1" fake-kling "http://127.0.0.1:$KLING_PORT/fake/completions" "$GENGATE" dev fake-kling \
        --listen "127.0.0.1:$KLING_PORT" --access-key "$KLING_AK" --secret-key "$KLING_SK" \
        --concurrency-limit 10000000 --submitted-ms 1000 --processing-ms "$FAKE_LIFE_MS"
    KLING_PID=$LAST_PID
}

START=$(date -u +%Y-%m-%dT%H:%M:%SZ)

# --- baseline --------------------------------------------------------------------
start server baseline "http://127.0.0.1:$BASE_PORT/" "$BASELINE" "127.0.0.1:$BASE_PORT"
UNDER_TEST=$LAST_PID
measure baseline 64 "" "http://127.0.0.1:$BASE_PORT/" "bare axum GET, JSON body"
BASE_RPS=${RPS[baseline.c64]}
stop "$LAST_PID"

# --- fake OpenAI, directly (on CPU 0: it is the server under test here) ----------
for c in 1 64 256; do
    fake_openai server
    UNDER_TEST=$OAI_PID
    GG_KEY=$OAI_KEY PEER_BODY=$OAI_BODY measure "fake-openai POST /v1/videos" "$c" "$BENCH/peer_post.lua" \
        "http://127.0.0.1:$OAI_PORT/v1/videos" "stdlib asyncio; stores the video in a dict"
    stop "$OAI_PID"
done
fake_openai server
UNDER_TEST=$OAI_PID
id=$(curl -fsS "http://127.0.0.1:$OAI_PORT/v1/videos" -H "Authorization: Bearer $OAI_KEY" \
    -H 'Content-Type: application/json' -d "$OAI_BODY" | jq_id) || die "fake-openai: create"
for c in 1 64; do
    GG_KEY=$OAI_KEY measure "fake-openai GET /v1/videos/{id}" "$c" "$BENCH/get.lua" \
        "http://127.0.0.1:$OAI_PORT/v1/videos/$id" "dict lookup"
done
stop "$OAI_PID"

# --- LiteLLM -> fake OpenAI ------------------------------------------------------
# One uvicorn worker on CPU 0 (gengate, too, gets one core). Master-key auth and
# no database: without DATABASE_URL there are no virtual keys, no spend rows, no
# budgets; the key is checked against the master key. The model cost map is the
# one in the package (LITELLM_LOCAL_MODEL_COST_MAP), so nothing is fetched at start.
cat >"$WORK/litellm.yaml" <<EOF
model_list:
  - model_name: sora-2
    litellm_params:
      model: openai/sora-2
      api_base: http://127.0.0.1:$OAI_PORT/v1
      api_key: $OAI_KEY
general_settings:
  master_key: $LL_MASTER
litellm_settings:
  telemetry: false
EOF
fake_openai client
unset DATABASE_URL
export LITELLM_LOCAL_MODEL_COST_MAP=True
start server litellm "http://127.0.0.1:$LL_PORT/health/liveliness" "$VENV/bin/litellm" \
    --config "$WORK/litellm.yaml" --host 127.0.0.1 --port "$LL_PORT" --num_workers 1
LL_PID=$LAST_PID
UNDER_TEST=$LL_PID
# Proof it forwards: the id LiteLLM answers wraps the fake's id, and a retrieve
# through LiteLLM answers what the fake has.
ll_id=$(curl -fsS "http://127.0.0.1:$LL_PORT/v1/videos" -H "Authorization: Bearer $LL_MASTER" \
    -H 'Content-Type: application/json' -d "$OAI_BODY" | jq_id) || { tail -30 "$WORK/litellm.log" >&2; die "litellm: create"; }
inner=$(python3 -c 'import base64, sys; print(base64.b64decode(sys.argv[1][len("video_"):]).decode())' "$ll_id")
log "litellm id $ll_id = $inner"
fake_vid=${inner##*video_id:}
curl -fsS "http://127.0.0.1:$OAI_PORT/v1/videos/$fake_vid" -H "Authorization: Bearer $OAI_KEY" >/dev/null ||
    die "litellm: the fake does not know the video LiteLLM created ($fake_vid)"
curl -fsS "http://127.0.0.1:$LL_PORT/v1/videos/$ll_id" -H "Authorization: Bearer $LL_MASTER" >/dev/null ||
    die "litellm: retrieve"
code=$(curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$LL_PORT/v1/videos/$ll_id" -H "Authorization: Bearer wrong")
[[ $code == 4* ]] || die "litellm: a wrong key got $code"
for c in 1 64 256; do
    GG_KEY=$LL_MASTER PEER_BODY=$OAI_BODY measure "litellm POST /v1/videos" "$c" "$BENCH/peer_post.lua" \
        "http://127.0.0.1:$LL_PORT/v1/videos" "master key; forwards the create to the fake, waits for it"
done
for c in 1 64; do
    GG_KEY=$LL_MASTER measure "litellm GET /v1/videos/{id}" "$c" "$BENCH/get.lua" \
        "http://127.0.0.1:$LL_PORT/v1/videos/$ll_id" "master key; forwards the retrieve to the fake"
done
LL_RSS=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$LL_PID/status" 2>/dev/null || echo "?")
stop "$LL_PID"
stop "$OAI_PID"

# --- fake Kling, directly -----------------------------------------------------------
JWT=$(kling_jwt)
for c in 1 64 256; do
    fake_kling server
    UNDER_TEST=$KLING_PID
    GG_KEY=$JWT PEER_BODY=$KLING_BODY measure "fake-kling POST /v1/videos/text2video" "$c" "$BENCH/peer_post.lua" \
        "http://127.0.0.1:$KLING_PORT/v1/videos/text2video" "JWT check, strict validation, task in memory"
    stop "$KLING_PID"
done
fake_kling server
UNDER_TEST=$KLING_PID
kid=$(curl -fsS "http://127.0.0.1:$KLING_PORT/v1/videos/text2video" -H "Authorization: Bearer $JWT" \
    -H 'Content-Type: application/json' -d "$KLING_BODY" | jq_id) || die "fake-kling: create"
for c in 1 64; do
    GG_KEY=$JWT measure "fake-kling GET /v1/videos/text2video/{id}" "$c" "$BENCH/get.lua" \
        "http://127.0.0.1:$KLING_PORT/v1/videos/text2video/$kid" "JWT check, task from memory"
done
stop "$KLING_PID"

# --- gengate -> fake Kling, as in production ------------------------------------
# new_gengate: a fresh SQLite database, an account and a key with high (but
# enforced) rate limits, the fake Kling on CPU 1, gengate on CPU 0 with the
# runner on (it submits each task to the fake after the create has answered).
new_gengate() {
    DATA_DIR=$(mktemp -d "$WORK/data.XXXXXX")
    DB_URL="sqlite://$DATA_DIR/gengate.db"
    gg accounts create bench --credits 1000000000000 >/dev/null
    GG_KEY_SECRET=$(gg keys create --account bench --name bench --rate-read-per-min 100000000 \
        --rate-create-per-min 100000000 | awk '/^secret:/ { print $2 }')
    [[ -n $GG_KEY_SECRET ]] || die "gengate: no key"
    fake_kling client
    start server gengate "http://127.0.0.1:$GG_PORT/healthz" "$GENGATE" serve --listen "127.0.0.1:$GG_PORT" \
        --database-url "$DB_URL" --data-dir "$DATA_DIR" --no-bootstrap \
        --rate-create-per-min 100000000 --rate-read-per-min 100000000 \
        --kling-base-url "http://127.0.0.1:$KLING_PORT/" --kling-access-key "$KLING_AK" \
        --kling-secret-key "$KLING_SK"
    GG_PID=$LAST_PID
    UNDER_TEST=$GG_PID
}
gg() { "$GENGATE" "$@" --database-url "$DB_URL" --data-dir "$DATA_DIR"; }
# upstream_count: tasks the fake Kling has received from gengate's runner.
upstream_count() {
    curl -fsS "http://127.0.0.1:$KLING_PORT/fake/completions" |
        python3 -c 'import json, sys; print(len(json.load(sys.stdin)["tasks"]))'
}
end_gengate() {
    stop "$GG_PID"
    stop "$KLING_PID"
    gg credits audit >"$WORK/audit.out" 2>&1 || { cat "$WORK/audit.out" >&2; fail_soft "gengate: ledger audit"; }
}

GG_CREATED=()
for c in 1 64 256; do
    new_gengate
    GG_KEY=$GG_KEY_SECRET PEER_BODY=$GG_BODY measure "gengate POST /api/v1/generations" "$c" "$BENCH/peer_post.lua" \
        "http://127.0.0.1:$GG_PORT/api/v1/generations" "key auth, rate limit, debit + ledger + task + job in one transaction; no upstream call"
    # gengate answers a create before anything goes upstream; LiteLLM answers
    # after the upstream has. So also measure when gengate's runner has
    # submitted every task of the window to the fake: creates per second
    # counted to that point are the figure comparable with LiteLLM's.
    local_n=$(sqlite3 "$DATA_DIR/gengate.db" 'SELECT count(*) FROM tasks') || die "gengate: count tasks"
    at_end=$(upstream_count)
    t0=$(date +%s.%N)
    for _ in $(seq 1 600); do
        up=$(upstream_count)
        ((up >= local_n)) && break
        sleep 0.5
    done
    ((up >= local_n)) || fail_soft "gengate c=$c: only $up of $local_n tasks submitted upstream 300 s after the window"
    drain=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    e2e=$(awk -v n="$local_n" -v d="$DUR" -v w="$drain" 'BEGIN { printf "%.0f", n / (d + w) }')
    GG_CREATED+=("| $c | $local_n | $at_end | $drain | $e2e |")
    log "gengate c=$c: $local_n tasks, $at_end upstream at the window's end, all upstream $drain s later: $e2e tasks/s end to end"
    end_gengate
done
new_gengate
gid=$(curl -fsS "http://127.0.0.1:$GG_PORT/api/v1/generations" -H "Authorization: Bearer $GG_KEY_SECRET" \
    -H 'Content-Type: application/json' -d "$GG_BODY" | jq_id) || die "gengate: create"
for c in 1 64; do
    GG_KEY=$GG_KEY_SECRET measure "gengate GET /api/v1/generations/{id}" "$c" "$BENCH/get.lua" \
        "http://127.0.0.1:$GG_PORT/api/v1/generations/$gid" "key auth, rate limit, store read (task in flight); no upstream call"
done
gstatus=$(curl -fsS "http://127.0.0.1:$GG_PORT/api/v1/generations/$gid" -H "Authorization: Bearer $GG_KEY_SECRET" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["status"])')
[[ $gstatus == queued || $gstatus == processing ]] || fail_soft "gengate: the read task was $gstatus, not in flight"
GG_RSS=$(awk '/^VmHWM:/ { printf "%.0f", $2 / 1024 }' "/proc/$GG_PID/status" 2>/dev/null || echo "?")
end_gengate

# --- the fakes must not be what limits the gateways -----------------------------
for op in "POST" "GET"; do
    for c in 64; do
        case $op in
            POST) f="fake-openai POST /v1/videos" g="litellm POST /v1/videos" ;;
            GET) f="fake-openai GET /v1/videos/{id}" g="litellm GET /v1/videos/{id}" ;;
        esac
        awk -v f="${RPS[$f.c$c]}" -v g="${RPS[$g.c$c]}" 'BEGIN { exit !(f >= 2 * g) }' ||
            fail_soft "$f c=$c (${RPS[$f.c$c]}/s) is not twice $g (${RPS[$g.c$c]}/s): the fake may be the bottleneck"
    done
done

# --- latency added over the upstream, one connection (no queueing) -------------
added() { awk -v a="${P50[$1.c1]}" -v b="${P50[$2.c1]}" 'BEGIN { printf "%.3f", a - b }'; }
SUMMARY=(
    "| LiteLLM create | ${P50[litellm POST /v1/videos.c1]} | ${P50[fake-openai POST /v1/videos.c1]} | $(added "litellm POST /v1/videos" "fake-openai POST /v1/videos") | forwards to the fake in the request |"
    "| LiteLLM retrieve | ${P50[litellm GET /v1/videos/{id}.c1]} | ${P50[fake-openai GET /v1/videos/{id}.c1]} | $(added "litellm GET /v1/videos/{id}" "fake-openai GET /v1/videos/{id}") | forwards to the fake in the request |"
    "| gengate create | ${P50[gengate POST /api/v1/generations.c1]} | ${P50[fake-kling POST /v1/videos/text2video.c1]} | ${P50[gengate POST /api/v1/generations.c1]} (all its own) | no upstream call in the request: the runner submits afterwards |"
    "| gengate status read | ${P50[gengate GET /api/v1/generations/{id}.c1]} | ${P50[fake-kling GET /v1/videos/text2video/{id}.c1]} | ${P50[gengate GET /api/v1/generations/{id}.c1]} (all its own) | served from its store; upstream is polled or calls back, not per read |"
)

OUT="$BENCH/results/peer-$(date -u +%Y-%m-%d-%H%M%S).md"
mkdir -p "$BENCH/results"
{
    echo "## gengate vs LiteLLM proxy (bench/peer.sh, release, ${DUR}s per measurement) — $START"
    echo
    echo "Machine: $(nproc) CPU, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo); server under test pinned to CPU 0, wrk (1 thread) and the gateway's upstream fake to CPU 1."
    echo "Commit: $(cd "$ROOT" && git rev-parse --short HEAD 2>/dev/null || echo '?'); LiteLLM $LITELLM_VERSION (one uvicorn worker, master key, no database), Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())')."
    echo
    echo "| target | conns | req/s | p50 ms | p99 ms | ratio to baseline | what it does per request |"
    echo "|---|---|---|---|---|---|---|"
    printf '%s\n' "${ROWS[@]}"
    echo
    echo "Latency added over the upstream (p50 at 1 connection, ms):"
    echo
    echo "| path | gateway p50 | its upstream fake, direct, p50 | added | note |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${SUMMARY[@]}"
    echo
    echo "gengate's creates counted until the runner had submitted them all to the fake Kling (runner defaults: --kling-concurrency 16):"
    echo
    echo "| conns | tasks created in the window | upstream at the window's end | then all upstream after s | tasks/s, window + that |"
    echo "|---|---|---|---|---|"
    printf '%s\n' "${GG_CREATED[@]}"
    echo
    echo "Peak RSS: LiteLLM $LL_RSS MB, gengate (status-read run) $GG_RSS MB."
} | tee "$OUT"
log "written to $OUT"

if ((FAILURES > 0)); then
    log "$FAILURES check(s) failed"
    exit 1
fi
