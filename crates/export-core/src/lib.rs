//! Orchestration of the export engine: submit, claim, gather, render, store, complete, audit,
//! download, delete and expire export jobs; the `ClinicalSource`, `Dataset`, `JobStore` and
//! `FileStore` traits; signed links.
//!
//! Empty for now: the job-engine issue fills it. It will know no HTTP types; the server maps its
//! errors to responses.
