-- Signs up a new user with every request: emails unique per run, thread and request.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local run = os.getenv("BENCH_RUN_ID")
local password = os.getenv("BENCH_SIGNUP_PASSWORD")
local threads = 0
local n = 0
local headers = { ["Content-Type"] = "application/json" }

-- Each thread gets a global `id` before it starts (wrk's own example does the same).
function setup(thread)
  threads = threads + 1
  thread:set("id", threads)
end

function request()
  n = n + 1
  local body = string.format('{"email":"s%s-%d-%d@bench.example.com","password":"%s"}',
    run, id, n, password)
  return wrk.format("POST", "/auth/signup", headers, body)
end

done = common.done
