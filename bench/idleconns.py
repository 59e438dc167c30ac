"""Opens N keep-alive connections to a server, sends one GET on each and reads
its answer, keeps them all open, and prints the server's VmRSS before and
after: the HTTP stack's own memory per open connection, to set against the
long-poll run's (bench/longpoll.py) per-poll figure.

Prints one line of key=value pairs.
"""

import argparse
import asyncio


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) // 1024
    return -1


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pid", type=int, required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--path", default="/")
    args = ap.parse_args()

    before = rss_mb(args.pid)
    gate = asyncio.Semaphore(256)
    held = []

    async def one():
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", args.port)
            writer.write(f"GET {args.path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise SystemExit(f"unexpected answer: {head[:40]!r}")
        held.append(writer)

    await asyncio.gather(*[one() for _ in range(args.conns)])
    await asyncio.sleep(1)
    after = rss_mb(args.pid)
    per_conn_kb = (after - before) * 1024 / max(1, args.conns)
    print(f"conns={args.conns} rss_before_mb={before} rss_open_mb={after} per_conn_kb={per_conn_kb:.1f}")
    for w in held:
        w.close()


asyncio.run(main())
