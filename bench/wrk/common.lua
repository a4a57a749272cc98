-- Shared by the scenario scripts: read the harness's files, and report one JSON line.
local common = {}

function common.lines(path)
  local lines = {}
  for line in io.lines(path) do
    if #line > 0 then lines[#lines + 1] = line end
  end
  return lines
end

-- The requests of a harness file, rendered: one a line, tab-separated: METHOD, path, body
-- ("-" for none), then headers as "Name: value".
function common.requests(path)
  local requests = {}
  for _, line in ipairs(common.lines(path)) do
    local fields = {}
    for field in string.gmatch(line, "[^\t]+") do fields[#fields + 1] = field end
    local headers = {}
    for i = 4, #fields do
      local name, value = string.match(fields[i], "^([^:]+):%s*(.*)$")
      headers[name] = value
    end
    local body = nil
    if fields[3] ~= "-" then body = fields[3] end
    requests[#requests + 1] = wrk.format(fields[1], fields[2], headers, body)
  end
  return requests
end

-- wrk calls done() once, after the run; the harness reads the BENCH_RESULT line.
function common.done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"status_errors":%d,"timeouts":%d,"p50_us":%d,"p90_us":%d,' ..
    '"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end

return common
