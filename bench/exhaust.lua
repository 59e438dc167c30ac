-- Credits exhaustion: POST /api/v1/generations round-robin over many API keys
-- (one per account, read from the file GG_KEYS_FILE, one key a line) until
-- every account has run out. Counts responses by status; done() prints
-- "status CODE COUNT" lines that bench/run.sh reads.
local keys = {}
for line in io.lines(os.getenv("GG_KEYS_FILE")) do
   if #line > 0 then keys[#keys + 1] = line end
end
local body = '{"model":"kling-3-0","prompt":"A lighthouse at dusk, slow dolly in","params":{"duration":"5"}}'
local i = 0
counts = {}

request = function()
   i = i % #keys + 1
   return wrk.format("POST", "/api/v1/generations", {
      ["Authorization"] = "Bearer " .. keys[i],
      ["Content-Type"] = "application/json",
   }, body)
end

response = function(status, headers, body)
   counts[status] = (counts[status] or 0) + 1
end

local threads = {}
function setup(thread)
   threads[#threads + 1] = thread
end

function done(summary, latency, requests)
   local all = {}
   for _, t in ipairs(threads) do
      for code, n in pairs(t:get("counts")) do
         all[code] = (all[code] or 0) + n
      end
   end
   for code, n in pairs(all) do
      io.write(string.format("status %d %d\n", code, n))
   end
end
