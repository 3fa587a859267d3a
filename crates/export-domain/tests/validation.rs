//! Data-driven validation tests: each bad request with every field and message it must produce.

use export_domain::{
    FullRecordInput, ProgressReportInput, ScheduledReportInput, SessionNotesInput, TemplateInput,
    TreatmentSummaryInput, ValidationErrors,
};

const PATIENT: &str = "8a6e0804-2bd0-4672-b79d-d97027f9071a";
const SESSION: &str = "d3b07384-d113-4ec6-a0f9-9b5ad5a9a6a1";
const TEMPLATE: &str = "0f6f0b53-3b43-4c8a-9d4e-4f1b6a2a5c11";

/// Validates `json` as the request kind named by `kind` and compares the problems found (or
/// "ok") with `expect`, one `field: message` per line.
fn check(kind: &str, json: &str, expect: &[&str]) {
    fn run<I: serde::de::DeserializeOwned, R>(
        json: &str,
        validate: impl Fn(&I) -> Result<R, ValidationErrors>,
    ) -> Vec<String> {
        let input: I = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
        match validate(&input) {
            Ok(_) => vec!["ok".to_owned()],
            Err(errors) => errors.errors.iter().map(ToString::to_string).collect(),
        }
    }
    let got = match kind {
        "session_notes" => run(json, SessionNotesInput::validate),
        "progress_report" => run(json, ProgressReportInput::validate),
        "treatment_summary" => run(json, TreatmentSummaryInput::validate),
        "full_record" => run(json, FullRecordInput::validate),
        "template" => run(json, TemplateInput::validate),
        "scheduled" => run(json, ScheduledReportInput::validate),
        "dataset" => run(json, |i: &export_domain::DatasetInput| {
            i.validate("sessions")
        }),
        other => panic!("unknown kind {other}"),
    };
    assert_eq!(got, expect, "\n{kind}: {json}");
}

#[test]
fn session_notes() {
    check(
        "session_notes",
        &format!(r#"{{"session_ids":["{SESSION}"],"format":"pdf"}}"#),
        &["ok"],
    );
    check(
        "session_notes",
        r#"{"session_ids":[],"format":"pdf"}"#,
        &["session_ids: at least one session id is required"],
    );
    check(
        "session_notes",
        r#"{}"#,
        &[
            "session_ids: at least one session id is required",
            "format: is required",
        ],
    );
    check(
        "session_notes",
        &format!(
            r#"{{"session_ids":["{SESSION}","nope","{SESSION}"],"format":"xml","options":{{"include_audio":true}},"note_layout":"narrative"}}"#
        ),
        &[
            "session_ids[1]: \"nope\" is not a valid UUID",
            "session_ids[2]: duplicates session_ids[0]",
            "format: unknown export format \"xml\"; expected one of pdf, docx, json, csv, xlsx",
            "options.include_audio: unknown option; expected one of include_transcript, include_ai_notes, include_action_items",
            "note_layout: unknown note layout \"narrative\"; expected one of soap, dap, birp, progress_note",
        ],
    );
    check(
        "session_notes",
        &format!(r#"{{"session_ids":["{SESSION}"],"format":"xlsx","template_id":"12"}}"#),
        &["template_id: \"12\" is not a valid UUID"],
    );
    let many: Vec<String> = (0..1001)
        .map(|i| format!("\"00000000-0000-4000-8000-{i:012}\""))
        .collect();
    check(
        "session_notes",
        &format!(r#"{{"session_ids":[{}],"format":"csv"}}"#, many.join(",")),
        &["session_ids: at most 1000 session ids are allowed in one export (got 1001)"],
    );
}

#[test]
fn progress_report() {
    let ok = format!(
        r#"{{"patient_id":"{PATIENT}","start_date":"2025-01-01","end_date":"2025-06-30","format":"docx"}}"#
    );
    check("progress_report", &ok, &["ok"]);
    check(
        "progress_report",
        &format!(
            r#"{{"patient_id":"{PATIENT}","start_date":"2025-07-01","end_date":"2025-06-30","format":"csv"}}"#
        ),
        &[
            "start_date: 2025-07-01 is after end_date 2025-06-30",
            "format: progress_report exports cannot be csv; expected one of pdf, docx, json",
        ],
    );
    check(
        "progress_report",
        r#"{"patient_id":"","start_date":"2025-02-30","end_date":"01/03/2025","format":"pdf","include_sections":{"billing":false,"assessments":false}}"#,
        &[
            "patient_id: is required",
            "start_date: \"2025-02-30\" is not a valid date; expected YYYY-MM-DD",
            "end_date: \"01/03/2025\" is not a valid date; expected YYYY-MM-DD",
            "include_sections.billing: unknown section for progress_report; expected one of patient_info, treatment_goals, goal_progress, assessments, session_summary, clinical_observations, recommendations",
        ],
    );
}

#[test]
fn treatment_summary_and_full_record() {
    check(
        "treatment_summary",
        &format!(r#"{{"patient_id":"{PATIENT}","format":"json","purpose":"insurance"}}"#),
        &["ok"],
    );
    check(
        "treatment_summary",
        &format!(r#"{{"patient_id":"{PATIENT}","format":"pdf"}}"#),
        &["purpose: is required"],
    );
    check(
        "treatment_summary",
        &format!(r#"{{"patient_id":"{PATIENT}","format":"xlsx","purpose":"court"}}"#),
        &[
            "format: treatment_summary exports cannot be xlsx; expected one of pdf, docx, json",
            "purpose: unknown purpose \"court\"; expected one of insurance, transfer, records",
        ],
    );
    check(
        "full_record",
        &format!(
            r#"{{"patient_id":"{PATIENT}","format":"json","date_range":{{"start":"2025-01-01","end":"2025-03-31"}}}}"#
        ),
        &["ok"],
    );
    check(
        "full_record",
        &format!(
            r#"{{"patient_id":"{PATIENT}","format":"docx","date_range":{{"start":"2025-05-01","end":"2025-03-31"}}}}"#
        ),
        &[
            "format: full_record exports cannot be docx; expected one of json, pdf",
            "date_range.start: 2025-05-01 is after date_range.end 2025-03-31",
        ],
    );
    check(
        "full_record",
        &format!(
            r#"{{"patient_id":"{PATIENT}","format":"pdf","date_range":{{"start":"2025-05-01"}}}}"#
        ),
        &["date_range.end: is required"],
    );
}

#[test]
fn templates() {
    let content = r#""template_content":"<h1>{{ patient.name }}</h1>""#;
    check(
        "template",
        &format!(
            r#"{{"name":"Monthly","export_type":"progress_report","format":"pdf",{content}}}"#
        ),
        &["ok"],
    );
    check(
        "template",
        &format!(r#"{{"name":"  ","export_type":"progress_report","format":"pdf",{content}}}"#),
        &["name: is required"],
    );
    let long = "é".repeat(101);
    check(
        "template",
        &format!(
            r#"{{"name":"{long}","export_type":"progress_report","format":"docx",{content}}}"#
        ),
        &["name: must be at most 100 characters (got 101)"],
    );
    check(
        "template",
        &format!(
            r#"{{"name":"{}","export_type":"session_notes","format":"docx",{content}}}"#,
            "é".repeat(100)
        ),
        &["ok"],
    );
    check(
        "template",
        r#"{"name":"T","export_type":"session_notes","format":"csv","template_content":""}"#,
        &[
            "format: templates lay out documents; csv is made from the data, use pdf or docx",
            "template_content: is required",
        ],
    );
    check(
        "template",
        &format!(r#"{{"name":"T","export_type":"dataset","format":"pdf",{content}}}"#),
        &["export_type: datasets are tables and take no template"],
    );
    check(
        "template",
        &format!(
            r#"{{"name":"T","export_type":"full_record","format":"docx",{content},"include_sections":{{"sessions":true,"billing":true}}}}"#
        ),
        &[
            "format: full_record exports cannot be docx; expected one of json, pdf",
            "include_sections.billing: unknown section for full_record; expected one of demographics, treatment_plans, diagnoses, goals, sessions, notes, assessments, timeline, attachments, transcripts",
        ],
    );
}

#[test]
fn scheduled_reports() {
    let base = format!(r#""template_id":"{TEMPLATE}","delivery_method":"storage""#);
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"weekly","schedule_config":{{"day_of_week":0,"time":"08:00"}}}}"#
        ),
        &["ok"],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"daily","schedule_config":{{"hour":7}},"timezone":"Europe/Berlin"}}"#
        ),
        &["ok"],
    );
    check(
        "scheduled",
        &format!(r#"{{{base},"schedule_type":"cron","schedule_config":{{"cron":"0 2 * * MON"}}}}"#),
        &["ok"],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"weekly","schedule_config":{{"day_of_week":7,"time":"25:00"}}}}"#
        ),
        &[
            "schedule_config.time: \"25:00\" is not a time of day; expected HH:MM from 00:00 to 23:59",
            "schedule_config.day_of_week: must be 0 (Monday) to 6 (Sunday), got 7",
        ],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"monthly","schedule_config":{{"day_of_month":0,"time":"08:00"}}}}"#
        ),
        &["schedule_config.day_of_month: must be 1 to 31, got 0"],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"monthly","schedule_config":{{"day_of_month":32,"time":"8:00"}}}}"#
        ),
        &[
            "schedule_config.time: \"8:00\" is not a time of day; expected HH:MM from 00:00 to 23:59",
            "schedule_config.day_of_month: must be 1 to 31, got 32",
        ],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"cron","schedule_config":{{"cron":"0 2 * *","time":"08:00"}}}}"#
        ),
        &[
            "schedule_config.cron: must have 5 fields (minute hour day month weekday), got 4",
            "schedule_config.time: is not used by cron schedules",
        ],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"hourly","schedule_config":{{}},"timezone":"Mars Base"}}"#
        ),
        &[
            "schedule_type: unknown schedule type \"hourly\"; expected one of daily, weekly, monthly, cron",
            "timezone: \"Mars Base\" is not an IANA time zone name",
        ],
    );
    check(
        "scheduled",
        r#"{"template_id":"x","patient_id":"y","schedule_type":"daily","schedule_config":{"time":"08:00"},"delivery_method":"email","email_recipients":["ok@example.org","not an address"]}"#,
        &[
            "template_id: \"x\" is not a valid UUID",
            "patient_id: \"y\" is not a valid UUID",
            "email_recipients[1]: is not an email address",
        ],
    );
    check(
        "scheduled",
        &format!(
            r#"{{"template_id":"{TEMPLATE}","schedule_type":"daily","schedule_config":{{"time":"08:00"}},"delivery_method":"email"}}"#
        ),
        &["email_recipients: at least one recipient is required for email delivery"],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_type":"daily","schedule_config":{{"time":"08:00"}},"email_recipients":["a@b.org"],"attach_file":true}}"#
        ),
        &[
            "email_recipients: is only used with delivery_method email",
            "attach_file: is only used with delivery_method email",
        ],
    );
}

#[test]
fn datasets() {
    check(
        "dataset",
        r#"{"format":"xlsx","filters":{"status":"processed"}}"#,
        &["ok"],
    );
    check(
        "dataset",
        r#"{"format":"docx"}"#,
        &["format: dataset exports cannot be docx; expected one of csv, json, xlsx, pdf"],
    );
    // A byte order mark for Excel is a CSV's; other formats ignore the option, as they ignore a
    // template they do not lay out.
    for format in ["csv", "xlsx"] {
        let json = format!(r#"{{"format":"{format}","excel":true}}"#);
        let input: export_domain::DatasetInput = serde_json::from_str(&json).unwrap();
        let request = input.validate("sessions").unwrap();
        assert_eq!(request.excel, format == "csv", "{format}");
    }
    check(
        "session_notes",
        &format!(r#"{{"session_ids":["{SESSION}"],"format":"pdf","excel":true}}"#),
        &["ok"],
    );
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let err = serde_json::from_str::<ProgressReportInput>(r#"{"patient":"x"}"#).unwrap_err();
    assert!(err.to_string().contains("unknown field `patient`"), "{err}");
}

/// The rules the API fuzzing held to the document: whole numbers sent as floats are numbers,
/// and text is checked as sent, never trimmed into something else first.
#[test]
fn values_are_checked_as_sent() {
    let base =
        format!(r#""template_id":"{TEMPLATE}","patient_id":"{PATIENT}","schedule_type":"monthly""#);
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_config":{{"day_of_month":27.0,"time":"08:00"}},"delivery_method":"storage"}}"#
        ),
        &["ok"],
    );
    let fraction = format!(
        r#"{{{base},"schedule_config":{{"day_of_month":27.5,"time":"08:00"}},"delivery_method":"storage"}}"#
    );
    let refused = serde_json::from_str::<ScheduledReportInput>(&fraction).unwrap_err();
    assert!(
        refused.to_string().contains("expected a whole number"),
        "{refused}"
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_config":{{"day_of_month":1,"time":"08:00"}},"delivery_method":"storage","timezone":" UTC"}}"#
        ),
        &["timezone: \" UTC\" is not an IANA time zone name"],
    );
    check(
        "scheduled",
        &format!(
            r#"{{{base},"schedule_config":{{"day_of_month":1,"time":"08:00"}},"delivery_method":"email","email_recipients":[" lead@clinic.example"]}}"#
        ),
        &["email_recipients[0]: is not an email address"],
    );
    let content = r#""template_content":"<h1>x</h1>""#;
    let padded = format!("{}  ", "n".repeat(100));
    check(
        "template",
        &format!(
            r#"{{"name":"{padded}","export_type":"progress_report","format":"pdf",{content}}}"#
        ),
        &["name: must be at most 100 characters (got 102)"],
    );
    for (address, valid) in [
        ("lead@clinic.example", true),
        ("first.last+tag@mail.example.co.uk", true),
        ("a@b", false),
        (".a@example.org", false),
        ("a..b@example.org", false),
        ("a@-example.org", false),
        ("a@example.org ", false),
    ] {
        assert_eq!(export_domain::is_email_address(address), valid, "{address}");
    }
}
