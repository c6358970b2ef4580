-- wrk script for the benchmarks: GET or POST over a fixed set of preloaded keys (through the edge, or
-- webdis's GET and SET commands), one fixed GET, or one fixed JSON POST (a chat completion; -H headers
-- are sent too).
--
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT -- <get|set> <keys> <key prefix> <value bytes>
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT -- <webdis-get|webdis-set> <keys> <prefix> <bytes>
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT -- path <path and query>
--   wrk -t2 -c16 -d10s --latency -s load.lua http://127.0.0.1:PORT/v1/chat/completions -- json '<body>'
--
-- Requests are built once in init() so the load loop only hands out strings.
-- Non-2xx responses are counted per status code (wrk's own counter only sees
-- status >= 400), and done() prints one line `WRK_JSON {...}` with the
-- totals, latency percentiles in microseconds and every error counter.
-- webdis answers 200 whatever Redis replied, so for webdis every 2xx body is
-- also compared with what the command must return; others count as mismatched.

local threads = {}

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

-- The same shape as benchmarks.kv.value_for (rev 1, preloaded), padded to `size` bytes of JSON; SET writes rev 2.
local function body(i, size, rev)
  local head = string.format('{"id":%d,"owner":"bench","rev":%d,"tags":["a","b"],"note":"', i, rev or 2)
  return head .. string.rep("x", math.max(0, size - #head - 2)) .. '"}'
end

-- A webdis path segment: every byte but letters and digits as %XX, so "/" and "." stay data.
local function segment(text)
  return (text:gsub("[^%w]", function(c) return string.format("%%%02X", c:byte()) end))
end

-- A JSON string as webdis (jansson) writes it, for the printable ASCII values above.
local function json_string(text)
  return '"' .. (text:gsub('[\\"]', "\\%0")) .. '"'
end

-- `extra` plus every -H header: wrk.format sends only the headers it is given, when it is given any.
local function with_wrk_headers(extra)
  local headers = {}
  for name, value in pairs(wrk.headers) do
    headers[name] = value
  end
  for name, value in pairs(extra) do
    headers[name] = value
  end
  return headers
end

function init(args)
  local op = args[1]
  local ops = { get = true, set = true, path = true, json = true, ["webdis-get"] = true, ["webdis-set"] = true }
  assert(ops[op], "first argument must be get, set, path, json, webdis-get or webdis-set")
  requests = {}
  if op == "path" then
    -- One fixed GET, e.g. `path /v1/prompts/default?namespace=bench`.
    requests[1] = wrk.format("GET", args[2])
  elseif op == "json" then
    -- One fixed POST of a JSON body to the URL's own path.
    requests[1] = wrk.format("POST", nil, with_wrk_headers({ ["Content-Type"] = "application/json" }), args[2])
  else
    local count, prefix, size = tonumber(args[2]), args[3], tonumber(args[4])
    if op == "webdis-set" then
      expected = { ['{"SET":[true,"OK"]}'] = true }
    elseif op == "webdis-get" then
      expected = {}
    end
    for i = 1, count do
      local key = string.format("%s%06d", prefix, i)
      if op == "get" then
        requests[i] = wrk.format("GET", "/_spark/kv/" .. key)
      elseif op == "set" then
        local headers = with_wrk_headers({ ["Content-Type"] = "text/plain" })
        requests[i] = wrk.format("POST", "/_spark/kv/" .. key, headers, body(i, size))
      elseif op == "webdis-get" then
        requests[i] = wrk.format("GET", "/GET/" .. segment(key))
        -- Whether SET ran before or not, a key holds its preloaded value or the one SET writes.
        expected['{"GET":' .. json_string(body(i, size, 1)) .. "}"] = true
        expected['{"GET":' .. json_string(body(i, size, 2)) .. "}"] = true
      else
        requests[i] = wrk.format("GET", "/SET/" .. segment(key) .. "/" .. segment(body(i, size)))
      end
    end
  end
  -- Threads start far apart so they do not walk the same keys in lockstep.
  cursor = (id * 7919) % #requests
  non2xx = 0
  mismatched = 0
  statuses = {}
end

function request()
  cursor = cursor % #requests + 1
  return requests[cursor]
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    statuses[status] = (statuses[status] or 0) + 1
  elseif expected and not expected[body] then
    mismatched = mismatched + 1
  end
end

function done(summary, latency, requests_done)
  local total, wrong, merged = 0, 0, {}
  for _, thread in ipairs(threads) do
    total = total + thread:get("non2xx")
    wrong = wrong + thread:get("mismatched")
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
    '"non2xx":%d,"statuses":{%s},"mismatched":%d,' ..
    '"latency_us":{"mean":%.1f,"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    total, table.concat(by_status, ","), wrong,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max))
end
