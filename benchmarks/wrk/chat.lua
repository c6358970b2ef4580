-- wrk script for benchmarks/chat_load.py: the same POST of a JSON body, over and over.
--
--   wrk -t2 -c16 -d10s --latency -H 'Authorization: Bearer x' -s chat.lua http://127.0.0.1:PORT/v1/chat/completions -- '<json body>'
--
-- The request is built once, from the URL's path, the -H headers and the body argument, so wrk
-- sends a static request. Non-2xx responses are counted per status code and done() prints the
-- same `WRK_JSON {...}` line as kv.lua, which is what benchmarks/chat_load.py parses.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  assert(args[1] and #args[1] > 0, "the first argument must be the JSON request body")
  wrk.method = "POST"
  wrk.body = args[1]
  wrk.headers["Content-Type"] = "application/json"
  non2xx = 0
  statuses = {}
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
