-- wrk script: the same push body every time, with a wrong X-Hub-Signature-256.
--   wrk ... -s reject.lua URL -- BAD_FILE
-- BAD_FILE (from `payload.py wrk-data`): line 1 the signature header value, then the body.
-- The request is built once (no request() function), so wrk sends it at full speed.
-- Prints "RESULT key value" lines for scripts/bench.sh.
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  local f = assert(io.open(args[1], "rb"))
  local sig = f:read("*l")
  local body = f:read("*a")
  f:close()
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-GitHub-Event"] = "push"
  wrk.headers["X-GitHub-Delivery"] = "bench-forged"
  wrk.headers["X-Hub-Signature-256"] = sig
  statuses = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      total[code] = (total[code] or 0) + n
    end
  end
  for code, n in pairs(total) do
    io.write(string.format("RESULT status_%d %d\n", code, n))
  end
  local e = summary.errors
  io.write(string.format("RESULT requests %d\n", summary.requests))
  io.write(string.format("RESULT duration_us %d\n", summary.duration))
  io.write(string.format("RESULT errors_connect %d\nRESULT errors_read %d\nRESULT errors_write %d\nRESULT errors_timeout %d\nRESULT errors_status %d\n",
    e.connect, e.read, e.write, e.timeout, e.status))
  io.write(string.format("RESULT p50_us %d\nRESULT p90_us %d\nRESULT p99_us %d\nRESULT max_us %d\n",
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
