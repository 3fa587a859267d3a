# Schemathesis hooks of scripts/api-fuzz.
#
# JSON Schema states each field on its own; a few rules of the API tie fields together or to
# what is stored, and no schema can say them. For the requests schemathesis makes as valid
# (positive cases) only, these hooks bring the body in line with those rules before it is sent,
# so that "a valid request is accepted" is tested on requests that are valid. Negative cases are
# sent as generated. Each rule below is one the API document states in words:
#
# - a date range starts on or before its end (progress reports, full records, the audit trail);
# - a scheduled report's `schedule_config` holds the members its `schedule_type` uses, its time
#   zone is in the IANA database, its cron expression parses, email delivery has recipients and
#   storage delivery none, and it names a template the caller may use;
# - a template's format is one its export type allows and its sections are that type's (both
#   read from the served document);
# - a `template_id` names a template the caller may use; dataset filters are the dataset's own.
#
# The runner passes the server's address and the caller's token (EXPORT_FUZZ_BASE,
# EXPORT_FUZZ_TOKEN); a scheduled report is given a template of the caller's, made again when the
# fuzzing has deleted it.

import json
import os
import urllib.error
import urllib.request
import zoneinfo

import schemathesis

BASE = os.environ["EXPORT_FUZZ_BASE"]
TOKEN = os.environ["EXPORT_FUZZ_TOKEN"]
ZONES = zoneinfo.available_timezones()
TEMPLATE = {"id": None}


def call(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + TOKEN, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.load(answer)
    except urllib.error.HTTPError as error:
        return error.code, None


def template_id():
    """A progress-report template of the caller's that exists now."""
    if TEMPLATE["id"] is not None:
        status, _ = call("GET", "/api/v1/export/templates/" + TEMPLATE["id"])
        if status == 200:
            return TEMPLATE["id"]
    for attempt in range(100):
        status, made = call("POST", "/api/v1/export/templates", {
            "name": "Fuzz report %d" % attempt,
            "export_type": "progress_report",
            "format": "pdf",
            "template_content": "<p>Progress report</p>",
        })
        if status == 201:
            TEMPLATE["id"] = made["id"]
            return made["id"]
    return None


def read_document():
    """Each export type's `include_sections` keys and formats, as the served document states
    them."""
    with urllib.request.urlopen(BASE + "/api/v1/openapi.json", timeout=30) as answer:
        schemas = json.load(answer)["components"]["schemas"]
    inputs = {
        "session_notes": "SessionNotesInput",
        "progress_report": "ProgressReportInput",
        "treatment_summary": "TreatmentSummaryInput",
        "full_record": "FullRecordInput",
    }
    sections, formats = {}, {}
    for kind, name in inputs.items():
        properties = schemas[name]["properties"]
        sections[kind] = list(properties.get("include_sections", {}).get("properties", {}))
        formats[kind] = properties["format"]["enum"]
    return sections, formats


SECTIONS, FORMATS = read_document()


def positive(case):
    meta = case.meta
    return meta is not None and meta.generation.mode.is_positive


def in_order(body, start, end):
    if isinstance(body, dict) and isinstance(body.get(start), str) and isinstance(body.get(end), str):
        if body[start] > body[end]:
            body[start], body[end] = body[end], body[start]


def schedule(body, partial):
    kind = body.get("schedule_type")
    config = body.get("schedule_config")
    if kind is None:
        if partial:
            body.pop("schedule_config", None)
    else:
        config = {} if not isinstance(config, dict) else config
        keep = {
            "daily": ("time",),
            "weekly": ("time", "day_of_week"),
            "monthly": ("time", "day_of_month"),
            "cron": ("cron",),
        }[kind]
        config = {k: v for k, v in config.items() if k in keep and v is not None}
        if kind == "cron":
            config["cron"] = "0 9 * * 1"
        else:
            config.setdefault("time", "09:00")
            if kind == "weekly":
                config.setdefault("day_of_week", 0)
            if kind == "monthly":
                config.setdefault("day_of_month", 1)
        body["schedule_config"] = config
    zone = body.get("timezone")
    if isinstance(zone, str) and zone not in ZONES:
        body["timezone"] = "UTC"
    if "template_id" in body or not partial:
        body["template_id"] = template_id()
    method = body.get("delivery_method")
    if method == "email":
        if not body.get("email_recipients"):
            body["email_recipients"] = ["reports@example.org"]
    elif method == "storage" or (method is None and not partial):
        body["email_recipients"] = []
        body["attach_file"] = False
    elif partial:
        body.pop("email_recipients", None)
        body.pop("attach_file", None)
    parameters = body.get("parameters")
    if isinstance(parameters, dict) and parameters.get("purpose") is None:
        parameters.pop("purpose", None)


def template(body):
    kind = body.get("export_type")
    allowed = FORMATS.get(kind, [])
    if allowed and body.get("format") not in allowed:
        body["format"] = next(f for f in ("pdf", "docx") if f in allowed)
    sections = body.get("include_sections")
    if isinstance(sections, dict) and kind in SECTIONS:
        body["include_sections"] = {k: v for k, v in sections.items() if k in SECTIONS[kind]}
    # A source that is text only renders any sample; generated text may open a tag it never
    # closes.
    content = body.get("template_content")
    if isinstance(content, str) and ("{" in content or "}" in content):
        body["template_content"] = "<p>Progress report</p>"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    if not positive(case):
        return
    path = case.operation.path
    method = case.operation.method.upper()
    body = case.body if isinstance(case.body, dict) else None
    if path == "/api/v1/export/progress-report" and body is not None:
        in_order(body, "start_date", "end_date")
    if path == "/api/v1/export/full-record" and body is not None:
        in_order(body.get("date_range"), "start", "end")
    if path.startswith("/api/v1/audit/logs") and isinstance(case.query, dict):
        in_order(case.query, "from", "to")
    if body is not None and "template_id" in body and path.startswith("/api/v1/export/") and not path.startswith("/api/v1/export/scheduled"):
        body["template_id"] = None
    if path.startswith("/api/v1/export/datasets/") and body is not None:
        body.pop("filters", None)
    if path in ("/api/v1/export/scheduled", "/api/v1/export/scheduled/preview") and body is not None:
        schedule(body, partial=False)
    if path == "/api/v1/export/scheduled/{id}" and method == "PATCH" and body is not None:
        schedule(body, partial=True)
    if path.startswith("/api/v1/export/templates") and method in ("POST", "PUT") and body is not None:
        template(body)
