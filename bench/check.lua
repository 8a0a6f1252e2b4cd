-- wrk script: GET /v1/consent/check for a random seeded email, with the bearer token.
-- BENCH_TOKEN and BENCH_SUBJECTS come from bench/run.py; the last line printed is JSON.
local token = os.getenv("BENCH_TOKEN") or ""
local subjects = tonumber(os.getenv("BENCH_SUBJECTS") or "10000")
local headers = { ["Authorization"] = "Bearer " .. token }

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

function request()
  local i = math.random(0, subjects - 1)
  local path = "/v1/consent/check?email=user" .. i .. "%40bench.example&channel=email&category=newsletter"
  return wrk.format("GET", path, headers)
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
