-- POST /api/v1/generations with one API key (GG_KEY). Every request creates
-- (and pays for) a new task; no Idempotency-Key is sent.
wrk.method = "POST"
wrk.path = "/api/v1/generations"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GG_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"model":"kling-3-0","prompt":"A lighthouse at dusk, slow dolly in","params":{"duration":"5"}}'
