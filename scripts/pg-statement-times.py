#!/usr/bin/env python3
"""Sums the PostgreSQL server log's statement durations by store statement.

Turn on per-statement logging for one database only (not the cluster):

    psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE wh_perf_log"
    psql -h 127.0.0.1 -U postgres -c \
        "ALTER DATABASE wh_perf_log SET log_min_duration_statement = 0"

run the bench against it, cut the log lines of that run out of the server
log, and feed them to this script:

    LOG=/var/log/postgresql/postgresql-15-main.log; START=$(stat -c %s $LOG)
    DATABASE_URL='postgres://postgres@127.0.0.1:5432/wh_perf_log?sslmode=disable' \
        cargo run --release --all-features --example bench -- --quick --only postgres
    tail -c +$((START + 1)) $LOG > run.log
    python3 scripts/pg-statement-times.py run.log 10000

The second argument (deliveries in the run) adds a per-delivery column.
Durations are wall-clock time inside the backend (parse, bind, execute),
so they include time waiting for a CPU on a busy machine; the implicit
commit of a one-statement transaction is not part of them.
"""

import collections
import re
import sys

LINE = re.compile(
    r"^\S+ \S+ \S+ \[\d+\] .*?LOG:  duration: ([\d.]+) ms  "
    r"(parse|bind|execute|statement)(?: [^:]*)?: ?(.*)$"
)


def kind(first: str, following: str) -> str:
    first = first.strip()
    if first.startswith("WITH RECURSIVE lanes"):
        return "claim_lanes"
    if first.startswith("WITH lanes AS"):
        return "claim"
    if first.startswith("WITH input AS"):
        # record_attempts binds uuid arrays first; enqueue_events a text array third.
        return "record_attempts" if "$3::uuid[]" in following else "enqueue_events"
    if first.startswith("BEGIN"):
        return "begin (claim transaction)"
    if first.startswith("COMMIT"):
        return "commit (claim transaction)"
    return "other: " + first[:50]


def main() -> None:
    lines = open(sys.argv[1], errors="replace").read().split("\n")
    deliveries = float(sys.argv[2]) if len(sys.argv) > 2 else None
    totals = collections.defaultdict(lambda: [0, 0.0])
    for i, line in enumerate(lines):
        match = LINE.match(line)
        if not match:
            continue
        ms, phase, first = match.groups()
        following = lines[i + 1] if i + 1 < len(lines) else ""
        total = totals[(kind(first, following), phase)]
        total[0] += 1
        total[1] += float(ms)
    for (name, phase), (count, ms) in sorted(totals.items()):
        if count < 5:
            continue
        line = f"{name:28} {phase:9} n={count:6} total={ms:9.1f} ms avg={ms / count * 1000:8.1f} us"
        if deliveries:
            line += f"  per delivery={ms * 1000 / deliveries:6.1f} us"
        print(line)


if __name__ == "__main__":
    main()
