-- wrk script: POST the JSON body read from the file named by the first script argument,
-- then print one machine-readable line with throughput, errors and latency percentiles.
-- Usage: wrk -s post.lua http://127.0.0.1:PORT/predict -- body.json

function init(args)
   local path = args[1]
   if path == nil then
      error("post.lua needs the request body file as its first argument")
   end
   local file = assert(io.open(path, "rb"))
   wrk.body = file:read("*a")
   file:close()
   wrk.method = "POST"
   wrk.headers["Content-Type"] = "application/json"
end

function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "WRK_JSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
      "\"errors\": {\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d}, " ..
      "\"latency_us\": {\"p50\": %d, \"p90\": %d, \"p99\": %d, \"mean\": %.1f, \"max\": %d}}\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean, latency.max
   ))
end
