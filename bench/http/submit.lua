-- wrk script: POST /api/v1/export/progress-report as a therapist (see scripts/bench-http).
-- Environment: BENCH_TOKEN (bearer token), BENCH_PATIENT_ID (a patient of that therapist).
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(here .. "report.lua")

local patient = os.getenv("BENCH_PATIENT_ID") or "4333a588-c713-5117-85aa-6c9dc288e1df"
wrk.method = "POST"
wrk.path = "/api/v1/export/progress-report"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"patient_id": "%s", "start_date": "2025-01-01", "end_date": "2025-06-30", "format": "json"}',
  patient)
