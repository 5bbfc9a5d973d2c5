-- wrk script for bench/flask_webapp_bench.py: GET /call-api as a random signed-in user (a
-- session cookie from the file given after `--`), counting every answer that is not 200.
local cookies = {}
failures = 0 -- global: done() reads each thread's count with thread:get
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  for line in io.lines(args[1]) do
    cookies[#cookies + 1] = line
  end
  -- A different sequence of users in each thread.
  local address = tonumber(tostring({}):match("0x(%x+)") or "0", 16)
  math.randomseed(os.time() + address % 100000)
end

function request()
  return wrk.format("GET", "/call-api", { ["Cookie"] = cookies[math.random(#cookies)] })
end

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
  end
end

function done(summary, latency, requests)
  local failed = 0
  for _, thread in ipairs(threads) do
    failed = failed + thread:get("failures")
  end
  local errors = summary.errors
  io.write(string.format(
    "RESULT requests=%d duration_us=%d failures=%d socket_errors=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.duration, failed,
    errors.connect + errors.read + errors.write + errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
