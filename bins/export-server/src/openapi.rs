//! The OpenAPI 3 document of the API, served at `/api/v1/openapi.json`.

pub const DOCUMENT: &str = include_str!("openapi.json");
