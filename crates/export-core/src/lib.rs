//! Orchestration of the export engine. Today: gathering a patient's clinical records into the
//! context of each document type (`gather`), verifying the audit trail's hash chain (`audit`),
//! keeping export files encrypted at rest (`storage`), and signing download links (`links`). The job engine (submit, claim, render, store,
//! audit, download, expire) and the `ClinicalSource`, `Dataset`, `JobStore` and `FileStore`
//! traits come with the job-engine issue.
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
pub mod worker;
