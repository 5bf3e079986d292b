# shellcheck shell=bash
# CI provisioning, sourced by .ci/run (as root, on a fresh Debian 12 machine):
#   1. installs the Debian packages the tests need (postgresql, chromium, chromium-driver), only those missing;
#   2. starts a throwaway PostgreSQL server on 127.0.0.1 in a temporary data directory (not the system cluster),
#      with role `armscan` and database `armscan_test`, and stops it when the sourcing shell exits;
#   3. exports ARMSCAN_TEST_POSTGRES_URL, ARMSCAN_REQUIRE_POSTGRES=1 and ARMSCAN_REQUIRE_E2E=1.
#
#     source .ci/provision.sh          # from .ci/run; or by hand: bash -c 'source .ci/provision.sh && make test'
#
# Idempotent: sourcing it again in the same shell reuses the running server; each new shell gets its own.
# ARMSCAN_PG_PORT chooses the first port tried (default 54329; the next free one up to +20 is taken).
# Relies on the caller's `set -euo pipefail`; installs an EXIT trap (and turns INT/TERM into exits so it runs).

_ci_log() { echo "[provision] $*"; }

_ci_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

_ci_apt_install() {
    local missing=() pkg
    for pkg in "$@"; do _ci_installed "$pkg" || missing+=("$pkg"); done
    if [ "${#missing[@]}" -eq 0 ]; then
        _ci_log "apt: already installed: $*"
        return 0
    fi
    _ci_log "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

_ci_port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

_ci_pg_stop() {
    if [ -n "${_CI_PG_DIR:-}" ] && [ -d "$_CI_PG_DIR" ]; then
        _ci_log "postgres: stopping server on port ${_CI_PG_PORT}"
        (cd / && runuser -u postgres -- "$_CI_PG_BIN/pg_ctl" -D "$_CI_PG_DIR/data" -m fast -w stop >/dev/null 2>&1) || true
        rm -rf "$_CI_PG_DIR"
    fi
    _CI_PG_DIR=""
}

_ci_pg_start() {
    if [ -n "${_CI_PG_DIR:-}" ] && (cd / && runuser -u postgres -- "$_CI_PG_BIN/pg_ctl" -D "$_CI_PG_DIR/data" status >/dev/null 2>&1); then
        _ci_log "postgres: reusing the server on port ${_CI_PG_PORT}"
        return 0
    fi
    local initdb
    initdb=$(find /usr/lib/postgresql -path '*/bin/initdb' 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$initdb" ]; then
        echo "[provision] postgres: no /usr/lib/postgresql/*/bin/initdb although postgresql is installed" >&2
        return 1
    fi
    _CI_PG_BIN=$(dirname "$initdb")

    local port=${ARMSCAN_PG_PORT:-54329} last
    last=$((port + 20))
    while ! _ci_port_free "$port"; do
        port=$((port + 1))
        if [ "$port" -gt "$last" ]; then
            echo "[provision] postgres: no free port in ${ARMSCAN_PG_PORT:-54329}..$last on 127.0.0.1" >&2
            return 1
        fi
    done
    _CI_PG_PORT=$port

    # The server refuses to run as root: the postgres user owns the data dir and the socket dir.
    _CI_PG_DIR=$(mktemp -d /tmp/armscan-ci-pg.XXXXXX)
    trap _ci_pg_stop EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    chown postgres: "$_CI_PG_DIR"
    chmod 700 "$_CI_PG_DIR"
    _CI_PG_PASSWORD=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')

    _ci_log "postgres: initdb $(basename "$(dirname "$_CI_PG_BIN")") in $_CI_PG_DIR, port $port"
    # Unix socket: trust (only the postgres user can reach the socket dir); TCP: password (scram) only.
    (cd / && runuser -u postgres -- "$initdb" -D "$_CI_PG_DIR/data" -U postgres -E UTF8 --no-locale \
        --auth-local=trust --auth-host=scram-sha-256 >"$_CI_PG_DIR/initdb.log" 2>&1) \
        || { cat "$_CI_PG_DIR/initdb.log" >&2; return 1; }
    (cd / && runuser -u postgres -- "$_CI_PG_BIN/pg_ctl" -D "$_CI_PG_DIR/data" -l "$_CI_PG_DIR/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $_CI_PG_DIR -c fsync=off -c full_page_writes=off" start >/dev/null) \
        || { cat "$_CI_PG_DIR/server.log" >&2; return 1; }

    local i
    for i in $(seq 1 60); do
        "$_CI_PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" && break
        [ "$i" -eq 60 ] && { echo "[provision] postgres: not accepting connections after 30 s" >&2; cat "$_CI_PG_DIR/server.log" >&2; return 1; }
        sleep 0.5
    done
    # psql -v with :'pw' quotes the password as an SQL literal.
    (cd / && runuser -u postgres -- "$_CI_PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$_CI_PG_DIR" -p "$port" -d postgres \
        -v pw="$_CI_PG_PASSWORD" >/dev/null) <<'SQL'
CREATE ROLE armscan LOGIN PASSWORD :'pw';
CREATE DATABASE armscan_test OWNER armscan;
SQL
    _ci_log "postgres: ready, role armscan, database armscan_test"
}

_ci_log "start ($(. /etc/os-release && echo "$PRETTY_NAME"), user $(id -un))"
_ci_apt_install postgresql chromium chromium-driver
_ci_log "chromium: $(chromium --version 2>/dev/null || echo '?'), driver: $(chromedriver --version 2>/dev/null | cut -d' ' -f1-2 || echo '?')"
_ci_pg_start

export ARMSCAN_TEST_POSTGRES_URL="postgresql+psycopg://armscan:${_CI_PG_PASSWORD}@127.0.0.1:${_CI_PG_PORT}/armscan_test"
export ARMSCAN_REQUIRE_POSTGRES=1
export ARMSCAN_REQUIRE_E2E=1
_ci_log "exported ARMSCAN_TEST_POSTGRES_URL (127.0.0.1:${_CI_PG_PORT}), ARMSCAN_REQUIRE_POSTGRES=1, ARMSCAN_REQUIRE_E2E=1"
