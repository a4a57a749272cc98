-- Sends the requests listed in $BENCH_REQUESTS in turn, each pre-rendered once per thread.
-- One request per line, tab-separated: METHOD, path, body ("-" for none), then headers
-- as "Name: value".
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local requests = {}
local n = 0

function init(args)
  requests = common.requests(os.getenv("BENCH_REQUESTS"))
  -- Threads start at different places in the list.
  n = math.random(#requests) - 1
end

function request()
  n = n + 1
  if n > #requests then n = 1 end
  return requests[n]
end

-- $BENCH_DELAY_MS paces a probe (the health check beside a saturating load).
local pace = tonumber(os.getenv("BENCH_DELAY_MS") or "")
if pace then
  function delay() return pace end
end

done = common.done
