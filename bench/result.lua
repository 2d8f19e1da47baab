done = function(summary, latency, requests)
  io.write(string.format("RESULT %d %d %d %.0f %.0f %.0f %.0f\n", summary.requests,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration, latency:percentile(50), latency:percentile(99), latency:percentile(99.9)))
end
