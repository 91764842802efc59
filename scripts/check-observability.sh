#!/usr/bin/env bash
# Runs the example server against two loopback receivers, one answering 200
# and one 500, and checks what an operator sees: after 10 events delivered
# to the first and 5 to the second, the fifth failure in a row opens the
# second's circuit, so its retries wait. `GET /metrics` counts exactly 10
# successful and 5 failed attempts and has the queue gauges, the
# subscription's delivery status shows the open circuit, `GET /healthz` is
# healthy (a paused endpoint is not lag), and stderr has exactly one line per
# failed attempt, with the subscription id and status 500, one line for the
# circuit opening, and no secret.
set -euo pipefail
cd "$(dirname "$0")/.."

# The example runs its delivery worker with the HTTP transport.
FEATURES=http-client,metrics
WORK=target/check-observability
mkdir -p "$WORK"

echo "== building the example server"
cargo build --quiet --features "$FEATURES" --example server

exec python3 - "$FEATURES" "$WORK" <<'PY'
import http.server
import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

features, work = sys.argv[1], sys.argv[2]
ORG = "5d6c1a2b-3e4f-4a5b-8c7d-9e0f1a2b3c4d"
USER = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
TOKEN = "observability-token-s3cr3t"
CUSTOM = "custom-header-s3cr3t"
DEADLINE = time.monotonic() + 120


def fail(message):
    print(f"check-observability: {message}", file=sys.stderr)
    sys.exit(1)


def receiver(status):
    """A loopback receiver answering `status`, counting what it gets."""
    counter = {"requests": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            counter["requests"] += 1
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hook", counter


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method)
    request.add_header("X-Organization-Id", ORG)
    request.add_header("X-User-Id", USER)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def metric(text, name, labels=""):
    match = re.search(rf"^{name}{re.escape(labels)} (\S+)$", text, re.MULTILINE)
    return None if match is None else float(match.group(1))


ok_url, ok_count = receiver(200)
failing_url, failing_count = receiver(500)

stderr_path = f"{work}/server.err"
with open(stderr_path, "wb") as stderr:
    server = subprocess.Popen(
        ["cargo", "run", "--quiet", "--features", features, "--example", "server", "--",
         "--addr", "127.0.0.1:0", "--allow-private-targets", "--retry-delays-ms", "500"],
        stdout=subprocess.PIPE, stderr=stderr, env={**__import__("os").environ, "RUST_LOG": "info"},
    )
try:
    line = server.stdout.readline().decode().strip()
    if not line.startswith("listening on http://"):
        fail(f"the server did not start: {line!r}\n" + open(stderr_path).read())
    base = line.removeprefix("listening on ")

    status, body = call(base, "POST", "/v1/webhooks", {
        "name": "answers 200", "url": ok_url, "events": ["ConversationCreated"]})
    if status != 201:
        fail(f"creating a subscription answered {status}: {body}")
    status, body = call(base, "POST", "/v1/webhooks", {
        "name": "answers 500", "url": failing_url, "events": ["ConversationClosed"],
        "authorization": {"_type": "TokenAuth", "value": TOKEN},
        "customHeaders": {"X-Api-Key": CUSTOM}})
    if status != 201:
        fail(f"creating a subscription answered {status}: {body}")
    failing = json.loads(body)["data"]
    for event, count in [("ConversationCreated", 10), ("ConversationClosed", 5)]:
        for _ in range(count):
            status, body = call(base, "POST", "/v1/events", {"event": event, "data": {}})
            if status != 202 or json.loads(body)["data"]["enqueued"] != 1:
                fail(f"publishing {event} answered {status}: {body}")

    # 10 deliveries succeed at once; 5 fail, and the fifth failure in a row
    # opens the circuit for 30 s: the retries due 500 ms later wait.
    expected = {"success": 10.0, "failure": 5.0}
    while True:
        status, text = call(base, "GET", "/metrics")
        counts = {o: metric(text, "webhook_attempts_total", f'{{outcome="{o}"}}') for o in expected}
        if counts == expected:
            break
        if time.monotonic() > DEADLINE:
            fail(f"attempts never reached {expected}: {counts}\n{text}")
        time.sleep(0.2)
    time.sleep(1.5)  # nothing more may happen: the retries wait for the circuit
    status, text = call(base, "GET", "/metrics")
    if status != 200:
        fail(f"/metrics answered {status}")
    for name, labels, want in [
        ("webhook_attempts_total", '{outcome="success"}', 10),
        ("webhook_attempts_total", '{outcome="failure"}', 5),
        ("webhook_events_published_total", "", 15),
        ("webhook_deliveries_enqueued_total", "", 15),
        ("webhook_attempt_duration_seconds_count", "", 15),
        ("webhook_queue_due", "", None),
        ("webhook_queue_oldest_due_seconds", "", None),
    ]:
        value = metric(text, name, labels)
        if value is None or (want is not None and value != want):
            fail(f"{name}{labels} is {value}, expected {want if want is not None else 'present'}\n{text}")
    if (ok_count["requests"], failing_count["requests"]) != (10, 5):
        fail(f"the receivers got {ok_count} and {failing_count} requests, expected 10 and 5")
    status, body = call(base, "GET", f"/v1/webhooks/{failing['id']}/delivery-status")
    endpoint = json.loads(body).get("endpoint") if status == 200 else None
    if endpoint is None or endpoint["state"] != "open" or endpoint["failureStreak"] != 5:
        fail(f"the failing subscription's delivery status shows no open circuit: {status} {body}")
    status, body = call(base, "GET", "/healthz")
    health = json.loads(body)
    if status != 200 or health["worker"] != "running" or health["store"] != "ok":
        fail(f"/healthz answered {status}: {body}")
finally:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()

log = open(stderr_path).read()
failed = [l for l in log.splitlines() if "webhook attempt failed" in l]
if len(failed) != 5:
    fail(f"{len(failed)} lines for failed attempts on stderr, expected 5:\n{log}")
opened = [l for l in log.splitlines() if "webhook endpoint circuit opened" in l]
if len(opened) != 1 or f"subscription_id={failing['id']}" not in opened[0]:
    fail(f"expected one line for the circuit opening, got {opened}")
for l in failed:
    if f"subscription_id={failing['id']}" not in l or "status=500" not in l:
        fail(f"a failed attempt's line lacks the subscription id or the status: {l}")
for secret, what in [(failing["secretKey"], "the secret key"), (TOKEN, "the bearer token"),
                     (CUSTOM, "a custom header value")]:
    if secret in log:
        fail(f"{what} appears on stderr")
print("check-observability: 10 delivered, 5 failed attempts counted exactly; "
      "circuit opened and shown; queue gauges present; one log line per failed "
      "attempt, no secret")
PY
