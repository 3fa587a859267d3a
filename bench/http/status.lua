-- wrk script: GET /api/v1/export/jobs/{id} of one job (the URL given to wrk names it), with the
-- bearer token of the job's owner (see scripts/bench-http). Environment: BENCH_TOKEN.
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

wrk.method = "GET"
