//! The export engine another Rust service embeds, or the server runs: `engine::ExportEngine`
//! submits exports on behalf of users (authorization, idempotency, audit), `worker::WorkerPool`
//! produces them with leases renewed while they render, `storage` keeps the files encrypted at rest
//! (a directory, or an S3 bucket with the `s3` feature), and the engine hands them back by
//! download or signed link (`links`), cancels, deletes and expires them. Records come through the
//! `source::ClinicalSource` trait and tabular exports through the `dataset::Dataset` trait, both
//! implementable by the host; `gather` and `produce` turn records into files; `audit` verifies the
//! hash chain; `metrics` and `queries` answer what a server asks.
//!
//! Architecture invariant: this crate knows no HTTP types; the server maps its errors to
//! responses.

pub mod audit;
pub mod dataset;
pub mod engine;
pub mod gather;
pub mod links;
pub mod metrics;
pub mod produce;
pub mod queries;
pub mod source;
pub mod storage;
#[cfg(feature = "testing")]
pub mod testing;
pub mod worker;
