//! From a local wall time in a time zone to the one instant a schedule runs at, through daylight
//! saving gaps and folds.

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

/// The instant a schedule that names `local` runs at: the first instant whose wall time in `zone`
/// reaches `local`.
///
/// That is the one instant of a plain local time; the earlier of two in a fold (the hour repeated
/// when clocks go back); and in a gap (the hour skipped when clocks go forward) the instant the gap
/// ends, whose wall time is the first valid one after it (02:30 in a 02:00→03:00 gap runs at
/// 03:00). The instant never decreases as `local` increases, which is what lets `Runs` walk
/// wall times in order and yield instants in order.
pub(crate) fn first_instant_at(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    match zone.from_local_datetime(&local) {
        chrono::LocalResult::Single(at) => at.with_timezone(&Utc),
        chrono::LocalResult::Ambiguous(one, other) => one.min(other).with_timezone(&Utc),
        chrono::LocalResult::None => end_of_gap(zone, local),
    }
}

/// The instant a gap containing `local` ends: the first whose wall time is at or after `local`.
fn end_of_gap(zone: Tz, local: NaiveDateTime) -> DateTime<Utc> {
    // Offsets in the time zone database stay within ±16 hours (historical local mean times
    // included), so 26 hours either side of `local` read as UTC brackets the gap: the wall time
    // at `before` is earlier than `local`, at `after` later. Gaps are at most a day long (Samoa
    // skipped 2011-12-30) and never follow another transition within a day, so between the two
    // the wall time reaches `local` exactly once.
    let reaches = |second: i64| match DateTime::from_timestamp(second, 0) {
        Some(at) => at.with_timezone(&zone).naive_local() >= local,
        None => second > 0,
    };
    const BRACKET: i64 = 26 * 60 * 60;
    let guess = local.and_utc().timestamp();
    let (mut before, mut after) = (guess - BRACKET, guess + BRACKET);
    debug_assert!(!reaches(before) && reaches(after));
    while after - before > 1 {
        let middle = before + (after - before) / 2;
        if reaches(middle) {
            after = middle;
        } else {
            before = middle;
        }
    }
    DateTime::from_timestamp(after, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}
