//! `Schedule`: a checked schedule (type, configuration, time zone) and the questions asked of it:
//! the next run, the next few, and what fell due while no scheduler ran.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, Utc, Weekday};
use chrono_tz::Tz;
use export_domain::{FieldError, ScheduleConfig, ScheduleType, ScheduledReport};

use crate::cron::Cron;
use crate::local::first_instant_at;

/// How far past the last run found (or the start) a search looks before it concludes that the
/// schedule never runs again: a little over eight years, the longest wait of any schedule that
/// runs at all (`0 0 29 2 *` waits from 2096 to 2104, 2100 not being a leap year).
pub const SEARCH_HORIZON_DAYS: u64 = 8 * 366 + 2;

/// When a report runs: a rule over local wall times and the time zone they are read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    zone: Tz,
    rule: Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    /// Every day at a minute of the day (`hour * 60 + minute`).
    Daily {
        at: u32,
    },
    Weekly {
        weekday: Weekday,
        at: u32,
    },
    /// On `day` of each month, or the month's last day when it is shorter.
    Monthly {
        day: u32,
        at: u32,
    },
    Cron(Cron),
}

/// What fell due between the last run handled and now, for the scheduler's tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The most recent due time in (since, now]: the one run to make.
    pub latest: Option<DateTime<Utc>>,
    /// How many earlier due times in (since, now] are coalesced into `latest` and not run.
    pub skipped: u32,
    /// The first due time after now (or after `since`, if that is later): the next to wait for.
    pub next: Option<DateTime<Utc>>,
}

impl Schedule {
    /// Checks a schedule and builds it, or names the field of every problem: `timezone`,
    /// `schedule_config.time`, `schedule_config.day_of_week`, `schedule_config.day_of_month`,
    /// `schedule_config.cron`.
    pub fn new(
        schedule_type: ScheduleType,
        config: &ScheduleConfig,
        timezone: &str,
    ) -> Result<Schedule, Vec<FieldError>> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldError {
                field: field.to_owned(),
                message,
            })
        };
        let zone = timezone.parse::<Tz>().ok();
        if zone.is_none() {
            problem(
                "timezone",
                format!("{timezone:?} is not a time zone of the IANA database"),
            );
        }
        let unused = |given: bool, field: &str, problem: &mut dyn FnMut(&str, String)| {
            if given {
                problem(field, format!("is not used by {schedule_type} schedules"));
            }
        };
        let rule = if schedule_type == ScheduleType::Cron {
            unused(config.time.is_some(), "schedule_config.time", &mut problem);
            unused(
                config.day_of_week.is_some(),
                "schedule_config.day_of_week",
                &mut problem,
            );
            unused(
                config.day_of_month.is_some(),
                "schedule_config.day_of_month",
                &mut problem,
            );
            match config.cron.as_deref() {
                None => {
                    problem(
                        "schedule_config.cron",
                        "is required for cron schedules".to_owned(),
                    );
                    None
                }
                Some(text) => match Cron::parse(text) {
                    Ok(cron) => Some(Rule::Cron(cron)),
                    Err(why) => {
                        problem("schedule_config.cron", why);
                        None
                    }
                },
            }
        } else {
            unused(config.cron.is_some(), "schedule_config.cron", &mut problem);
            let at = match config.time.as_deref() {
                None => {
                    problem(
                        "schedule_config.time",
                        "is required (HH:MM, local time)".to_owned(),
                    );
                    None
                }
                Some(text) => {
                    let at = minute_of_day(text);
                    if at.is_none() {
                        problem(
                            "schedule_config.time",
                            format!(
                                "{text:?} is not a time of day; expected HH:MM from 00:00 to 23:59"
                            ),
                        );
                    }
                    at
                }
            };
            let weekday = match (schedule_type, config.day_of_week) {
                (ScheduleType::Weekly, None) => {
                    problem(
                        "schedule_config.day_of_week",
                        "is required for weekly schedules".to_owned(),
                    );
                    None
                }
                (ScheduleType::Weekly, Some(day)) => {
                    let weekday = Weekday::try_from(day).ok();
                    if weekday.is_none() {
                        problem(
                            "schedule_config.day_of_week",
                            format!("must be 0 (Monday) to 6 (Sunday), got {day}"),
                        );
                    }
                    weekday
                }
                (_, given) => {
                    unused(given.is_some(), "schedule_config.day_of_week", &mut problem);
                    None
                }
            };
            let day = match (schedule_type, config.day_of_month) {
                (ScheduleType::Monthly, None) => {
                    problem(
                        "schedule_config.day_of_month",
                        "is required for monthly schedules".to_owned(),
                    );
                    None
                }
                (ScheduleType::Monthly, Some(day @ 1..=31)) => Some(u32::from(day)),
                (ScheduleType::Monthly, Some(day)) => {
                    problem(
                        "schedule_config.day_of_month",
                        format!("must be 1 to 31, got {day}"),
                    );
                    None
                }
                (_, given) => {
                    unused(
                        given.is_some(),
                        "schedule_config.day_of_month",
                        &mut problem,
                    );
                    None
                }
            };
            match (schedule_type, at, weekday, day) {
                (ScheduleType::Daily, Some(at), _, _) => Some(Rule::Daily { at }),
                (ScheduleType::Weekly, Some(at), Some(weekday), _) => {
                    Some(Rule::Weekly { weekday, at })
                }
                (ScheduleType::Monthly, Some(at), _, Some(day)) => Some(Rule::Monthly { day, at }),
                _ => None,
            }
        };
        match (zone, rule) {
            (Some(zone), Some(rule)) if problems.is_empty() => Ok(Schedule { zone, rule }),
            _ => Err(problems),
        }
    }

    /// The schedule of a stored report.
    pub fn of_report(report: &ScheduledReport) -> Result<Schedule, Vec<FieldError>> {
        Schedule::new(
            report.schedule_type,
            &report.schedule_config,
            &report.timezone,
        )
    }

    /// The first run strictly after `after`, or None when there is none within
    /// `SEARCH_HORIZON_DAYS` (a cron expression that names no real day, such as `0 0 30 2 *`).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.runs_after(after).next()
    }

    /// The next `count` runs strictly after `after`, fewer if the schedule stops.
    pub fn preview(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        self.runs_after(after).take(count).collect()
    }

    /// Every run strictly after `after`, in order, each once.
    pub fn runs_after(&self, after: DateTime<Utc>) -> Runs {
        let date = after.with_timezone(&self.zone).date_naive();
        Runs {
            schedule: self.clone(),
            after,
            date,
            minute: 0,
            give_up_after: add_days(date, SEARCH_HORIZON_DAYS),
        }
    }

    /// For the scheduler's tick: the due times in (`since`, `now`], coalesced. `since` is the last
    /// due time already handled (a report's `last_run_at`), or when the schedule was created if it
    /// never ran. After downtime the missed runs are not run one by one: `latest` is run once and
    /// the others are counted in `skipped`.
    pub fn due_between(&self, since: DateTime<Utc>, now: DateTime<Utc>) -> Due {
        let mut runs = self.runs_after(since);
        let mut latest = None;
        let mut skipped = 0u32;
        let next = loop {
            match runs.next() {
                Some(at) if at <= now => {
                    if latest.replace(at).is_some() {
                        skipped = skipped.saturating_add(1);
                    }
                }
                next => break next,
            }
        };
        Due {
            latest,
            skipped,
            next,
        }
    }

    /// The first minute of `date` at or after `from` that the schedule runs at, as wall time.
    fn next_minute_on(&self, date: NaiveDate, from: u32) -> Option<u32> {
        match self.rule {
            Rule::Daily { at } => (from <= at).then_some(at),
            Rule::Weekly { weekday, at } => (date.weekday() == weekday && from <= at).then_some(at),
            Rule::Monthly { day, at } => {
                (date.day() == day.min(last_day_of_month(date)) && from <= at).then_some(at)
            }
            Rule::Cron(cron) => cron
                .matches_day(date)
                .then(|| cron.next_minute_of_day(from))
                .flatten(),
        }
    }
}

/// The runs of a schedule after an instant, in order and each once (`Schedule::runs_after`).
/// Ends when no run comes within `SEARCH_HORIZON_DAYS` of the previous one.
#[derive(Debug, Clone)]
pub struct Runs {
    schedule: Schedule,
    /// Every run yielded is strictly after this: the start, then the last run yielded.
    after: DateTime<Utc>,
    /// The local date being searched, and its first minute not yet looked at.
    date: NaiveDate,
    minute: u32,
    /// The search ends past this date.
    give_up_after: NaiveDate,
}

impl Iterator for Runs {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        // Wall times are visited in order from the start of the local date of `after`, and the
        // instant of a wall time never decreases as the wall time increases, so the first instant
        // past `after` is the next run. Wall times that map to an instant already passed (before
        // `after`, or a second wall time in a gap landing on the gap's end) are passed over.
        while self.date <= self.give_up_after {
            match self.schedule.next_minute_on(self.date, self.minute) {
                Some(minute) => {
                    self.minute = minute + 1;
                    let time = NaiveTime::from_hms_opt(minute / 60, minute % 60, 0)?;
                    let at = first_instant_at(self.schedule.zone, self.date.and_time(time));
                    if at > self.after {
                        self.after = at;
                        self.give_up_after = add_days(self.date, SEARCH_HORIZON_DAYS);
                        return Some(at);
                    }
                }
                None => {
                    self.date = self.date.succ_opt()?;
                    self.minute = 0;
                }
            }
        }
        None
    }
}

/// "HH:MM", two digits each, 00:00 to 23:59, as a minute of the day.
fn minute_of_day(text: &str) -> Option<u32> {
    let (hour, minute) = text.split_once(':')?;
    let two_digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !two_digits(hour) || !two_digits(minute) {
        return None;
    }
    let (hour, minute) = (hour.parse::<u32>().ok()?, minute.parse::<u32>().ok()?);
    (hour < 24 && minute < 60).then_some(hour * 60 + minute)
}

fn last_day_of_month(date: NaiveDate) -> u32 {
    let (year, month) = match date.month() {
        12 => (date.year() + 1, 1),
        month => (date.year(), month + 1),
    };
    NaiveDate::from_ymd_opt(year, month, 1)
        .and_then(|first| first.pred_opt())
        .map_or(31, |last| last.day())
}

fn add_days(date: NaiveDate, days: u64) -> NaiveDate {
    date.checked_add_days(Days::new(days))
        .unwrap_or(NaiveDate::MAX)
}
