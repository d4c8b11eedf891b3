-- wrk script for bench/compare.sh: POST /api/v1/otp/verify of `otp serve` with a JSON body and
-- the session cookie of a logged-in user, as http_bench.sh's GET /verify?device=...&token=...
-- does for django-otp. Wrong codes (000000 unless OTP_BENCH_TOKEN says otherwise), so every
-- request is a full verification that fails: 401 {"error": "invalid_token"}.
--
--   OTP_BENCH_COOKIE='otp_session=...' OTP_BENCH_DEVICE=totp/1 \
--     wrk -t2 -c16 -d10s -s bench/verify.lua http://127.0.0.1:PORT
local cookie = os.getenv("OTP_BENCH_COOKIE")
local device = os.getenv("OTP_BENCH_DEVICE")
local token = os.getenv("OTP_BENCH_TOKEN") or "000000"
if cookie == nil or device == nil then
  error("set OTP_BENCH_COOKIE and OTP_BENCH_DEVICE")
end

wrk.method = "POST"
wrk.path = "/api/v1/otp/verify"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Cookie"] = cookie
wrk.body = string.format('{"device":"%s","token":"%s"}', device, token)
