//! Persistence of the export engine: the diesel schema, migrations for SQLite and PostgreSQL
//! embedded in the binary and applied at start-up, an r2d2 pool over either backend, and one
//! repository module per table group.
//!
//! Architecture invariant: this is the only crate that knows diesel. Repositories take and return
//! `export-domain` types; callers compose them in [`Store::transaction`].

mod convert;
mod db;
mod error;
mod schema;

pub mod audit;
pub mod clinical;
pub mod jobs;
pub mod runs;
pub mod schedules;
pub mod seed;
pub mod templates;
#[cfg(feature = "testing")]
pub mod testing;

pub use db::{Backend, DbConnection, Store, StoreOptions};
pub use error::StoreError;
