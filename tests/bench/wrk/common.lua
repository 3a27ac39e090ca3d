-- Shared by every wrk script of tests/bench (prepended by bench_lib.py).
-- Each thread gets `tid` (0-based; setup() runs before that thread's init(), so the thread
-- count is not known there: scripts that need it take it as an argument) and counts the
-- requests it generated in `sent`; done() prints one machine-readable line: WRKJSON {...}.
local bench_threads = {}
local bench_nthreads = 0
sent = 0

function setup(thread)
  thread:set("tid", bench_nthreads)
  bench_nthreads = bench_nthreads + 1
  table.insert(bench_threads, thread)
end

function read_lines(path)
  local lines = {}
  for line in io.lines(path) do
    if line ~= "" then lines[#lines + 1] = line end
  end
  return lines
end

function done(summary, latency, requests)
  local total_sent = 0
  for _, t in ipairs(bench_threads) do
    total_sent = total_sent + (t:get("sent") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"bytes":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"status_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"sent":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean, total_sent))
end
