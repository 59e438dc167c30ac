-- POST of one create to a peer-comparison target (bench/peer.sh). GG_KEY: the
-- Bearer credential; PEER_BODY: the JSON body. The path comes from the URL
-- given to wrk. Every request creates a new task/video upstream.
wrk.method = "POST"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GG_KEY")
wrk.headers["Content-Type"] = "application/json"
wrk.body = os.getenv("PEER_BODY")
