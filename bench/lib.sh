# Shared by the bench scripts (run.sh, scale.sh, peer.sh, instructions.sh):
# logging, cleanup of what a run started, tools, fresh databases.
# Source it after setting PG_BASE (when PostgreSQL is used), then call
# bench_init TAG NAME.

# bench_init TAG NAME: log lines start with [TAG]; a work directory
# /tmp/gengate-NAME.XXXXXX; everything in PIDS is killed, every database in
# PG_DBS dropped and WORK removed when the script exits, however it exits.
bench_init() {
    BENCH_TAG=$1
    WORK=$(mktemp -d "/tmp/gengate-$2.XXXXXX")
    PIDS=()
    PG_DBS=()
    trap bench_cleanup EXIT
}

log() { echo "[$BENCH_TAG] $*" >&2; }

# A script may define bench_on_die to add its last words (a server's log).
die() {
    log "FAILED: $*"
    if declare -F bench_on_die >/dev/null; then bench_on_die; fi
    exit 1
}

bench_cleanup() {
    local pid db
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for db in "${PG_DBS[@]}"; do
        psql -q "$PG_BASE/postgres" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}

need_wrk() {
    command -v wrk >/dev/null && return 0
    log "installing wrk"
    apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; } ||
        die "could not install wrk"
}

# new_pg_db: creates a fresh PostgreSQL database gengate_TAG_<time>_<random>
# (dropped at exit) and sets DB_URL to it.
new_pg_db() {
    local name
    name="gengate_${BENCH_TAG}_$(date +%s)_$RANDOM"
    psql -q "$PG_BASE/postgres" -c "CREATE DATABASE $name" >/dev/null || die "createdb $name"
    PG_DBS+=("$name")
    DB_URL="$PG_BASE/$name"
}

# new_db sqlite|postgres: a fresh database and data directory; sets
# DB_URL and DATA_DIR.
new_db() {
    DATA_DIR=$(mktemp -d "$WORK/data.XXXXXX")
    if [[ $1 == sqlite ]]; then
        DB_URL="sqlite://$DATA_DIR/gengate.db"
    else
        new_pg_db
    fi
}

# gg ARGS...: the gengate operator CLI on the current database.
gg() { "$GENGATE" "$@" --database-url "$DB_URL" --data-dir "$DATA_DIR"; }
