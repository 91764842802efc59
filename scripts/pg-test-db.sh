#!/usr/bin/env bash
# A throw-away database on the local PostgreSQL (127.0.0.1:5432, user
# postgres, trust auth) for the PostgreSQL tests.
#
#   scripts/pg-test-db.sh create       starts the cluster if it is down, creates
#                                      a fresh database, prints its URL
#   scripts/pg-test-db.sh drop URL     drops a database this script created
#
# Typical use:
#   export DATABASE_URL="$(scripts/pg-test-db.sh create)"
#   cargo test --all-features
#   scripts/pg-test-db.sh drop "$DATABASE_URL"
set -euo pipefail

HOST=127.0.0.1
PORT=5432
PREFIX=wh_test_db_

psql_admin() {
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 -qAt "$@"
}

ensure_running() {
    if pg_isready -q -h "$HOST" -p "$PORT"; then
        return
    fi
    if ! command -v pg_ctlcluster >/dev/null; then
        # A machine without PostgreSQL: install Debian's (needs root and the package registry).
        echo "installing PostgreSQL" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        local conf
        conf="$(ls -d /etc/postgresql/*/main | sort -V | tail -n 1)/pg_hba.conf"
        # Trust local connections, as the test machines are set up.
        sed -i -E 's/^(host|local)(.*)(scram-sha-256|md5|peer)$/\1\2trust/' "$conf"
    fi
    local version
    version="$(ls /etc/postgresql | sort -V | tail -n 1)"
    echo "starting PostgreSQL $version" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2
    for _ in $(seq 1 30); do
        if pg_isready -q -h "$HOST" -p "$PORT"; then
            return
        fi
        sleep 1
    done
    echo "PostgreSQL did not come up on $HOST:$PORT" >&2
    exit 1
}

case "${1:-}" in
    create)
        ensure_running
        name="${PREFIX}$(date +%s)_$$"
        psql_admin -c "CREATE DATABASE $name" >&2
        echo "postgres://postgres@$HOST:$PORT/$name"
        ;;
    drop)
        name="${2:-}"
        name="${name##*/}"
        if [[ ! "$name" =~ ^${PREFIX}[0-9_]+$ ]]; then
            echo "refusing to drop '$name': not a database made by this script" >&2
            exit 1
        fi
        psql_admin -c "DROP DATABASE IF EXISTS $name WITH (FORCE)" >&2
        ;;
    *)
        echo "usage: $0 create | drop URL" >&2
        exit 2
        ;;
esac
