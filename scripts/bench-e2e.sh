#!/usr/bin/env bash
# End-to-end delivery throughput of the example server with PostgreSQL,
# measured like the peers in BENCHMARKS.md: wrk publishes events over HTTP
# (`POST /v1/events`) from N connections for a fixed time; nginx on
# 127.0.0.1 answers every delivery with 200 and logs when it arrived.
#
# Figures printed at the end (one `name: value` per line):
#   published              events accepted by the API (202)
#   delivered              deliveries nginx logged (one per event)
#   api_per_s              published / wrk's duration
#   e2e_msgs_per_s         delivered / (last delivery - first publish)
#   latency_p50_ms, latency_p99_ms, latency_max_ms
#                          publish (sent by wrk) to delivery (logged by nginx)
#
# Each event id carries wrk's send time in milliseconds in its last group,
# so the latency needs no clock shared beyond the machine's own.
#
# Environment: BENCH_SECONDS (default 15), BENCH_CONNECTIONS (default 32),
# BENCH_THREADS (default 2), BENCH_IN_FLIGHT (attempts in flight for the one
# subscription, default 32, the worker's concurrency), DATABASE_URL (default: a fresh database from
# scripts/pg-test-db.sh, dropped afterwards), BENCH_STORE=memory to run the
# server on MemoryStore instead.
# Needs wrk and nginx (Debian packages; installed when missing and root).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

SECONDS_RUN=${BENCH_SECONDS:-15}
CONNECTIONS=${BENCH_CONNECTIONS:-32}
THREADS=${BENCH_THREADS:-2}
WORK=target/bench-e2e
ORGANIZATION_ID=5d9c3e21-8f0a-4b6c-9d1e-2a3b4c5d6e7f
USER_ID=0f1e2d3c-4b5a-4968-8776-a5b4c3d2e1f0
EVENT=ConversationNoteAdded

need() {
    if ! command -v "$1" >/dev/null; then
        if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
            echo "== installing $2" >&2
            apt-get update -qq >&2
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >&2
        else
            echo "bench-e2e needs $1 (Debian package $2)" >&2
            exit 1
        fi
    fi
}
need wrk wrk
[[ -x /usr/sbin/nginx ]] || need nginx nginx-light
NGINX=/usr/sbin/nginx

rm -rf "$WORK"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

DROP_DB=
if [[ "${BENCH_STORE:-postgres}" == memory ]]; then
    STORE_ARGS=()
else
    if [[ -z "${DATABASE_URL:-}" ]]; then
        DATABASE_URL=$(bash scripts/pg-test-db.sh create)
        DROP_DB=$DATABASE_URL
    fi
    STORE_ARGS=(--database-url "$DATABASE_URL")
fi

echo "== building the example server (release)" >&2
cargo build --quiet --release --all-features --example server

SERVER_PID=
NGINX_STARTED=
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ -n "$NGINX_STARTED" ]]; then
        "$NGINX" -p "$WORK" -c "$WORK/nginx.conf" -s stop 2>/dev/null || true
    fi
    if [[ -n "$DROP_DB" ]]; then
        bash scripts/pg-test-db.sh drop "$DROP_DB" || true
    fi
}
trap cleanup EXIT

# nginx: one worker, keep-alive without a request cap, one log line per delivery.
RECEIVER_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err warn;
events { worker_connections 1024; }
http {
    log_format delivery '\$msec \$http_x_webhook_event_id';
    access_log $WORK/deliveries.log delivery buffer=256k flush=1s;
    keepalive_requests 10000000;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:$RECEIVER_PORT;
        location / { return 200; }
    }
}
CONF
"$NGINX" -p "$WORK" -c "$WORK/nginx.conf"
NGINX_STARTED=1

# One endpoint takes everything here, as in the peers' runs, so it gets as
# many attempts in flight as the worker has slots (the default cap is 4).
target/release/examples/server --addr 127.0.0.1:0 --allow-private-targets \
    --max-in-flight-per-subscription "${BENCH_IN_FLIGHT:-32}" \
    "${STORE_ARGS[@]}" >"$WORK/server.out" 2>"$WORK/server.err" &
SERVER_PID=$!
URL=$(wait_for_server "$SERVER_PID" "$WORK")

# One subscription to the event, pointing at nginx.
curl -fsS -o /dev/null -X POST "$URL/v1/webhooks" \
    -H 'Content-Type: application/json' \
    -H "X-Organization-Id: $ORGANIZATION_ID" -H "X-User-Id: $USER_ID" \
    -d "{\"name\":\"bench\",\"url\":\"http://127.0.0.1:$RECEIVER_PORT/hook\",\"events\":[\"$EVENT\"]}"

# Each request gets an event id `<thread>-<counter>-4000-8000-<send ms as 12 hex digits>`.
cat >"$WORK/publish.lua" <<'LUA'
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } bench_timeval;
int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")
local threads = 0
local counter = 0
thread_id = 0 -- set per thread by setup()

function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end

function request()
    ffi.C.gettimeofday(tv, nil)
    local ms = tonumber(tv.tv_sec) * 1000 + math.floor(tonumber(tv.tv_usec) / 1000)
    counter = counter + 1
    local id = string.format("%08x-%04x-4000-8000-%012x", counter, thread_id, ms)
    local body = '{"event":"EVENT_NAME","eventId":"' .. id ..
        '","data":{"conversationId":' .. counter .. ',"text":"a note of about two hundred bytes in total, like the peers measured"}}'
    return wrk.format("POST", "/v1/events", {
        ["Content-Type"] = "application/json",
        ["X-Organization-Id"] = "ORGANIZATION",
        ["X-User-Id"] = "USER",
    }, body)
end

function done(summary, latency, requests)
    local bad = summary.errors.status + summary.errors.connect + summary.errors.read
        + summary.errors.write + summary.errors.timeout
    io.write(string.format("wrk_requests: %d\nwrk_errors: %d\nwrk_duration_us: %d\nwrk_api_p99_ms: %.2f\n",
        summary.requests, bad, summary.duration, latency:percentile(99) / 1000))
end
LUA
sed -i "s/EVENT_NAME/$EVENT/; s/ORGANIZATION/$ORGANIZATION_ID/; s/\"USER\"/\"$USER_ID\"/" "$WORK/publish.lua"

echo "== publishing for ${SECONDS_RUN}s from $CONNECTIONS connections" >&2
wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_RUN}s" -s "$WORK/publish.lua" "$URL" >"$WORK/wrk.out"
grep -E '^wrk_' "$WORK/wrk.out" >&2
PUBLISHED=$(awk '/^wrk_requests:/ {print $2}' "$WORK/wrk.out")
ERRORS=$(awk '/^wrk_errors:/ {print $2}' "$WORK/wrk.out")
DURATION_US=$(awk '/^wrk_duration_us:/ {print $2}' "$WORK/wrk.out")
if [[ "$ERRORS" != 0 ]]; then
    echo "wrk saw $ERRORS failed publishes (see $WORK/server.err)" >&2
    exit 1
fi

# Wait until every published event was delivered (nginx flushes its log each second).
echo "== waiting for $PUBLISHED deliveries" >&2
last=-1
idle=0
for _ in $(seq 1 300); do
    sleep 1
    delivered=$(wc -l <"$WORK/deliveries.log" 2>/dev/null || echo 0)
    [[ "$delivered" -ge "$PUBLISHED" ]] && break
    if [[ "$delivered" -eq "$last" ]]; then
        # Nothing new for five seconds, well past nginx's one-second flush: stuck.
        idle=$((idle + 1))
        [[ "$idle" -ge 5 ]] && break
    else
        idle=0
    fi
    last=$delivered
done

python3 - "$WORK/deliveries.log" "$PUBLISHED" "$DURATION_US" <<'PY'
import sys

log, published, duration_us = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sent, arrived, seen = [], [], set()
duplicates = 0
for line in open(log):
    msec, event_id = line.split()
    if event_id in seen:
        duplicates += 1
        continue
    seen.add(event_id)
    arrived.append(float(msec) * 1000)
    sent.append(int(event_id.rsplit("-", 1)[1], 16))
if not arrived:
    sys.exit("nothing was delivered")
latencies = sorted(a - s for a, s in zip(arrived, sent))
def pct(p):
    return latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))]
span_s = (max(arrived) - min(sent)) / 1000
print(f"published: {published}")
print(f"delivered: {len(seen)}")
print(f"duplicates: {duplicates}")
print(f"api_per_s: {published / (duration_us / 1e6):.0f}")
print(f"e2e_msgs_per_s: {len(seen) / span_s:.0f}")
print(f"latency_p50_ms: {pct(50):.1f}")
print(f"latency_p99_ms: {pct(99):.1f}")
print(f"latency_max_ms: {latencies[-1]:.1f}")
if len(seen) < published:
    sys.exit(f"only {len(seen)} of {published} events were delivered")
PY
