-- post.lua -- wrk script of `es-bench http`: POSTs Segment /v1/batch
-- bodies, each request a fresh one.
--
-- The bodies file (env ES_BENCH_BODIES) holds one JSON body per line, as
-- es-bench writes them: {"batch":[...100 events...],"writeKey":"t0001"},
-- every event's messageId "[<id>]-<n>".  Each request takes the next
-- body (round robin per thread) and replaces [<id>] with an id unique to
-- this run, thread and request (ES_BENCH_NONCE-thread-counter), so no
-- event is a retry of another and the server stores every one.
--
-- done() prints one line "WRK {json}" with the counts and the latency
-- percentiles (microseconds), which es-bench's driver (load.mjs) reads.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end

local function split(s, sep)
  local out, from = {}, 1
  while true do
    local i, j = string.find(s, sep, from, true)
    if not i then
      table.insert(out, string.sub(s, from))
      return out
    end
    table.insert(out, string.sub(s, from, i - 1))
    from = j + 1
  end
end

local bodies = {}
local nonce = os.getenv("ES_BENCH_NONCE") or "0"

function init(args)
  local f = assert(io.open(os.getenv("ES_BENCH_BODIES"), "r"))
  for line in f:lines() do
    if #line > 0 then
      table.insert(bodies, split(line, "[<id>]"))
    end
  end
  f:close()
  wrk.method = "POST"
  wrk.path = "/v1/batch"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local pieces = bodies[(counter % #bodies) + 1]
  local id = nonce .. "-" .. tid .. "-" .. counter
  return wrk.format(nil, nil, nil, table.concat(pieces, id))
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"duration_us":%d,"requests":%d,"bytes":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"max":%d,"mean":%.1f}}\n',
    summary.duration, summary.requests, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
