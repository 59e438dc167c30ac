#!/usr/bin/env bash
# Schema conformance (issue 10, item 5): starts the real `gengate serve` on a
# fresh SQLite data dir and a free loopback port, runs schemathesis against
# its own /api/v1/openapi.json with the bootstrap key, and fails when the
# server does anything the document does not describe (a status, a content
# type, a body shape) or answers 5xx. Bounded: --max-examples per operation
# and --max-time for the whole run. See docs/HTTP.md.
#
#   .ci/schema-check.sh               uses target/debug/gengate (builds it)
#   GG_SCHEMATHESIS=/path/to/schemathesis GG_SCHEMA_MAX_TIME=60 .ci/schema-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

ST="${GG_SCHEMATHESIS:-schemathesis}"
MAX_EXAMPLES="${GG_SCHEMA_MAX_EXAMPLES:-30}"
MAX_TIME="${GG_SCHEMA_MAX_TIME:-120}"
SEED="${GG_SCHEMA_SEED:-10}"
command -v "$ST" >/dev/null || { echo "schema-check: $ST is not installed (pip install schemathesis)" >&2; exit 1; }

cargo build -q -p gengate-server --bin gengate
BIN="${CARGO_TARGET_DIR:-target}/debug/gengate"

WORK=$(mktemp -d /tmp/gengate-schema.XXXXXX)
PID=""
cleanup() {
    if [[ -n "$PID" ]]; then kill "$PID" 2>/dev/null || true; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Tasks stay queued (no runner) and time out after 2 s (the deadline sweeper
# fails and refunds them), so a long poll (`?wait=60`) the fuzzer sends ends
# within seconds instead of holding the run for a minute.
sed 's/"deadline_seconds": [0-9]*/"deadline_seconds": 2/' catalog/models.json >"$WORK/catalog.json"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# Budgets high enough that the run tests the API, not the rate limiter (429
# is documented and checked all the same); no runner: tasks stay queued.
GENGATE_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$WORK/data" \
    --bootstrap-credits 100000000 --no-runner --log-format text \
    --catalog "$WORK/catalog.json" --sweep-ms 200 \
    --rate-create-per-min 1000000 --rate-read-per-min 1000000 --rate-upload-per-min 1000000 \
    >"$WORK/server.log" 2>&1 &
PID=$!
ready() {
    python3 -c "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=2)" \
        "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1
}
for _ in $(seq 1 600); do
    if ready; then break; fi
    kill -0 "$PID" 2>/dev/null || { cat "$WORK/server.log" >&2; echo "schema-check: gengate did not start" >&2; exit 1; }
    sleep 0.1
done
ready || { cat "$WORK/server.log" >&2; echo "schema-check: gengate never became ready" >&2; exit 1; }
KEY=$(grep -o 'gg_live_[A-Za-z0-9_]*' "$WORK/server.log" | head -n1)
[[ -n "$KEY" ]] || { cat "$WORK/server.log" >&2; echo "schema-check: no bootstrap key in the start log" >&2; exit 1; }

set +e
"$ST" run "http://127.0.0.1:$PORT/api/v1/openapi.json" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    -H "Authorization: Bearer $KEY" \
    --max-examples "$MAX_EXAMPLES" --max-time "$MAX_TIME" --seed "$SEED" \
    --workers 1 --request-timeout 30 --no-color --suppress-health-check all \
    --report junit --report-dir "$WORK/report" >"$WORK/schemathesis.out" 2>&1
RC=$?
set -e
cat "$WORK/schemathesis.out"
if grep -q "panicked\|internal error" "$WORK/server.log"; then
    echo "--- server log (errors) ---"; grep -i "panicked\|internal error" "$WORK/server.log" | head -20
fi
# The closing "=== N passed, … in Ns ===" line.
SUMMARY=$(grep -E '^=+ .* in [0-9.]+s =+$' "$WORK/schemathesis.out" | tail -n1 | sed -E 's/^=+ //; s/ =+$//')
if [[ $RC -eq 0 ]]; then
    echo "SCHEMA CHECK PASSED: the server matches its OpenAPI document ($SUMMARY)"
else
    echo "SCHEMA CHECK FAILED (schemathesis exit $RC): the server does something its OpenAPI document does not describe ($SUMMARY)"
fi
exit $RC
