-- Shared by the wrk scripts of scripts/bench-http: the bearer token from the environment and a
-- done() hook that prints one machine-readable result line and fails the run (exit 1) when any
-- request failed: a socket error (connect, read, write, timeout) or a response wrk counts as
-- "Non-2xx or 3xx" (status 400 and above).

local token = os.getenv("BENCH_TOKEN")
if token == nil or token == "" then
  io.stderr:write("bench/http: BENCH_TOKEN (a bearer token) is not set\n")
  os.exit(2)
end
wrk.headers["Authorization"] = "Bearer " .. token
wrk.headers["User-Agent"] = "bench-http (wrk)"

function done(summary, latency, requests)
  local e = summary.errors
  local seconds = summary.duration / 1e6
  local socket_errors = e.connect + e.read + e.write + e.timeout
  -- latency figures are in microseconds
  io.write(string.format(
    "wrk-result requests=%d duration_s=%.3f rps=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f "
      .. "non_2xx_3xx=%d connect=%d read=%d write=%d timeout=%d\n",
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000,
    e.status, e.connect, e.read, e.write, e.timeout))
  io.stdout:flush()
  if summary.requests == 0 or e.status > 0 or socket_errors > 0 then
    io.stderr:write(string.format(
      "bench/http: FAILED: %d of %d responses were not 2xx/3xx, %d socket errors "
        .. "(connect %d, read %d, write %d, timeout %d)\n",
      e.status, summary.requests, socket_errors, e.connect, e.read, e.write, e.timeout))
    os.exit(1)
  end
end
