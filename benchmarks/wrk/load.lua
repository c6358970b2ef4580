-- wrk script for the benchmarks: GET or POST over a fixed set of preloaded keys, one fixed GET, or one
-- fixed JSON POST (a chat completion; -H headers are sent too).
--
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT -- <get|set> <keys> <key prefix> <value bytes>
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT -- path <path and query>
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT/v1/chat/completions -- json '<body>'
--
-- Requests are built once in init() so the load loop only hands out strings.
-- Non-2xx responses are counted per status code (wrk's own counter only sees
-- status >= 400), and done() prints one line `WRK_JSON {...}` with the
-- totals, latency percentiles in microseconds and every error counter.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- The same shape as benchmarks.kv.value_for, padded to `size` bytes of JSON.
local function body(i, size)
  local head = string.format('{"id":%d,"owner":"bench","rev":2,"tags":["a","b"],"note":"', i)
  return head .. string.rep("x", math.max(0, size - #head - 2)) .. '"}'
end

function init(args)
  local op = args[1]
  assert(op == "get" or op == "set" or op == "path" or op == "json", "first argument must be get, set, path or json")
  requests = {}
  if op == "path" then
    -- One fixed GET, e.g. `path /v1/prompts/default?namespace=bench`.
    requests[1] = wrk.format("GET", args[2])
  elseif op == "json" then
    -- One fixed POST of a JSON body to the URL's own path; wrk.format sends only the headers it is given.
    local headers = { ["Content-Type"] = "application/json" }
    for name, value in pairs(wrk.headers) do
      headers[name] = value
    end
    requests[1] = wrk.format("POST", nil, headers, args[2])
  else
    local count, prefix, size = tonumber(args[2]), args[3], tonumber(args[4])
    for i = 1, count do
      local path = string.format("/_spark/kv/%s%06d", prefix, i)
      if op == "get" then
        requests[i] = wrk.format("GET", path)
      else
        requests[i] = wrk.format("POST", path, { ["Content-Type"] = "text/plain" }, body(i, size))
      end
    end
  end
  -- Threads start far apart so they do not walk the same keys in lockstep.
  cursor = (id * 7919) % #requests
  non2xx = 0
  statuses = {}
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end

function response(status)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[status] = (statuses[status] or 0) + 1
  end
end

function done(summary, latency, requests_done)
  local total, merged = 0, {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("non2xx")
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local by_status = {}
  for status, count in pairs(merged) do
    table.insert(by_status, string.format('"%d":%d', status, count))
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"non2xx":%d,"statuses":{%s},' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    total, table.concat(by_status, ","),
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
