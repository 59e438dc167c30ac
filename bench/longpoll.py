#!/usr/bin/env python3
"""10,000 in-flight tasks and 10,000 open long polls (bench/run.sh, scenario
`longpoll`). Standard library only.

1. Creates N tasks (the server runs with --no-runner, so they stay queued:
   in flight) over a few keep-alive connections.
2. Opens one long poll per task, each on its own connection:
   GET /api/v1/generations/{id}?wait=W.
3. The server's catalog gives the tasks a short deadline, so its deadline
   sweeper fails them (an in-process status change that refunds the credits
   and wakes the waiters). Each poll's answer time minus the task's
   `updated_at` (set in the failing transaction, millisecond precision) is the
   "status change -> long poll answered" latency.
4. Reads the server's VmRSS once the tasks exist and again with every poll
   open, and VmHWM (peak) at the end.

Prints one line of key=value pairs; exits 1 if a poll was not answered with
the changed status.
"""

import argparse
import asyncio
import datetime
import json
import sys
import time


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) // 1024
    return -1


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for h in lines[1:]:
        if h.lower().startswith("content-length:"):
            length = int(h.split(":", 1)[1])
    body = await reader.readexactly(length) if length else b""
    return status, body


def request(method, path, host, key, body=None):
    h = [
        f"{method} {path} HTTP/1.1",
        f"Host: {host}",
        f"Authorization: Bearer {key}",
    ]
    if body is not None:
        h += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(h) + "\r\n\r\n").encode() + (body or b"")


async def create_tasks(host, port, key, n, conns):
    body = json.dumps(
        {"model": "kling-3-0", "prompt": "A lighthouse at dusk", "params": {"duration": "5"}}
    ).encode()
    ids = []
    todo = iter(range(n))

    async def worker():
        reader, writer = await asyncio.open_connection(host, port)
        for _ in todo:
            writer.write(request("POST", "/api/v1/generations", f"{host}:{port}", key, body))
            status, resp = await read_response(reader)
            if status != 202:
                raise RuntimeError(f"create: HTTP {status} {resp[:200]!r}")
            ids.append(json.loads(resp)["id"])
        writer.close()

    await asyncio.gather(*(worker() for _ in range(conns)))
    return ids


def parse_ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--pid", type=int, required=True, help="server pid, for RSS")
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--wait", type=int, default=60)
    args = ap.parse_args()

    t0 = time.time()
    ids = await create_tasks(args.host, args.port, args.key, args.tasks, 32)
    t_created = time.time()
    rss_created = rss(args.pid, "VmRSS")

    # Open every poll; a semaphore keeps the connect storm within the
    # listen backlog.
    connect_gate = asyncio.Semaphore(256)
    opened = 0
    all_open = asyncio.Event()

    async def poll(task_id):
        nonlocal opened
        path = f"/api/v1/generations/{task_id}?wait={args.wait}"
        async with connect_gate:
            reader, writer = await asyncio.open_connection(args.host, args.port)
            writer.write(request("GET", path, f"{args.host}:{args.port}", args.key))
            await writer.drain()
        sent = time.time()
        opened += 1
        if opened == len(ids):
            all_open.set()
        while True:
            status, body = await read_response(reader)
            got = time.time()
            if status != 200:
                writer.close()
                return ("http", status, 0.0, sent)
            g = json.loads(body)
            if g["status"] != "queued":
                break
            # The wait ran out first: poll again on the same connection, as
            # a client would.
            writer.write(request("GET", path, f"{args.host}:{args.port}", args.key))
            sent = time.time()
        writer.close()
        changed_at = parse_ts(g["updated_at"])
        return (g["status"], status, got - changed_at, changed_at - sent)

    polls = [asyncio.create_task(poll(i)) for i in ids]
    await all_open.wait()
    t_open = time.time()
    rss_open = rss(args.pid, "VmRSS")
    results = await asyncio.gather(*polls)
    t_done = time.time()
    hwm = rss(args.pid, "VmHWM")

    # A poll opened after its task had already changed was answered at once;
    # it says nothing about wake-up latency.
    waited = [r for r in results if r[0] == "failed" and r[3] > 0]
    early = sum(1 for r in results if r[0] == "failed" and r[3] <= 0)
    bad = [r for r in results if r[0] != "failed"]
    lat = sorted(r[2] * 1000 for r in waited)

    def pct(p):
        return lat[min(len(lat) - 1, int(p / 100 * len(lat)))] if lat else float("nan")

    print(
        f"tasks={len(ids)} create_s={t_created - t0:.1f} open_s={t_open - t_created:.1f} "
        f"answered={len(results) - len(bad)} unchanged={len(bad)} changed_before_open={early} "
        f"lat_p50_ms={pct(50):.1f} lat_p99_ms={pct(99):.1f} lat_max_ms={(lat[-1] if lat else float('nan')):.1f} "
        f"rss_created_mb={rss_created} rss_open_mb={rss_open} hwm_mb={hwm} total_s={t_done - t0:.1f}"
    )
    if bad:
        print(f"unanswered or unchanged polls: {bad[:5]}", file=sys.stderr)
        sys.exit(1)


asyncio.run(main())
