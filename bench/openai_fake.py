#!/usr/bin/env python3
"""A small fake of OpenAI's video endpoints, the upstream for the LiteLLM peer
comparison (bench/peer.sh, issue 16). Standard library only.

Shapes follow OpenAI's public API reference for Videos:

  POST /v1/videos            JSON {"model", "prompt", "seconds"?, "size"?}
                             -> 200 a video object, status "queued"
  GET  /v1/videos/{video_id} -> 200 the video object, or 404 an error object
  GET  /healthz              -> 200 (for the bench's start-up check)

A video object: {"id": "video_…", "object": "video", "model", "status",
"progress", "created_at", "completed_at", "expires_at", "seconds", "size",
"remixed_from_video_id", "error"}. A video stays "queued" for --queued-ms,
then "in_progress" until --total-ms, then "completed" (the bench only needs
create and retrieve to answer; the life is there so the fake is not a
constant). Every request must carry "Authorization: Bearer <--api-key>",
else 401 as OpenAI answers.

Why not http.server: it is too slow to stay out of the way (a thread per
connection and a Python-level parse). This is an asyncio.Protocol that
parses HTTP/1.1 keep-alive requests by hand, so that one core of it serves
several times what LiteLLM can send it; bench/peer.sh measures it directly
to show that.
"""

import argparse
import asyncio
import json
import os
import secrets
import sys
import time

VIDEOS = {}
API_KEY = b""
QUEUED_S = 0.0
TOTAL_S = 0.0


def video_view(v):
    age = time.time() - v["_t"]
    out = {k: val for k, val in v.items() if not k.startswith("_")}
    if age < QUEUED_S:
        out["status"], out["progress"] = "queued", 0
    elif age < TOTAL_S:
        out["status"] = "in_progress"
        out["progress"] = int(100 * (age - QUEUED_S) / max(TOTAL_S - QUEUED_S, 1e-9))
    else:
        out["status"], out["progress"] = "completed", 100
        out["completed_at"] = int(v["_t"] + TOTAL_S)
    return out


def respond(status, obj):
    body = json.dumps(obj, separators=(",", ":")).encode()
    reason = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed"}[status]
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


def error(status, message, typ="invalid_request_error"):
    return respond(status, {"error": {"message": message, "type": typ, "param": None, "code": None}})


def handle(method, path, headers, body):
    if path == "/healthz":
        return respond(200, {"ok": True})
    if headers.get(b"authorization", b"") != b"Bearer " + API_KEY:
        return error(401, "Incorrect API key provided.")
    path = path.split("?", 1)[0]
    if path == "/v1/videos":
        if method != "POST":
            return error(405, "only POST is faked here")
        try:
            req = json.loads(body or b"{}")
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.")
        if not isinstance(req, dict) or not req.get("prompt"):
            return error(400, "Missing required parameter: 'prompt'.")
        now = time.time()
        vid = "video_" + secrets.token_hex(16)
        VIDEOS[vid] = {
            "id": vid,
            "object": "video",
            "model": req.get("model", "sora-2"),
            "status": "queued",
            "progress": 0,
            "created_at": int(now),
            "completed_at": None,
            "expires_at": int(now) + 3600,
            "seconds": str(req.get("seconds", "4")),
            "size": req.get("size", "720x1280"),
            "remixed_from_video_id": None,
            "error": None,
            "_t": now,
        }
        return respond(200, video_view(VIDEOS[vid]))
    if path.startswith("/v1/videos/") and method == "GET":
        v = VIDEOS.get(path[len("/v1/videos/"):])
        if v is None:
            return error(404, "Video not found")
        return respond(200, video_view(v))
    return error(404, f"Invalid URL ({method} {path})")


class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        out = []
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                break
            lines = self.buf[:end].split(b"\r\n")
            try:
                method, target, _ = lines[0].split(b" ", 2)
            except ValueError:
                self.t.write(error(400, "bad request line"))
                self.t.close()
                return
            headers = {}
            for line in lines[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip()
            n = int(headers.get(b"content-length", b"0"))
            if len(self.buf) < end + 4 + n:
                break  # the body is not all here yet
            body = self.buf[end + 4 : end + 4 + n]
            self.buf = self.buf[end + 4 + n :]
            out.append(handle(method.decode(), target.decode(), headers, body))
        if out:
            self.t.write(b"".join(out))


def main():
    global API_KEY, QUEUED_S, TOTAL_S
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:18095")
    ap.add_argument("--api-key", default="sk-fake-openai")
    ap.add_argument("--queued-ms", type=int, default=1000)
    ap.add_argument("--total-ms", type=int, default=600_000)
    args = ap.parse_args()
    API_KEY = args.api_key.encode()
    QUEUED_S, TOTAL_S = args.queued_ms / 1000, args.total_ms / 1000
    host, port = args.listen.rsplit(":", 1)
    loop = asyncio.new_event_loop()
    server = loop.run_until_complete(loop.create_server(Http, host, int(port), backlog=4096))
    print(f"fake openai videos listening on {args.listen} (pid {os.getpid()})", file=sys.stderr, flush=True)
    try:
        loop.run_until_complete(server.serve_forever())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
