//! Conversions between column values and domain values: UUID text, vocabulary words, JSON text
//! and UTC timestamps.

use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, Utc};
use export_domain::UnknownVariant;
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::StoreError;

pub(crate) fn id(column: &'static str, text: &str) -> Result<Uuid, StoreError> {
    Uuid::parse_str(text).map_err(|_| StoreError::Corrupt {
        column,
        reason: "not a UUID".to_owned(),
    })
}

pub(crate) fn opt_id(column: &'static str, text: Option<&str>) -> Result<Option<Uuid>, StoreError> {
    text.map(|t| id(column, t)).transpose()
}

pub(crate) fn opt_text(id: Option<Uuid>) -> Option<String> {
    id.map(|id| id.to_string())
}

pub(crate) fn word<T: FromStr<Err = UnknownVariant>>(
    column: &'static str,
    text: &str,
) -> Result<T, StoreError> {
    text.parse()
        .map_err(|err: UnknownVariant| StoreError::Corrupt {
            column,
            reason: format!("expected one of {}", err.expected),
        })
}

pub(crate) fn json<T: DeserializeOwned>(column: &'static str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|err| StoreError::Corrupt {
        column,
        // serde's message can quote the value; keep only where it broke.
        reason: format!(
            "invalid JSON at line {} column {}",
            err.line(),
            err.column()
        ),
    })
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("domain values always serialize to JSON")
}

pub(crate) fn utc(at: NaiveDateTime) -> DateTime<Utc> {
    at.and_utc()
}

pub(crate) fn naive(at: DateTime<Utc>) -> NaiveDateTime {
    at.naive_utc()
}
