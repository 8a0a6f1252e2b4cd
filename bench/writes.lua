-- wrk script: PATCH /v1/subjects/{id}/preferences, each request flipping a random seeded
-- subject's email newsletter, so that every request writes an event. BENCH_TOKEN,
-- BENCH_SUBJECTS and BENCH_STANDINGS (a file: each subject's current status, one a line)
-- come from bench/run.py; run with one thread (-t1) so that one table holds the standings.
local token = os.getenv("BENCH_TOKEN") or ""
local subjects = tonumber(os.getenv("BENCH_SUBJECTS") or "10000")
local headers = { ["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json" }
local standing = {}

function init(args)
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
  local i = 0
  for line in io.lines(os.getenv("BENCH_STANDINGS")) do
    standing[i] = line
    i = i + 1
  end
end

function request()
  local i = math.random(0, subjects - 1)
  local wanted = standing[i] == "granted" and "withdrawn" or "granted"
  standing[i] = wanted
  local body = '{"changes":[{"channel":"email","category":"newsletter","status":"' .. wanted .. '"}]}'
  local path = string.format("/v1/subjects/00000000-0000-4000-8000-%012x/preferences", i)
  return wrk.format("PATCH", path, headers, body)
end

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")
