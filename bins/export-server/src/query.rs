//! Query strings as typed values: `Query<T>` parses `?a=1&b=2` into `T` (declared with
//! `#[serde(deny_unknown_fields)]`), and the parameter types below check their values, so an
//! unknown or repeated parameter, or a value of the wrong form, is a 400 `bad_request` whose
//! `field` names the parameter.

use std::future::{Ready, ready};
use std::str::FromStr;

use actix_web::{FromRequest, HttpRequest, dev::Payload};
use export_domain::{ExportType, JobStatus};
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use uuid::Uuid;

use crate::error::{ApiError, unknown_field_name};

/// The query string of a request as `T`.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned> FromRequest for Query<T> {
    type Error = ApiError;
    type Future = Ready<Result<Query<T>, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(Query))
    }
}

/// Parses a query string (without its `?`) into `T`, naming the parameter at fault.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<T, ApiError> {
    let parameters = serde_urlencoded::Deserializer::new(form_urlencoded::parse(text.as_bytes()));
    serde_path_to_error::deserialize(parameters).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        match (path != ".").then_some(path) {
            Some(field) => ApiError::bad_request(format!("{field} {message}")).with_field(field),
            None => match unknown_field_name(&message) {
                Some(field) => {
                    ApiError::bad_request(format!("query parameter {message}")).with_field(field)
                }
                None => ApiError::bad_request(format!("the query is not valid: {message}")),
            },
        }
    })
}

/// One parameter's value as `T`, the parameter named when it is refused: for a query whose other
/// parameters are open-ended (the audit trail's filters, which its dataset declares).
pub fn value<'a, T: Deserialize<'a>>(name: &str, text: &'a str) -> Result<T, ApiError> {
    T::deserialize(serde::de::value::StrDeserializer::<serde::de::value::Error>::new(text))
        .map_err(|err| ApiError::bad_request(format!("{name} {err}")).with_field(name))
}

/// A whole number from `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounded<const MIN: i64, const MAX: i64>(pub i64);

impl<'de, const MIN: i64, const MAX: i64> Deserialize<'de> for Bounded<MIN, MAX> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse::<i64>()
            .ok()
            .filter(|n| (MIN..=MAX).contains(n))
            .map(Bounded)
            .ok_or_else(|| D::Error::custom(format!("must be a whole number from {MIN} to {MAX}")))
    }
}

/// A whole number (an audit sequence, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Whole(pub i64);

impl<'de> Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map(Whole)
            .map_err(|_| D::Error::custom("must be a whole number"))
    }
}

/// A UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Id(pub Uuid);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Uuid::try_parse(&text)
            .map(Id)
            .map_err(|_| D::Error::custom("must be a UUID"))
    }
}

/// A word of the vocabulary `T` (a job status, an export type), refused with the words it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Word<T>(pub T);

/// The vocabularies a query takes words of.
pub trait Vocabulary: FromStr {
    fn expected() -> String;
}

impl Vocabulary for JobStatus {
    fn expected() -> String {
        JobStatus::expected()
    }
}

impl Vocabulary for ExportType {
    fn expected() -> String {
        ExportType::expected()
    }
}

impl<'de, T: Vocabulary> Deserialize<'de> for Word<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map(Word).map_err(|_| {
            D::Error::custom(format!("must be one of: {}", <T as Vocabulary>::expected()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Page {
        limit: Option<Bounded<1, 1000>>,
        status: Option<Word<JobStatus>>,
        patient_id: Option<Id>,
    }

    fn field(text: &str) -> Option<String> {
        parse::<Page>(text).unwrap_err().field
    }

    #[test]
    fn values_and_parameters_are_named_when_refused() {
        let page: Page =
            parse("limit=10&status=completed&patient_id=4333a588-c713-5117-85aa-6c9dc288e1df")
                .unwrap();
        assert_eq!(page.limit, Some(Bounded(10)));
        assert!(page.patient_id.is_some());
        assert_eq!(page.status, Some(Word(JobStatus::Completed)));
        assert!(parse::<Page>("").unwrap().limit.is_none());
        for (query, named) in [
            ("limit=0", "limit"),
            ("limit=abc", "limit"),
            ("limit=1001", "limit"),
            ("status=done", "status"),
            ("patient_id=nope", "patient_id"),
            ("colour=red", "colour"),
            ("limit=1&limit=2", "limit"),
        ] {
            assert_eq!(field(query).as_deref(), Some(named), "{query}");
        }
        let refusal = parse::<Page>("limit=0").unwrap_err();
        assert_eq!(
            refusal.message,
            "limit must be a whole number from 1 to 1000"
        );
        let refusal = parse::<Page>("colour=red").unwrap_err();
        assert!(refusal.message.contains("`colour`"), "{}", refusal.message);
        assert!(
            refusal.message.contains("`limit`"),
            "names the known: {}",
            refusal.message
        );
    }
}
