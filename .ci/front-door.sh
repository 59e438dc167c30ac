#!/usr/bin/env bash
# The front door, as a newcomer meets it: run the README's start command
# exactly as written (minus --release: the debug build is already there from
# the tests), wait for /healthz, then do what the banner says — its curl
# submit and long-poll until done, and its one-line CLI command — and insist
# both end in a real MP4. If the README's command or the banner drifts, CI
# goes red here.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

start_cmd=$(awk '/^## The two commands/{f=1} f && /^cargo run .*serve$/{print; exit}' README.md)
test_cmd=$(awk '/^## The two commands/{f=1} f && /^cargo test/{print; exit}' README.md)
[[ -n "$start_cmd" ]] || { echo "front door: README has no 'cargo run … serve' under 'The two commands'" >&2; exit 1; }
[[ "$test_cmd" == "cargo test --workspace" ]] || { echo "front door: README's test command is '$test_cmd', .ci/run runs 'cargo test --workspace'" >&2; exit 1; }
start_cmd=${start_cmd/ --release/}

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
export GENGATE_DATA_DIR="$work/data" GENGATE_LISTEN="127.0.0.1:$port"
echo "front door: $start_cmd  (GENGATE_LISTEN=$GENGATE_LISTEN, GENGATE_DATA_DIR=$GENGATE_DATA_DIR)"
# setsid: its own process group, so the cleanup stops cargo and the server.
setsid bash -c "$start_cmd" >"$work/stdout" 2>"$work/stderr" &
pid=$!
cleanup() { kill -- -"$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap cleanup EXIT
fail() {
  echo "front door: $*" >&2
  echo "--- server stdout"; cat "$work/stdout"; echo "--- server stderr (tail)"; tail -n 40 "$work/stderr"
  exit 1
}

base="http://127.0.0.1:$port"
for _ in $(seq 1 600); do
  curl -fsS "$base/healthz" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "the start command exited"
  sleep 1
done
curl -fsS "$base/healthz" >/dev/null || fail "/healthz did not answer within 10 minutes"
# The banner is printed right after the listener is up.
for _ in $(seq 1 50); do grep -q "generations/TASK_ID" "$work/stdout" && break; sleep 0.2; done

key=$(grep -Eo 'gg_(live|test)_[A-Za-z0-9_]+' "$work/stdout" | head -n1)
[[ -n "$key" ]] || fail "the banner printed no API key"

# 1. The banner's curl submit, run as printed.
submit=$(awk '/^curl -sS .*\/api\/v1\/generations \\$/{f=1} f{print} f && !/\\$/{exit}' "$work/stdout")
[[ -n "$submit" ]] || fail "the banner printed no curl submit"
answer=$(cd "$work" && bash -c "$submit")
task=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$answer") || fail "submit answered: $answer"
wait_line=$(grep -E "^curl -sS '.*/generations/TASK_ID\?wait=60'" "$work/stdout") || fail "the banner printed no wait command"
wait_line=${wait_line//TASK_ID/$task}
status=""
for _ in $(seq 1 40); do
  task_json=$(bash -c "$wait_line")
  status=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$task_json")
  [[ $status == succeeded || $status == failed ]] && break
done
[[ $status == succeeded ]] || fail "the banner's generation ended '$status': $task_json"
url=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["result"]["primary_url"])' "$task_json")
curl -fsS -o "$work/curl.mp4" "$url" || fail "could not download $url"
head -c 12 "$work/curl.mp4" | grep -q ftyp || fail "the curl download is not an MP4"
echo "front door: banner curl → $task succeeded, $(stat -c %s "$work/curl.mp4") byte MP4"

# 2. The banner's one-line CLI command, run as printed (from the repo root,
# where its ./target/… path is valid).
cli=$(awk '/^ *GENGATE_URL=.* \\$/{f=1} f{print} f && !/\\$/{exit}' "$work/stdout")
[[ -n "$cli" ]] || fail "the banner printed no CLI command"
out=$(grep -Eo -- '--out [^ ]+' <<<"$cli" | awk '{print $2}')
(cd "$ROOT" && bash -c "$cli" </dev/null) || fail "the banner's CLI command failed: $cli"
[[ -s "$ROOT/$out" ]] || fail "the CLI wrote no $out"
head -c 12 "$ROOT/$out" | grep -q ftyp || fail "the CLI's $out is not an MP4"
echo "front door: banner CLI → $(stat -c %s "$ROOT/$out") byte MP4"
rm -f "$ROOT/$out"
echo "front door: ok"
