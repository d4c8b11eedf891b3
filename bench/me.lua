-- wrk script for bench/compare.sh: GET /api/v1/me with the session cookie, the framework-only
-- request (session, user, no verification) beside http_bench.sh's GET /hello for django-otp.
local cookie = os.getenv("OTP_BENCH_COOKIE")
if cookie == nil then
  error("set OTP_BENCH_COOKIE")
end

wrk.method = "GET"
wrk.path = "/api/v1/me"
wrk.headers["Cookie"] = cookie
