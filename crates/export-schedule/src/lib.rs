//! Scheduling of reports: schedule maths (time zones, daylight saving, cron), the due-report tick,
//! and delivery by email or to storage.
//!
//! Empty for now: the scheduling issue fills it.

pub mod email;
