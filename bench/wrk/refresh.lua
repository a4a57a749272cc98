-- Rotates refresh tokens as a browser does: each request sends one from the pool in the
-- sb_refresh_token cookie, and the rotated one from Set-Cookie goes back in. $BENCH_TOKENS
-- holds one token per connection (a session each), plus one for the request wrk renders
-- up front and never sends. Run with one wrk thread (-t1): a token sent twice would be a
-- reuse, which revokes its session.
local common = dofile(os.getenv("BENCH_DIR") .. "/common.lua")
local csrf = os.getenv("BENCH_CSRF")
local origin = os.getenv("BENCH_ORIGIN")
local pool = common.lines(os.getenv("BENCH_TOKENS"))

function request()
  local token = table.remove(pool) or ""
  return wrk.format("POST", "/auth/refresh", {
    ["Cookie"] = "csrf_token=" .. csrf .. "; sb_refresh_token=" .. token,
    ["X-CSRF-Token"] = csrf,
    ["Origin"] = origin,
  })
end

function response(status, headers, body)
  local cookie = headers["set-cookie"] or headers["Set-Cookie"] or ""
  local token = string.match(cookie, "sb_refresh_token=([^;]+)")
  if status == 200 and token then pool[#pool + 1] = token end
end

done = common.done
