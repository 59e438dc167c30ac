#!/usr/bin/env python3
"""Kling finished -> `succeeded` visible to a waiting long poll (bench/run.sh,
scenario `callback`). Standard library only.

The server runs kling-3-0 on the in-repo fake Kling (`gengate dev fake-kling`),
with callbacks on (the callback path) or off (polling, the fallback).

1. Creates N kling-3-0 tasks, paced at --rate per second, so that with the
   fake's task life longer than N / rate every task is in flight upstream at
   once before the first one finishes.
2. Right after each create, opens a long poll for it on its own connection
   (GET /api/v1/generations/{id}?wait=W); an answer that is not terminal
   (queued -> processing) is followed at once by the next poll on the same
   connection, as a client would.
3. When every poll has its terminal answer, reads the fake's completion log
   (GET {fake}/fake/completions: per task, when it turned `succeed`, in
   microseconds). Latency = time the client read `succeeded` - the fake's
   finish time (same machine, same clock). Only polls sent before the finish
   count (a poll sent after it was answered at once and says nothing).
4. Peak in flight upstream: the most fake tasks created and not yet finished
   at one time, from the same log.

Prints one line of key=value pairs; exits 1 if a task did not succeed, the
fake has no finish time for one, or no poll was waiting when its task finished.
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.request

TERMINAL = ("succeeded", "failed")


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


def pct(values, p):
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--fake", required=True, help="the fake's base URL")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="creates per second")
    ap.add_argument("--conns", type=int, default=8, help="connections for creates")
    ap.add_argument("--wait", type=int, default=60)
    ap.add_argument("--timeout", type=float, default=300.0, help="for the whole run, s")
    args = ap.parse_args()

    hostport = f"{args.host}:{args.port}"
    body = json.dumps(
        {"model": "kling-3-0", "prompt": "A lighthouse at dusk", "params": {"duration": "5"}}
    ).encode()
    # id -> (final status, time the final answer was read, time its poll was sent)
    results = {}
    errors = []
    polls = []

    async def poll(task_id):
        path = f"/api/v1/generations/{task_id}?wait={args.wait}"
        reader, writer = await asyncio.open_connection(args.host, args.port)
        try:
            while True:
                writer.write(request("GET", path, hostport, args.key))
                sent = time.time()
                status, resp = await read_response(reader)
                got = time.time()
                if status != 200:
                    errors.append(f"poll {task_id}: HTTP {status} {resp[:200]!r}")
                    return
                g = json.loads(resp)
                if g["status"] in TERMINAL:
                    results[task_id] = (g["status"], got, sent)
                    return
        finally:
            writer.close()

    t0 = time.time()
    next_slot = iter(range(args.tasks))

    async def creator():
        reader, writer = await asyncio.open_connection(args.host, args.port)
        for i in next_slot:
            delay = t0 + i / args.rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            writer.write(request("POST", "/api/v1/generations", hostport, args.key, body))
            status, resp = await read_response(reader)
            if status != 202:
                raise RuntimeError(f"create: HTTP {status} {resp[:200]!r}")
            polls.append(asyncio.create_task(poll(json.loads(resp)["id"])))
        writer.close()

    async def run():
        await asyncio.gather(*(creator() for _ in range(args.conns)))
        t_created = time.time()
        await asyncio.gather(*polls)
        return t_created

    try:
        t_created = await asyncio.wait_for(run(), args.timeout)
    except asyncio.TimeoutError:
        print(f"timed out after {args.timeout} s: {len(results)} of {args.tasks} answered",
              file=sys.stderr)
        sys.exit(1)
    t_done = time.time()

    with urllib.request.urlopen(args.fake.rstrip("/") + "/fake/completions", timeout=30) as r:
        fake_tasks = json.load(r)["tasks"]
    by_ext = {t["external_task_id"]: t for t in fake_tasks if t["external_task_id"]}

    lat = []
    early = 0
    bad = list(errors)
    for task_id, (status, got, sent) in results.items():
        ft = by_ext.get(task_id)
        if status != "succeeded":
            bad.append(f"{task_id}: {status}")
            continue
        if ft is None or ft["finished_at_us"] is None or ft["status"] != "succeed":
            bad.append(f"{task_id}: the fake has no finish for it: {ft}")
            continue
        finished = ft["finished_at_us"] / 1e6
        if sent >= finished:
            early += 1
            continue
        lat.append((got - finished) * 1000)
    missing = args.tasks - len(results) - len(errors)
    if missing:
        bad.append(f"{missing} task(s) without an answer")
    lat.sort()

    # The most tasks in flight upstream at one time: +1 at creation, -1 at
    # the finish (a finish sorts before a creation in the same millisecond).
    events = []
    for t in fake_tasks:
        events.append((t["created_at_ms"] / 1000, 1))
        if t["finished_at_us"] is not None:
            events.append((t["finished_at_us"] / 1e6, -1))
    events.sort()
    peak = cur = 0
    for _, d in events:
        cur += d
        peak = max(peak, cur)

    print(
        f"tasks={args.tasks} upstream_tasks={len(fake_tasks)} peak_in_flight={peak} "
        f"succeeded={sum(1 for r in results.values() if r[0] == 'succeeded')} "
        f"waited={len(lat)} early={early} bad={len(bad)} "
        f"lat_p50_ms={pct(lat, 50):.1f} lat_p99_ms={pct(lat, 99):.1f} "
        f"lat_max_ms={(lat[-1] if lat else float('nan')):.1f} "
        f"create_s={t_created - t0:.1f} total_s={t_done - t0:.1f}"
    )
    if bad or not lat:
        print(f"failures: {bad[:5]}", file=sys.stderr)
        sys.exit(1)


asyncio.run(main())
