//! Five-field cron expressions: parsing, with a reason for every refusal, and matching days and
//! times of day.
//!
//! `minute hour day-of-month month day-of-week`, each field `*`, a number, a range `a-b`, a step
//! over either (`*/15`, `8-18/2`), or a comma-separated list of those. Months take `JAN`…`DEC`
//! and days of the week `SUN`…`SAT` (any case); day of week 0 and 7 are both Sunday.

use chrono::{Datelike, NaiveDate};

/// A parsed cron expression: one bit per allowed value of each field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cron {
    /// Bit `m` for minute `m`, 0…59.
    minutes: u64,
    /// Bit `h` for hour `h`, 0…23.
    hours: u32,
    /// Bit `d` for day `d`, 1…31.
    days_of_month: u32,
    /// Bit `m` for month `m`, 1…12.
    months: u16,
    /// Bit `d` for weekday `d`, 0 = Sunday … 6 = Saturday.
    days_of_week: u8,
    /// Whether both day fields are restricted, so a day matching either runs.
    either_day: bool,
}

/// What one field accepts, for parsing and for error messages.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    /// Three-letter names of the values from `min` on, upper case.
    names: &'static [&'static str],
    /// How the names are described in errors.
    names_hint: &'static str,
}

const MINUTE: Field = Field {
    name: "minute",
    min: 0,
    max: 59,
    names: &[],
    names_hint: "",
};
const HOUR: Field = Field {
    name: "hour",
    min: 0,
    max: 23,
    names: &[],
    names_hint: "",
};
const DAY_OF_MONTH: Field = Field {
    name: "day-of-month",
    min: 1,
    max: 31,
    names: &[],
    names_hint: "",
};
const MONTH: Field = Field {
    name: "month",
    min: 1,
    max: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    names_hint: " or a month name (JAN-DEC)",
};
const DAY_OF_WEEK: Field = Field {
    name: "day-of-week",
    min: 0,
    max: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    names_hint: " or a day name (SUN-SAT)",
};

impl Cron {
    /// Parses `text`, or says what is wrong with it (lowercase, no trailing period).
    pub(crate) fn parse(text: &str) -> Result<Cron, String> {
        let fields: Vec<&str> = text.split_whitespace().collect();
        let [minute, hour, day_of_month, month, day_of_week] = fields[..] else {
            return Err(format!(
                "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
                fields.len()
            ));
        };
        let days_of_week = parse_field(day_of_week, &DAY_OF_WEEK)?;
        Ok(Cron {
            minutes: parse_field(minute, &MINUTE)?,
            hours: parse_field(hour, &HOUR)? as u32,
            days_of_month: parse_field(day_of_month, &DAY_OF_MONTH)? as u32,
            months: parse_field(month, &MONTH)? as u16,
            // 7 is Sunday too.
            days_of_week: ((days_of_week | days_of_week >> 7) & 0x7f) as u8,
            // As in Vixie cron (and crontab.guru): a day field that starts with `*` (`*`, `*/2`)
            // is unrestricted, and the other day field alone decides.
            either_day: !day_of_month.starts_with('*') && !day_of_week.starts_with('*'),
        })
    }

    /// Whether the expression runs on `date` at some time of day.
    pub(crate) fn matches_day(&self, date: NaiveDate) -> bool {
        if self.months & (1 << date.month()) == 0 {
            return false;
        }
        let by_month_day = self.days_of_month & (1 << date.day()) != 0;
        let by_weekday = self.days_of_week & (1 << date.weekday().num_days_from_sunday()) != 0;
        if self.either_day {
            by_month_day || by_weekday
        } else {
            by_month_day && by_weekday
        }
    }

    /// The first minute of the day (`hour * 60 + minute`) at or after `from` that the expression
    /// names, whatever the day.
    pub(crate) fn next_minute_of_day(&self, from: u32) -> Option<u32> {
        let (from_hour, from_minute) = (from / 60, from % 60);
        (from_hour..24)
            .filter(|&hour| self.hours & (1 << hour) != 0)
            .find_map(|hour| {
                let start = if hour == from_hour { from_minute } else { 0 };
                let minutes = self.minutes & (u64::MAX << start);
                (minutes != 0).then(|| hour * 60 + minutes.trailing_zeros())
            })
    }
}

/// One field: a comma-separated list of `*`, values and ranges, each with an optional step.
fn parse_field(text: &str, field: &Field) -> Result<u64, String> {
    let name = field.name;
    let mut bits = 0u64;
    for item in text.split(',') {
        if item.is_empty() {
            return Err(format!("{name}: empty list item in {text:?}"));
        }
        let (span, step_text) = match item.split_once('/') {
            None => (item, None),
            Some((span, step)) => (span, Some(step)),
        };
        let step = step_text
            .map(|step| parse_step(step, item, field))
            .transpose()?;
        let (low, high) = if span == "*" {
            (field.min, field.max)
        } else if let Some((low, high)) = span.split_once('-') {
            let (low, high) = (parse_value(low, field)?, parse_value(high, field)?);
            if low > high {
                return Err(format!(
                    "{name}: range {span:?} runs backwards; write it as a list of two ranges"
                ));
            }
            (low, high)
        } else {
            let value = parse_value(span, field)?;
            if step.is_some() {
                return Err(format!(
                    "{name}: a step needs a range or * before it ({item:?}: write {span}-{}/{})",
                    field.max,
                    step_text.unwrap_or_default()
                ));
            }
            (value, value)
        };
        let step = step.unwrap_or(1);
        bits |= (low..=high)
            .step_by(step as usize)
            .fold(0, |bits, value| bits | 1 << value);
    }
    Ok(bits)
}

fn parse_step(text: &str, item: &str, field: &Field) -> Result<u32, String> {
    let name = field.name;
    match parse_number(text) {
        Some(0) => Err(format!("{name}: step in {item:?} must be at least 1")),
        Some(step) => Ok(step),
        None => Err(format!("{name}: step in {item:?} is not a number")),
    }
}

fn parse_value(text: &str, field: &Field) -> Result<u32, String> {
    let name = field.name;
    let value = match parse_number(text) {
        Some(value) => value,
        None => match field
            .names
            .iter()
            .position(|known| known.eq_ignore_ascii_case(text))
        {
            Some(index) => field.min + index as u32,
            None => {
                return Err(format!(
                    "{name}: {text:?} is not a number{}",
                    field.names_hint
                ));
            }
        },
    };
    if !(field.min..=field.max).contains(&value) {
        return Err(format!(
            "{name}: {text} is out of range {}-{}",
            field.min, field.max
        ));
    }
    Ok(value)
}

/// Decimal digits only (no sign, no spaces); None when too large to matter.
fn parse_number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minutes_of(cron: &str) -> Vec<u32> {
        let cron = Cron::parse(cron).unwrap();
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(minute) = cron.next_minute_of_day(from) {
            found.push(minute);
            from = minute + 1;
        }
        found
    }

    #[test]
    fn minutes_of_the_day_come_in_order() {
        assert_eq!(
            minutes_of("*/20 9,13 * * *"),
            [540, 560, 580, 780, 800, 820]
        );
        assert_eq!(minutes_of("59 23 * * *"), [1439]);
        assert_eq!(minutes_of("0 8-18/4 * * *"), [480, 720, 960]);
    }

    #[test]
    fn names_and_sunday_seven() {
        let by_name = Cron::parse("0 0 * jan-mar/2 Sun,SAT").unwrap();
        let by_number = Cron::parse("0 0 * 1,3 6-7").unwrap();
        assert_eq!(by_name, by_number);
    }

    #[test]
    fn huge_numbers_are_out_of_range() {
        assert_eq!(
            Cron::parse("99999999999 * * * *").unwrap_err(),
            "minute: 99999999999 is out of range 0-59"
        );
    }
}
