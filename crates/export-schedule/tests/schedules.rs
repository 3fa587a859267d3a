//! Schedule maths as data: schedules, time zones and instants in, the next runs (as local wall
//! times with the zone's abbreviation, or as UTC) out; invalid schedules in, the fields named out.
//!
//! The expected runs are written by hand, not regenerated: they are the specification (month
//! ends, leap days, the daylight saving rules of the crate docs), checked against the time zone
//! database's transitions for 2026 (New York: 8 March 02:00→03:00, 1 November 02:00→01:00;
//! Berlin: 29 March 02:00→03:00, 25 October 03:00→02:00; Sydney: 5 April 03:00→02:00,
//! 4 October 02:00→03:00).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use export_domain::{ScheduleConfig, ScheduleType};
use export_schedule::{Due, Schedule};

/// A schedule written compactly: `daily HH:MM`, `weekly DAY HH:MM` (0 = Monday), `monthly DAY
/// HH:MM`, or `cron EXPRESSION`.
fn parse_schedule(spec: &str) -> (ScheduleType, ScheduleConfig) {
    let (kind, rest) = spec.split_once(' ').unwrap_or((spec, ""));
    let mut config = ScheduleConfig::default();
    let words: Vec<&str> = rest.split_whitespace().collect();
    let kind = match kind {
        "daily" => {
            config.time = Some(words[0].to_owned());
            ScheduleType::Daily
        }
        "weekly" => {
            config.day_of_week = Some(words[0].parse().unwrap());
            config.time = Some(words[1].to_owned());
            ScheduleType::Weekly
        }
        "monthly" => {
            config.day_of_month = Some(words[0].parse().unwrap());
            config.time = Some(words[1].to_owned());
            ScheduleType::Monthly
        }
        "cron" => {
            config.cron = Some(rest.to_owned());
            ScheduleType::Cron
        }
        other => panic!("unknown schedule kind {other:?} in {spec:?}"),
    };
    (kind, config)
}

fn schedule(spec: &str, zone: &str) -> Schedule {
    let (kind, config) = parse_schedule(spec);
    Schedule::new(kind, &config, zone)
        .unwrap_or_else(|errors| panic!("{spec:?} in {zone}: {errors:?}"))
}

/// `2026-03-08T07:00:00Z` as UTC, or `2026-03-08 01:00` as a wall time in `zone` that must exist
/// exactly once.
fn instant(text: &str, zone: &str) -> DateTime<Utc> {
    if text.ends_with('Z') {
        return DateTime::parse_from_rfc3339(text).unwrap().to_utc();
    }
    let zone: Tz = zone.parse().unwrap();
    let local = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
    zone.from_local_datetime(&local)
        .single()
        .unwrap_or_else(|| panic!("{text} is not one instant in {zone}"))
        .to_utc()
}

/// How an expected run is written: UTC when the expectation ends in `Z`, otherwise the wall time
/// in `zone` with its abbreviation (which tells the two 01:30s of a fold apart).
fn render(at: DateTime<Utc>, zone: &str, like: &str) -> String {
    if like.ends_with('Z') {
        return at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    }
    let zone: Tz = zone.parse().unwrap();
    at.with_timezone(&zone)
        .format("%Y-%m-%d %H:%M %Z")
        .to_string()
}

struct Case {
    name: &'static str,
    schedule: &'static str,
    zone: &'static str,
    after: &'static str,
    /// The runs after `after`, in order; the list is complete when `ends` is set.
    runs: &'static [&'static str],
    ends: bool,
}

const fn case(
    name: &'static str,
    schedule: &'static str,
    zone: &'static str,
    after: &'static str,
    runs: &'static [&'static str],
) -> Case {
    Case {
        name,
        schedule,
        zone,
        after,
        runs,
        ends: false,
    }
}

const fn case_ending(
    name: &'static str,
    schedule: &'static str,
    zone: &'static str,
    after: &'static str,
    runs: &'static [&'static str],
) -> Case {
    Case {
        ends: true,
        ..case(name, schedule, zone, after, runs)
    }
}

const NY: &str = "America/New_York";
const BERLIN: &str = "Europe/Berlin";
const SYDNEY: &str = "Australia/Sydney";
const UTC: &str = "UTC";

const CASES: &[Case] = &[
    // A run exactly at `after` is not after it.
    case(
        "daily run exactly at now goes to the next day",
        "daily 09:00",
        NY,
        "2026-01-15 09:00",
        &["2026-01-16 09:00 EST", "2026-01-17 09:00 EST"],
    ),
    case(
        "daily one minute before the run",
        "daily 09:00",
        UTC,
        "2026-01-15T08:59:59Z",
        &["2026-01-15T09:00:00Z", "2026-01-16T09:00:00Z"],
    ),
    case(
        "weekly run exactly at now goes to the next week",
        "weekly 0 09:00",
        BERLIN,
        "2026-01-05 09:00",
        &["2026-01-12 09:00 CET"],
    ),
    case(
        "monthly run exactly at now goes to the next month",
        "monthly 1 00:00",
        UTC,
        "2026-12-01T00:00:00Z",
        &["2027-01-01T00:00:00Z", "2027-02-01T00:00:00Z"],
    ),
    // Month ends.
    case(
        "monthly 31st through a leap February, 30-day months and the year's end",
        "monthly 31 09:00",
        NY,
        "2027-11-15 00:00",
        &[
            "2027-11-30 09:00 EST",
            "2027-12-31 09:00 EST",
            "2028-01-31 09:00 EST",
            "2028-02-29 09:00 EST",
            "2028-03-31 09:00 EDT",
            "2028-04-30 09:00 EDT",
            "2028-05-31 09:00 EDT",
            "2028-06-30 09:00 EDT",
        ],
    ),
    case(
        "monthly 31st in a common year's February",
        "monthly 31 09:00",
        UTC,
        "2027-01-31T09:00:00Z",
        &[
            "2027-02-28T09:00:00Z",
            "2027-03-31T09:00:00Z",
            "2027-04-30T09:00:00Z",
        ],
    ),
    case(
        "monthly 30th in February",
        "monthly 30 18:00",
        BERLIN,
        "2028-01-30 18:00",
        &[
            "2028-02-29 18:00 CET",
            "2028-03-30 18:00 CEST",
            "2028-04-30 18:00 CEST",
        ],
    ),
    case(
        "monthly 29th: the leap day in 2028",
        "monthly 29 07:15",
        UTC,
        "2028-01-30T00:00:00Z",
        &["2028-02-29T07:15:00Z", "2028-03-29T07:15:00Z"],
    ),
    case(
        "monthly 29th: the 28th in common-year February 2027",
        "monthly 29 07:15",
        UTC,
        "2027-01-01T00:00:00Z",
        &[
            "2027-01-29T07:15:00Z",
            "2027-02-28T07:15:00Z",
            "2027-03-29T07:15:00Z",
        ],
    ),
    case(
        "monthly 28th is the 28th in every February",
        "monthly 28 07:15",
        UTC,
        "2028-01-29T00:00:00Z",
        &["2028-02-28T07:15:00Z", "2028-03-28T07:15:00Z"],
    ),
    // New York, spring forward: 2026-03-08 02:00 EST → 03:00 EDT.
    case(
        "daily 02:30 in New York's spring gap runs at 03:00 EDT",
        "daily 02:30",
        NY,
        "2026-03-06 12:00",
        &[
            "2026-03-07 02:30 EST",
            "2026-03-08 03:00 EDT",
            "2026-03-09 02:30 EDT",
        ],
    ),
    case(
        "the same, in UTC",
        "daily 02:30",
        NY,
        "2026-03-06 12:00",
        &[
            "2026-03-07T07:30:00Z",
            "2026-03-08T07:00:00Z",
            "2026-03-09T06:30:00Z",
        ],
    ),
    case(
        "daily 02:00, the first wall time of the gap",
        "daily 02:00",
        NY,
        "2026-03-07 12:00",
        &["2026-03-08 03:00 EDT", "2026-03-09 02:00 EDT"],
    ),
    case(
        "daily 03:00, the first wall time after the gap",
        "daily 03:00",
        NY,
        "2026-03-07 12:00",
        &["2026-03-08 03:00 EDT", "2026-03-09 03:00 EDT"],
    ),
    case(
        "daily 01:59 just before the gap",
        "daily 01:59",
        NY,
        "2026-03-07 12:00",
        &["2026-03-08 01:59 EST", "2026-03-09 01:59 EDT"],
    ),
    // New York, fall back: 2026-11-01 02:00 EDT → 01:00 EST.
    case(
        "daily 01:30 in New York's repeated hour runs once, at 01:30 EDT",
        "daily 01:30",
        NY,
        "2026-10-31 12:00",
        &[
            "2026-11-01 01:30 EDT",
            "2026-11-02 01:30 EST",
            "2026-11-03 01:30 EST",
        ],
    ),
    case(
        "the same, in UTC: 25 hours to the next run",
        "daily 01:30",
        NY,
        "2026-10-31 12:00",
        &["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
    ),
    case(
        "after the first 01:30 of the fold the second is not a run",
        "daily 01:30",
        NY,
        "2026-11-01T05:30:00Z",
        &["2026-11-02 01:30 EST"],
    ),
    case(
        "from inside the repeated hour, before its second 01:30",
        "daily 01:30",
        NY,
        "2026-11-01T06:10:00Z",
        &["2026-11-02 01:30 EST"],
    ),
    case(
        "daily 02:00 on the fall-back day is not ambiguous",
        "daily 02:00",
        NY,
        "2026-10-31 12:00",
        &["2026-11-01 02:00 EST", "2026-11-02 02:00 EST"],
    ),
    // Berlin: 2026-03-29 02:00 CET → 03:00 CEST; 2026-10-25 03:00 CEST → 02:00 CET.
    case(
        "daily 02:30 in Berlin's spring gap runs at 03:00 CEST",
        "daily 02:30",
        BERLIN,
        "2026-03-28 12:00",
        &["2026-03-29 03:00 CEST", "2026-03-30 02:30 CEST"],
    ),
    case(
        "Berlin's gap in UTC",
        "daily 02:30",
        BERLIN,
        "2026-03-28 12:00",
        &["2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"],
    ),
    case(
        "daily 02:30 in Berlin's repeated hour runs at 02:30 CEST",
        "daily 02:30",
        BERLIN,
        "2026-10-24 12:00",
        &["2026-10-25 02:30 CEST", "2026-10-26 02:30 CET"],
    ),
    case(
        "weekly on Sunday 02:30 through Berlin's fall back",
        "weekly 6 02:30",
        BERLIN,
        "2026-10-18 12:00",
        &[
            "2026-10-25 02:30 CEST",
            "2026-11-01 02:30 CET",
            "2026-11-08 02:30 CET",
        ],
    ),
    // Sydney: 2026-04-05 03:00 AEDT → 02:00 AEST; 2026-10-04 02:00 AEST → 03:00 AEDT.
    case(
        "daily 02:30 in Sydney's repeated hour (April) runs at 02:30 AEDT",
        "daily 02:30",
        SYDNEY,
        "2026-04-04 12:00",
        &["2026-04-05 02:30 AEDT", "2026-04-06 02:30 AEST"],
    ),
    case(
        "Sydney's fold in UTC",
        "daily 02:30",
        SYDNEY,
        "2026-04-04 12:00",
        &["2026-04-04T15:30:00Z", "2026-04-05T16:30:00Z"],
    ),
    case(
        "daily 02:30 in Sydney's spring gap (October) runs at 03:00 AEDT",
        "daily 02:30",
        SYDNEY,
        "2026-10-03 12:00",
        &["2026-10-04 03:00 AEDT", "2026-10-05 02:30 AEDT"],
    ),
    // Weekly keeps the wall time across a change.
    case(
        "weekly Monday 09:00 keeps 09:00 local across New York's spring forward",
        "weekly 0 09:00",
        NY,
        "2026-03-01 00:00",
        &[
            "2026-03-02 09:00 EST",
            "2026-03-09 09:00 EDT",
            "2026-03-16 09:00 EDT",
        ],
    ),
    case(
        "the same in UTC: 167 hours apart across the change",
        "weekly 0 09:00",
        NY,
        "2026-03-01 00:00",
        &["2026-03-02T14:00:00Z", "2026-03-09T13:00:00Z"],
    ),
    case(
        "weekly Friday 17:30 across Berlin's fall back",
        "weekly 4 17:30",
        BERLIN,
        "2026-10-20 00:00",
        &["2026-10-23T15:30:00Z", "2026-10-30T16:30:00Z"],
    ),
    case(
        "weekly Sunday 02:30 on New York's spring-forward Sunday",
        "weekly 6 02:30",
        NY,
        "2026-03-02 00:00",
        &["2026-03-08 03:00 EDT", "2026-03-15 02:30 EDT"],
    ),
    case(
        "monthly on the 8th at 02:30 meets New York's gap",
        "monthly 8 02:30",
        NY,
        "2026-02-10 00:00",
        &["2026-03-08 03:00 EDT", "2026-04-08 02:30 EDT"],
    ),
    // Cron.
    case(
        "cron 0 2 * * MON",
        "cron 0 2 * * MON",
        NY,
        "2026-03-04 00:00",
        &[
            "2026-03-09 02:00 EDT",
            "2026-03-16 02:00 EDT",
            "2026-03-23 02:00 EDT",
        ],
    ),
    case(
        "cron 30 2 * * * in New York's gap",
        "cron 30 2 * * *",
        NY,
        "2026-03-07 03:00",
        &["2026-03-08 03:00 EDT", "2026-03-09 02:30 EDT"],
    ),
    case(
        "cron 30 2 * * * in Sydney's gap",
        "cron 30 2 * * *",
        SYDNEY,
        "2026-10-03 12:00",
        &["2026-10-04 03:00 AEDT", "2026-10-05 02:30 AEDT"],
    ),
    case(
        "cron */15 across New York's fall back: the repeated hour once, nothing twice",
        "cron */15 * * * *",
        NY,
        "2026-11-01T04:40:00Z",
        &[
            "2026-11-01 00:45 EDT",
            "2026-11-01 01:00 EDT",
            "2026-11-01 01:15 EDT",
            "2026-11-01 01:30 EDT",
            "2026-11-01 01:45 EDT",
            "2026-11-01 02:00 EST",
            "2026-11-01 02:15 EST",
        ],
    ),
    case(
        "cron */15 from inside the repeated hour goes on at 02:00 EST",
        "cron */15 * * * *",
        NY,
        "2026-11-01T06:20:00Z",
        &["2026-11-01 02:00 EST", "2026-11-01 02:15 EST"],
    ),
    case(
        "cron */15 across New York's spring forward: the gap once, at 03:00",
        "cron */15 * * * *",
        NY,
        "2026-03-08 01:40",
        &[
            "2026-03-08 01:45 EST",
            "2026-03-08 03:00 EDT",
            "2026-03-08 03:15 EDT",
        ],
    ),
    case(
        "cron */15 across Berlin's fall back",
        "cron */15 * * * *",
        BERLIN,
        "2026-10-24T23:50:00Z",
        &[
            "2026-10-25 02:00 CEST",
            "2026-10-25 02:15 CEST",
            "2026-10-25 02:30 CEST",
            "2026-10-25 02:45 CEST",
            "2026-10-25 03:00 CET",
            "2026-10-25 03:15 CET",
        ],
    ),
    case(
        "cron 0 * * * * across Sydney's fall back: 02:00 AEDT, then 03:00 AEST two hours later, 04:00 AEST",
        "cron 0 * * * *",
        SYDNEY,
        "2026-04-04T14:30:00Z",
        &[
            "2026-04-05 02:00 AEDT",
            "2026-04-05 03:00 AEST",
            "2026-04-04T18:00:00Z",
        ],
    ),
    case(
        "cron 0 0 29 2 *: leap days only",
        "cron 0 0 29 2 *",
        UTC,
        "2026-01-01T00:00:00Z",
        &["2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"],
    ),
    case(
        "cron 0 0 29 2 * waits eight years across 2100",
        "cron 0 0 29 2 *",
        UTC,
        "2096-03-01T00:00:00Z",
        &["2104-02-29T00:00:00Z"],
    ),
    case(
        "cron 0 9 1 * MON: the 1st or any Monday",
        "cron 0 9 1 * MON",
        NY,
        "2026-06-02 00:00",
        &[
            "2026-06-08 09:00 EDT",
            "2026-06-15 09:00 EDT",
            "2026-06-22 09:00 EDT",
            "2026-06-29 09:00 EDT",
            "2026-07-01 09:00 EDT",
            "2026-07-06 09:00 EDT",
        ],
    ),
    case(
        "cron 0 0 */2 * MON: a day field starting with * makes both fields apply (Vixie cron)",
        "cron 0 0 */2 * MON",
        UTC,
        "2026-01-01T00:00:00Z",
        &[
            "2026-01-05T00:00:00Z",
            "2026-01-19T00:00:00Z",
            "2026-02-09T00:00:00Z",
        ],
    ),
    case(
        "cron 0 8-18/2 * * 1-5: even hours of weekdays",
        "cron 0 8-18/2 * * 1-5",
        UTC,
        "2026-01-09T17:00:00Z",
        &[
            "2026-01-09T18:00:00Z",
            "2026-01-12T08:00:00Z",
            "2026-01-12T10:00:00Z",
            "2026-01-12T12:00:00Z",
            "2026-01-12T14:00:00Z",
            "2026-01-12T16:00:00Z",
            "2026-01-12T18:00:00Z",
            "2026-01-13T08:00:00Z",
        ],
    ),
    case(
        "cron names, lists and Sunday as 7",
        "cron 30 6 * jan,JUL 7",
        UTC,
        "2026-01-20T00:00:00Z",
        &[
            "2026-01-25T06:30:00Z",
            "2026-07-05T06:30:00Z",
            "2026-07-12T06:30:00Z",
        ],
    ),
    case(
        "cron 0 0 31 * * skips the short months (no moving to the last day)",
        "cron 0 0 31 * *",
        UTC,
        "2026-01-31T00:00:00Z",
        &[
            "2026-03-31T00:00:00Z",
            "2026-05-31T00:00:00Z",
            "2026-07-31T00:00:00Z",
            "2026-08-31T00:00:00Z",
        ],
    ),
    case(
        "cron 59 23 31 12 *: the year's last minute, into the next year",
        "cron 59 23 31 12 *",
        SYDNEY,
        "2026-12-31 23:59",
        &["2027-12-31 23:59 AEDT"],
    ),
    case_ending(
        "cron 0 0 30 2 * never runs",
        "cron 0 0 30 2 *",
        NY,
        "2026-01-01 00:00",
        &[],
    ),
    case_ending(
        "cron 0 0 31 4,6,9,11 * never runs",
        "cron 0 0 31 4,6,9,11 *",
        UTC,
        "2026-01-01T00:00:00Z",
        &[],
    ),
];

#[test]
fn next_runs() {
    let mut failures = Vec::new();
    for case in CASES {
        let schedule = schedule(case.schedule, case.zone);
        let after = instant(case.after, case.zone);
        let wanted = case.runs.len() + usize::from(case.ends);
        let found = schedule.preview(after, wanted);
        let rendered: Vec<String> = found
            .iter()
            .zip(case.runs.iter().chain(case.runs.last()))
            .map(|(&at, like)| render(at, case.zone, like))
            .collect();
        let complete = !case.ends || found.len() == case.runs.len();
        if rendered.iter().take(case.runs.len()).ne(case.runs.iter()) || !complete {
            failures.push(format!(
                "{}\n  {} in {} after {}\n  expected {:?}{}\n  found    {:?}",
                case.name,
                case.schedule,
                case.zone,
                case.after,
                case.runs,
                if case.ends { " and no more" } else { "" },
                rendered,
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

/// An invalid schedule in, every field named (with the reason) out.
struct Invalid {
    schedule_type: ScheduleType,
    config: ScheduleConfig,
    zone: &'static str,
    errors: Vec<(&'static str, &'static str)>,
}

fn cron_config(cron: &str) -> ScheduleConfig {
    ScheduleConfig {
        cron: Some(cron.to_owned()),
        ..ScheduleConfig::default()
    }
}

fn timed(time: &str, day_of_week: Option<u8>, day_of_month: Option<u8>) -> ScheduleConfig {
    ScheduleConfig {
        time: Some(time.to_owned()),
        day_of_week,
        day_of_month,
        cron: None,
    }
}

fn bad_cron(cron: &str, message: &'static str) -> Invalid {
    Invalid {
        schedule_type: ScheduleType::Cron,
        config: cron_config(cron),
        zone: "UTC",
        errors: vec![("schedule_config.cron", message)],
    }
}

fn invalid_cases() -> Vec<Invalid> {
    use ScheduleType::*;
    vec![
        bad_cron("0 25 * * *", "hour: 25 is out of range 0-23"),
        bad_cron("60 * * * *", "minute: 60 is out of range 0-59"),
        bad_cron("0 0 0 * *", "day-of-month: 0 is out of range 1-31"),
        bad_cron("0 0 32 * *", "day-of-month: 32 is out of range 1-31"),
        bad_cron("0 0 * 13 *", "month: 13 is out of range 1-12"),
        bad_cron("0 0 * * 8", "day-of-week: 8 is out of range 0-7"),
        bad_cron(
            "0 0 * * FUN",
            "day-of-week: \"FUN\" is not a number or a day name (SUN-SAT)",
        ),
        bad_cron(
            "0 0 * SMARCH *",
            "month: \"SMARCH\" is not a number or a month name (JAN-DEC)",
        ),
        bad_cron("0 noon * * *", "hour: \"noon\" is not a number"),
        bad_cron(
            "* * * *",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 4",
        ),
        bad_cron(
            "0 0 * * * 2026",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 6",
        ),
        bad_cron(
            "",
            "expected 5 fields (minute hour day-of-month month day-of-week), got 0",
        ),
        bad_cron("*/0 * * * *", "minute: step in \"*/0\" must be at least 1"),
        bad_cron("*/x * * * *", "minute: step in \"*/x\" is not a number"),
        bad_cron(
            "0/15 * * * *",
            "minute: a step needs a range or * before it (\"0/15\": write 0-59/15)",
        ),
        bad_cron(
            "0 18-8 * * *",
            "hour: range \"18-8\" runs backwards; write it as a list of two ranges",
        ),
        bad_cron(
            "0 9 * * FRI-MON",
            "day-of-week: range \"FRI-MON\" runs backwards; write it as a list of two ranges",
        ),
        bad_cron("1,,2 * * * *", "minute: empty list item in \"1,,2\""),
        bad_cron("-5 * * * *", "minute: \"\" is not a number"),
        bad_cron("0 0 L * *", "day-of-month: \"L\" is not a number"),
        bad_cron("0 0 ? * MON", "day-of-month: \"?\" is not a number"),
        Invalid {
            schedule_type: Cron,
            config: ScheduleConfig::default(),
            zone: "UTC",
            errors: vec![("schedule_config.cron", "is required for cron schedules")],
        },
        Invalid {
            schedule_type: Daily,
            config: timed("09:00", None, None),
            zone: "Mars/Olympus",
            errors: vec![(
                "timezone",
                "\"Mars/Olympus\" is not a time zone of the IANA database",
            )],
        },
        Invalid {
            schedule_type: Daily,
            config: timed("09:00", None, None),
            zone: "america/new_york",
            errors: vec![(
                "timezone",
                "\"america/new_york\" is not a time zone of the IANA database",
            )],
        },
        Invalid {
            schedule_type: Daily,
            config: timed("25:00", None, None),
            zone: "UTC",
            errors: vec![(
                "schedule_config.time",
                "\"25:00\" is not a time of day; expected HH:MM from 00:00 to 23:59",
            )],
        },
        Invalid {
            schedule_type: Daily,
            config: timed("12:60", None, None),
            zone: "UTC",
            errors: vec![(
                "schedule_config.time",
                "\"12:60\" is not a time of day; expected HH:MM from 00:00 to 23:59",
            )],
        },
        Invalid {
            schedule_type: Daily,
            config: timed("9:00", None, None),
            zone: "UTC",
            errors: vec![(
                "schedule_config.time",
                "\"9:00\" is not a time of day; expected HH:MM from 00:00 to 23:59",
            )],
        },
        Invalid {
            schedule_type: Daily,
            config: ScheduleConfig::default(),
            zone: "UTC",
            errors: vec![("schedule_config.time", "is required (HH:MM, local time)")],
        },
        Invalid {
            schedule_type: Weekly,
            config: timed("09:00", Some(7), None),
            zone: "UTC",
            errors: vec![(
                "schedule_config.day_of_week",
                "must be 0 (Monday) to 6 (Sunday), got 7",
            )],
        },
        Invalid {
            schedule_type: Weekly,
            config: timed("09:00", None, None),
            zone: "UTC",
            errors: vec![(
                "schedule_config.day_of_week",
                "is required for weekly schedules",
            )],
        },
        Invalid {
            schedule_type: Monthly,
            config: timed("09:00", None, Some(0)),
            zone: "UTC",
            errors: vec![("schedule_config.day_of_month", "must be 1 to 31, got 0")],
        },
        Invalid {
            schedule_type: Monthly,
            config: timed("09:00", None, Some(32)),
            zone: "UTC",
            errors: vec![("schedule_config.day_of_month", "must be 1 to 31, got 32")],
        },
        Invalid {
            schedule_type: Monthly,
            config: timed("09:00", None, None),
            zone: "UTC",
            errors: vec![(
                "schedule_config.day_of_month",
                "is required for monthly schedules",
            )],
        },
        Invalid {
            schedule_type: Daily,
            config: ScheduleConfig {
                cron: Some("0 9 * * *".to_owned()),
                ..timed("09:00", Some(1), None)
            },
            zone: "UTC",
            errors: vec![
                ("schedule_config.cron", "is not used by daily schedules"),
                (
                    "schedule_config.day_of_week",
                    "is not used by daily schedules",
                ),
            ],
        },
        Invalid {
            schedule_type: Cron,
            config: ScheduleConfig {
                cron: Some("0 9 * * *".to_owned()),
                ..timed("09:00", None, None)
            },
            zone: "UTC",
            errors: vec![("schedule_config.time", "is not used by cron schedules")],
        },
        // Every problem at once, in field order.
        Invalid {
            schedule_type: Monthly,
            config: timed("24:00", None, Some(32)),
            zone: "Mars/Olympus",
            errors: vec![
                (
                    "timezone",
                    "\"Mars/Olympus\" is not a time zone of the IANA database",
                ),
                (
                    "schedule_config.time",
                    "\"24:00\" is not a time of day; expected HH:MM from 00:00 to 23:59",
                ),
                ("schedule_config.day_of_month", "must be 1 to 31, got 32"),
            ],
        },
        Invalid {
            schedule_type: Cron,
            config: cron_config("0 0 * * 7-1"),
            zone: "Mars/Olympus",
            errors: vec![
                (
                    "timezone",
                    "\"Mars/Olympus\" is not a time zone of the IANA database",
                ),
                (
                    "schedule_config.cron",
                    "day-of-week: range \"7-1\" runs backwards; write it as a list of two ranges",
                ),
            ],
        },
    ]
}

#[test]
fn invalid_schedules_name_their_fields() {
    let mut failures = Vec::new();
    for case in invalid_cases() {
        let found: Vec<(String, String)> =
            match Schedule::new(case.schedule_type, &case.config, case.zone) {
                Ok(_) => Vec::new(),
                Err(errors) => errors.into_iter().map(|e| (e.field, e.message)).collect(),
            };
        let expected: Vec<(String, String)> = case
            .errors
            .iter()
            .map(|&(field, message)| (field.to_owned(), message.to_owned()))
            .collect();
        if found != expected {
            failures.push(format!(
                "{} {:?} in {:?}\n  expected {expected:?}\n  found    {found:?}",
                case.schedule_type, case.config, case.zone
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn valid_schedules_in_other_spellings_are_accepted() {
    for (spec, zone) in [
        ("cron * * * * *", "UTC"),
        ("cron 0-59/1 0-23 1-31 1-12 0-7", "Etc/GMT+5"),
        ("cron 0,30 9-17 * * mon-fri", "US/Eastern"),
        ("cron 0 0 1 jan-dec/3 *", "Asia/Kolkata"),
        ("daily 00:00", "Pacific/Chatham"),
        ("weekly 6 23:59", "Australia/Lord_Howe"),
        ("monthly 31 12:00", "Pacific/Apia"),
    ] {
        schedule(spec, zone);
    }
}

#[test]
fn preview_is_next_after_repeated() {
    for (spec, zone, after) in [
        ("weekly 2 08:00", BERLIN, "2026-03-01 00:00"),
        ("cron */15 * * * *", NY, "2026-11-01 00:00"),
        ("cron 30 2 * * *", SYDNEY, "2026-09-30 00:00"),
        ("monthly 31 23:30", UTC, "2027-12-01T00:00:00Z"),
    ] {
        let schedule = schedule(spec, zone);
        let after = instant(after, zone);
        let preview = schedule.preview(after, 12);
        assert_eq!(preview.len(), 12, "{spec}");
        let mut at = after;
        for &run in &preview {
            at = schedule.next_after(at).unwrap();
            assert_eq!(at, run, "{spec} in {zone}");
        }
    }
    let weekly = schedule("weekly 0 09:00", NY);
    let runs: Vec<String> = weekly
        .preview(instant("2026-02-20 00:00", NY), 4)
        .into_iter()
        .map(|at| render(at, NY, ""))
        .collect();
    assert_eq!(
        runs,
        [
            "2026-02-23 09:00 EST",
            "2026-03-02 09:00 EST",
            "2026-03-09 09:00 EDT",
            "2026-03-16 09:00 EDT",
        ]
    );
    assert!(
        weekly
            .preview(instant("2026-02-20 00:00", NY), 0)
            .is_empty()
    );
    let never = schedule("cron 0 0 30 2 *", UTC);
    assert!(
        never
            .preview(instant("2026-01-01T00:00:00Z", UTC), 5)
            .is_empty()
    );
}

/// Every wall time of a year, in zones with and without daylight saving and with odd offsets:
/// runs strictly increase, and each local day has the runs its wall times call for.
#[test]
fn runs_strictly_increase_through_a_whole_year() {
    for zone in [
        NY,
        BERLIN,
        SYDNEY,
        "Australia/Lord_Howe",
        "Asia/Kathmandu",
        UTC,
    ] {
        let tz: Tz = zone.parse().unwrap();
        let start = instant("2026-01-01T00:00:00Z", UTC);
        let end = instant("2027-01-01T00:00:00Z", UTC);

        let quarter_hours = schedule("cron */15 * * * *", zone);
        let runs: Vec<_> = quarter_hours
            .runs_after(start - chrono::TimeDelta::seconds(1))
            .take_while(|&at| at < end)
            .collect();
        assert!(runs.windows(2).all(|w| w[0] < w[1]), "{zone}");
        // Every quarter hour of the year's UTC time line is a run but the second pass of a
        // fold's wall times (a gap loses wall times, not instants: its end is a run anyway).
        let quarter_hours_of_year = 365 * 24 * 4;
        let missing = quarter_hours_of_year - runs.len();
        let expected_missing = match zone {
            UTC | "Asia/Kathmandu" => 0,
            // Lord Howe moves its clocks by 30 minutes.
            "Australia/Lord_Howe" => 2,
            _ => 4,
        };
        assert_eq!(missing, expected_missing, "{zone}");

        let daily = schedule("daily 02:30", zone);
        let days: Vec<_> = daily.runs_after(start).take_while(|&at| at < end).collect();
        assert_eq!(days.len(), 365, "{zone}");
        let dates: std::collections::BTreeSet<_> = days
            .iter()
            .map(|at| at.with_timezone(&tz).date_naive())
            .collect();
        assert_eq!(dates.len(), 365, "{zone}: one run per local day");
    }
}

#[test]
fn a_schedule_that_never_runs_answers_quickly() {
    let started = std::time::Instant::now();
    for cron in ["0 0 30 2 *", "0 0 31 2,4,6,9,11 *", "*/5 * 31 11 *"] {
        let never = schedule(&format!("cron {cron}"), NY);
        assert_eq!(never.next_after(instant("2026-01-01T00:00:00Z", UTC)), None);
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn due_after_three_days_down_is_the_latest_with_two_skipped() {
    let daily = schedule("daily 09:00", NY);
    let last_run = instant("2026-03-01 09:00", NY);
    let now = instant("2026-03-04 10:00", NY);
    assert_eq!(
        daily.due_between(last_run, now),
        Due {
            latest: Some(instant("2026-03-04 09:00", NY)),
            skipped: 2,
            next: Some(instant("2026-03-05 09:00", NY)),
        }
    );
}

#[test]
fn due_between_edges() {
    let daily = schedule("daily 09:00", NY);
    let at = |text| instant(text, NY);
    // Nothing due yet.
    assert_eq!(
        daily.due_between(at("2026-03-04 09:00"), at("2026-03-04 10:00")),
        Due {
            latest: None,
            skipped: 0,
            next: Some(at("2026-03-05 09:00")),
        }
    );
    // A due time exactly at now is due; the one at `since` was handled.
    assert_eq!(
        daily.due_between(at("2026-03-04 09:00"), at("2026-03-05 09:00")),
        Due {
            latest: Some(at("2026-03-05 09:00")),
            skipped: 0,
            next: Some(at("2026-03-06 09:00")),
        }
    );
    // A clock behind the last run: nothing due, the next after the last run.
    assert_eq!(
        daily.due_between(at("2026-03-04 09:00"), at("2026-03-03 12:00")),
        Due {
            latest: None,
            skipped: 0,
            next: Some(at("2026-03-05 09:00")),
        }
    );
    // Down across the spring gap: the gap's two wall times make one due time.
    let gap = schedule("cron */30 2 * * *", NY);
    let due = gap.due_between(at("2026-03-07 02:30"), at("2026-03-09 02:00"));
    assert_eq!(
        due,
        Due {
            latest: Some(at("2026-03-09 02:00")),
            skipped: 1,
            next: Some(at("2026-03-09 02:30")),
        }
    );
    // A minutely cron down for a month: still one run.
    let minutely = schedule("cron * * * * *", UTC);
    let due = minutely.due_between(
        instant("2026-01-01T00:00:00Z", UTC),
        instant("2026-01-31T00:00:30Z", UTC),
    );
    assert_eq!(due.latest, Some(instant("2026-01-31T00:00:00Z", UTC)));
    assert_eq!(due.skipped, 30 * 24 * 60 - 1);
    // Never runs.
    let never = schedule("cron 0 0 30 2 *", UTC);
    assert_eq!(
        never.due_between(
            instant("2026-01-01T00:00:00Z", UTC),
            instant("2036-01-01T00:00:00Z", UTC)
        ),
        Due {
            latest: None,
            skipped: 0,
            next: None,
        }
    );
}

#[test]
fn of_report_reads_the_stored_schedule() {
    let report = export_domain::ScheduledReport {
        schedule_config: timed("07:45", Some(2), None),
        ..export_core::testing::weekly_schedule(
            uuid_nil(),
            uuid_nil(),
            instant("2026-01-01T00:00:00Z", UTC),
        )
    };
    let schedule = Schedule::of_report(&report).unwrap();
    assert_eq!(
        schedule.next_after(report.created_at),
        Some(instant("2026-01-07 07:45", BERLIN))
    );
}

fn uuid_nil() -> uuid::Uuid {
    uuid::Uuid::nil()
}
