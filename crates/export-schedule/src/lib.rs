//! Scheduling of reports: schedule maths (time zones, daylight saving, cron), the due-report tick,
//! and delivery by email or to storage.
//!
//! The schedule maths ([`Schedule`]) is pure: no IO and no clock. Every question takes the instant
//! it is asked about (`after`, `now`) from the caller, and every answer is an instant in UTC. The
//! [`scheduler`] module stores scheduled reports and turns due times into export jobs, exactly
//! once however many schedulers tick.
//!
//! # Schedules
//!
//! A [`Schedule`] is built by [`Schedule::new`] from a `ScheduleType`, a `ScheduleConfig` and an
//! IANA time zone name, which is where the time zone is checked and the cron expression parsed;
//! every problem comes back as a `FieldError` naming its field (`timezone`,
//! `schedule_config.time`, `schedule_config.day_of_week`, `schedule_config.day_of_month`,
//! `schedule_config.cron`). Every schedule names local wall times in its zone:
//!
//! - daily: every day at `time` (HH:MM);
//! - weekly: on `day_of_week` (0 = Monday … 6 = Sunday) at `time`;
//! - monthly: on `day_of_month` at `time`; a day past the month's end means the month's last
//!   day (the 31st runs on 30 April and on 28 or 29 February, the 29th on 28 February in a common
//!   year);
//! - cron: five fields, `minute hour day-of-month month day-of-week`, each `*`, a number, a range
//!   `a-b`, a step `*/n` or `a-b/n`, or a comma-separated list of those; months `JAN`…`DEC`, days
//!   `SUN`…`SAT` (0 and 7 are Sunday). When both day fields are restricted a day runs if either
//!   matches (`0 9 1 * MON`: the 1st, and every Monday); as in Vixie cron, a day field starting
//!   with `*` (`*`, `*/2`) counts as unrestricted, and then both must match. Unlike monthly
//!   schedules, cron does not move a missing day: `0 0 31 * *` skips the short months, and
//!   `0 0 30 2 *` never runs. `5/15` is refused (write `5-59/15`), as are backwards ranges and
//!   steps of 0.
//!
//! # Daylight saving
//!
//! A wall time runs at the first instant whose wall time in the zone reaches it. So:
//!
//! - a wall time that exists once runs then;
//! - a wall time that does not exist (skipped when clocks go forward: 02:30 in New York on
//!   8 March 2026) runs once at the first valid instant after the gap, the instant the clocks
//!   jump (03:00 EDT); several wall times in one gap (a cron's 02:00, 02:15, 02:30, 02:45) make
//!   one run there, not several;
//! - a wall time that exists twice (repeated when clocks go back: 01:30 in New York on 1 November
//!   2026) runs once, at its first occurrence (01:30 EDT), never again at the second (01:30 EST).
//!   A cron such as `*/15 * * * *` runs 01:00…01:45 EDT and then 02:00 EST: the repeated hour is
//!   not run twice, and runs never go backwards or repeat;
//! - a schedule keeps its wall time across a change: a weekly 09:00 run is at 09:00 local in
//!   winter and in summer, 167 or 169 hours after the previous one.
//!
//! Because the instant of a wall time never decreases as the wall time increases, the runs come
//! out in order by walking wall times in order ([`Runs`]).
//!
//! # Questions
//!
//! [`Schedule::next_after`] gives the first run strictly after an instant (a run exactly at `now`
//! is already past), [`Schedule::preview`] the next few, and [`Schedule::due_between`] what the
//! scheduler's tick should run: of the due times in (`since`, `now`], the latest, with the count
//! of earlier ones it stands for (missed while no scheduler ran), and the next due time. Searches
//! are bounded: when no run comes within [`SEARCH_HORIZON_DAYS`] (a little over eight years, the
//! longest gap of a schedule that runs at all: 29 February across 2100) of the last, there is none.

mod cron;
pub mod email;
mod local;
mod schedule;
pub mod scheduler;

pub use schedule::{Due, Runs, SEARCH_HORIZON_DAYS, Schedule};
