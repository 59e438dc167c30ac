-- Authenticated GET of one generation. GG_KEY: API key; the path comes from
-- the URL given to wrk.
wrk.headers["Authorization"] = "Bearer " .. os.getenv("GG_KEY")
