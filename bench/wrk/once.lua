-- Sends each request listed in $BENCH_REQUESTS exactly once, in order, then stops: for
-- what can be used only once (a one-time code) or should be asked for once (a mail to
-- each address). Run with one wrk thread (-t1) and a -d longer than the run needs (it is
-- the bound): when the last answer is in, the thread stops and interrupts wrk, which then
-- reports at once. wrk's own duration is not the run's, so the run is timed here (the
-- clock is read through `date`, at the start and at the end).
--
-- Besides common.done's line, prints BENCH_ONCE {"answered", "non_2xx", "elapsed_us",
-- "other_statuses"}: wrk counts only 4xx and 5xx as status errors; this counts everything
-- that is not 2xx, by status ("429:12 500:1").
-- With $BENCH_SAVE set, every response body is appended to that file, one a line.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local requests = {}
local sent = 0
local started_ns = nil
-- Globals: done() reads them from the thread with thread:get().
answered, non_2xx, elapsed_us = 0, 0, -1
-- "status:count" for each status other than 2xx, space-separated.
other_statuses = ""
local counts = {}
local thread_handle = nil

local function now_ns()
  local date = io.popen("date +%s%N")
  local ns = tonumber(date:read("*l"))
  date:close()
  return ns
end

function setup(thread)
  thread_handle = thread
end

local save = nil

function init(args)
  requests = common.requests(os.getenv("BENCH_REQUESTS"))
  local path = os.getenv("BENCH_SAVE")
  if path then save = assert(io.open(path, "w")) end
  started_ns = now_ns()
end

-- wrk asks for one request before the run, to check it, and never sends it: that call
-- gets the first request without counting it. The harness lists at least as many
-- requests as there are connections: each connection's first request is asked for
-- before any answer.
local checked = false
function request()
  if not checked then
    checked = true
    return requests[1]
  end
  sent = sent + 1
  return requests[sent]
end

-- Once everything is sent, a connection waits instead of asking for another request.
function delay()
  if sent >= #requests then return 3600 * 1000 end
  return 0
end

function response(status, headers, body)
  answered = answered + 1
  if status < 200 or status > 299 then
    non_2xx = non_2xx + 1
    counts[status] = (counts[status] or 0) + 1
  end
  if save then save:write(body, "\n") end
  if answered == #requests then
    elapsed_us = math.floor((now_ns() - started_ns) / 1000)
    for code, count in pairs(counts) do
      other_statuses = other_statuses .. string.format("%d:%d ", code, count)
    end
    if save then save:close() end
    wrk.thread:stop()
    -- wrk sleeps out -d in its main thread unless a signal interrupts it, and a signal
    -- sent now could land on this thread instead: it is sent once this thread is gone.
    -- $PPID is wrk.
    os.execute("(sleep 0.1; kill -INT $PPID) &")
  end
end

function done(summary, latency, requests_)
  common.done(summary, latency, requests_)
  io.write(string.format(
    'BENCH_ONCE {"answered":%d,"non_2xx":%d,"elapsed_us":%d,"other_statuses":"%s"}\n',
    thread_handle:get("answered"), thread_handle:get("non_2xx"),
    thread_handle:get("elapsed_us"), thread_handle:get("other_statuses")))
end
