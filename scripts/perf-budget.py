#!/usr/bin/env python3
"""Splits a `perf record -a -g` profile into a CPU budget per delivery.

    perf record -a -g -e cpu-clock -F 999 -o pg.data -- \
        target/release/examples/bench --quick --only postgres
    perf script -i pg.data -F comm,pid,ip,sym,dso > pg.txt
    python3 scripts/perf-budget.py postgres pg.txt 10000
    python3 scripts/perf-budget.py process pg.txt 10000 target/release/examples/bench

`postgres` sorts every sample of a PostgreSQL process by the first of a list
of server functions found on its stack (WAL flush, index maintenance,
executor start-up, planning, ...). `process` sorts the samples of the
bench's tokio threads (those of the processes running BINARY) by the library
their innermost frame belongs to. perf
6.1 reads no symbols from binaries linked by rust-lld here ("cannot get elf
header"), so the binary's own frames are looked up in `nm -n -C BINARY`.

The third argument is the number of deliveries, the fourth (optional) the
sampling rate (default 999 Hz); perf records the whole run, so the publish
phase before the drain is included unless recording is limited to the
drain (`perf record -D -1 --control=fifo:...`).
"""

import bisect
import collections
import os
import re
import subprocess
import sys

# First match wins, in this order, anywhere on the stack.
POSTGRES = [
    ("WAL flush at commit", ["XLogFlush", "XLogWrite", "issue_xlog_fsync"]),
    ("index maintenance (btree inserts)", ["ExecInsertIndexTuples", "btinsert", "index_insert"]),
    ("heap writes", ["heap_update", "heap_insert", "heap_delete", "heap_multi_insert"]),
    ("executor start-up (ExecInitNode)", ["standard_ExecutorStart", "ExecutorStart"]),
    ("executor teardown", ["standard_ExecutorEnd", "ExecutorEnd", "PortalDrop"]),
    ("planning, plan cache", ["GetCachedPlan", "pg_plan_queries", "standard_planner",
                              "BuildCachedPlan", "RevalidateCachedQuery"]),
    ("parse, analyze", ["pg_parse_query", "raw_parser", "exec_parse_message",
                        "parse_analyze_fixedparams", "parse_analyze_varparams"]),
    ("index scans (reads)", ["index_getnext_slot", "index_getnext_tid", "btgettuple", "_bt_first"]),
    ("execution, other (joins, CTEs, sorts, windows)", ["standard_ExecutorRun", "standard_ExecutorFinish",
                                                      "ExecutorRun", "ExecutorFinish", "PortalRun"]),
    ("network, protocol", ["secure_write", "secure_read", "pq_recvbuf", "internal_flush", "socket_flush",
                           "__send", "__libc_recv", "pq_getbyte", "pq_getmessage", "printtup"]),
    ("bind (parameters)", ["exec_bind_message"]),
    ("transaction start/commit", ["CommitTransactionCommand", "StartTransactionCommand"]),
]

CRATES = [
    ("sqlx", "sqlx (PostgreSQL protocol, encode/decode)"),
    ("sha2", "SHA-256/HMAC"), ("hmac", "SHA-256/HMAC"),
    ("hyper", "hyper/reqwest (HTTP client and the bench's receiver)"),
    ("reqwest", "hyper/reqwest (HTTP client and the bench's receiver)"),
    ("httparse", "hyper/reqwest (HTTP client and the bench's receiver)"),
    ("http::", "http crate (headers, URIs)"),
    ("tokio", "tokio (tasks, timers, channels, I/O driver)"),
    ("mio", "tokio (tasks, timers, channels, I/O driver)"),
    ("serde", "serde_json"), ("chrono", "chrono"), ("uuid", "uuid"),
    ("webhook_subscriptions", "webhook_subscriptions (worker, store, request)"),
    ("tracing", "tracing"), ("core::", "core/alloc"), ("alloc::", "core/alloc"),
]


def samples(path):
    """(comm, pid, [(ip, sym, dso)] innermost first) per sample of `perf script`."""
    comm, pid, frames = None, None, []
    frame = re.compile(r"\s*([0-9a-f]+) (.*) \((.*)\)\s*$")
    for line in open(path, errors="replace"):
        if not line.startswith("\t"):
            if line.strip():
                if comm is not None:
                    yield comm, pid, frames
                comm, pid, frames = line.split()[0], line.split()[-1], []
            continue
        match = frame.match(line)
        if match:
            ip, sym, dso = match.groups()
            frames.append((int(ip, 16), sym.split("+")[0], dso))
    if comm is not None:
        yield comm, pid, frames


def report(counts, total, deliveries, hz):
    print(f"{total} samples = {total / hz * 1e6 / deliveries:.1f} us of CPU per delivery")
    small = 0
    for name, count in counts.most_common():
        if count < total * 0.01 and name.startswith("other"):
            small += count
            continue
        print(f"  {100 * count / total:5.1f}%  {count / hz * 1e6 / deliveries:6.1f} us  {name}")
    if small:
        print(f"  {100 * small / total:5.1f}%  {small / hz * 1e6 / deliveries:6.1f} us  other (each < 1%)")


def postgres(path, deliveries, hz):
    counts, total = collections.Counter(), 0
    for comm, _, frames in samples(path):
        if comm != "postgres":
            continue
        total += 1
        names = {sym for _, sym, _ in frames}
        for category, functions in POSTGRES:
            if any(f in names for f in functions):
                counts[category] += 1
                break
        else:
            counts["other: " + (frames[0][1] if frames else "?")] += 1
    report(counts, total, deliveries, hz)


def process(path, deliveries, hz, binary):
    nm = subprocess.run(["nm", "-n", "-C", binary], capture_output=True, text=True).stdout
    addresses, names = [], []
    for line in nm.splitlines():
        parts = line.split(" ", 2)
        if len(parts) == 3 and parts[0] and parts[1] in "tTwW":
            addresses.append(int(parts[0], 16))
            names.append(parts[2])
    # perf shows file offsets; the text segment is mapped this much higher.
    offset = int(os.environ.get("TEXT_OFFSET", "4096"))
    base = os.environ.get("DSO_NAME", os.path.basename(binary))
    # Other processes on the machine may run tokio threads too.
    ours = {pid for _, pid, frames in samples(path) if any(base in dso for _, _, dso in frames)}
    counts, total = collections.Counter(), 0
    for comm, pid, frames in samples(path):
        if not comm.startswith("tokio-rt") or pid not in ours or not frames:
            continue
        total += 1
        ip, sym, dso = frames[0]
        if "kernel" in dso:
            counts["kernel (loopback TCP, epoll, wake-ups)"] += 1
        elif "libc" in dso:
            alloc = any(k in sym for k in ("malloc", "free", "_int_", "realloc", "calloc"))
            counts["glibc malloc/free" if alloc else "libc other (memcpy, syscall wrappers)"] += 1
        elif base in dso:
            if sym.startswith("0x") or sym.startswith("[unknown]") or not sym:
                i = bisect.bisect_right(addresses, ip + offset) - 1
                sym = names[i] if i >= 0 else "?"
            for key, category in CRATES:
                if key in sym:
                    counts[category] += 1
                    break
            else:
                counts["other: " + sym[:60]] += 1
        else:
            counts["other: " + dso] += 1
    report(counts, total, deliveries, hz)


def main():
    mode, path, deliveries = sys.argv[1], sys.argv[2], float(sys.argv[3])
    if mode == "postgres":
        hz = float(sys.argv[4]) if len(sys.argv) > 4 else 999
        postgres(path, deliveries, hz)
    else:
        hz = float(sys.argv[5]) if len(sys.argv) > 5 else 999
        process(path, deliveries, hz, sys.argv[4])


if __name__ == "__main__":
    main()
