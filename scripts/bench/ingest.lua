-- wrk script: every request is a distinct, correctly signed GitHub push.
--   wrk ... -s ingest.lua URL -- DATA_DIR DELIVERY_PREFIX THREADS
-- DATA_DIR comes from `payload.py wrk-data`: body = prefix .. seq .. suffix, and the
-- seq-th 64-character signature in DATA_DIR/sigs. Thread t sends seq t, t+THREADS, ...
-- Prints "RESULT key value" lines for scripts/bench.sh.
wrk.method = "POST"

local threads = {}

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function slurp(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local prefix, suffix, sigs, nsigs, dprefix, nthreads
local counter = 0

function init(args)
  local dir = args[1]
  dprefix = args[2]
  nthreads = tonumber(args[3])
  prefix = slurp(dir .. "/prefix")
  suffix = slurp(dir .. "/suffix")
  sigs = slurp(dir .. "/sigs")
  nsigs = math.floor(#sigs / 64)
  statuses = {}
  overflow = 0
end

function request()
  local seq = tid + nthreads * counter
  counter = counter + 1
  if seq >= nsigs then
    -- would repeat a body: counted, and bench.sh fails the run
    overflow = overflow + 1
    seq = seq % nsigs
  end
  local sig = string.sub(sigs, seq * 64 + 1, seq * 64 + 64)
  return wrk.format(nil, nil, {
    ["Content-Type"] = "application/json",
    ["X-GitHub-Event"] = "push",
    ["X-GitHub-Delivery"] = dprefix .. seq,
    ["X-Hub-Signature-256"] = "sha256=" .. sig,
  }, prefix .. seq .. suffix)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local total, over = {}, 0
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do
      total[code] = (total[code] or 0) + n
    end
    over = over + t:get("overflow")
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
  io.write(string.format("RESULT overflow %d\n", over))
end
