-- wrk script: POST the same JSON body on every request (BENCH_BODY), with a bearer
-- token when BENCH_TOKEN is set. Kept minimal: no response() hook, so wrk stays fast.
wrk.method = "POST"
wrk.body = os.getenv("BENCH_BODY") or "{}"
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN") or ""
if token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
