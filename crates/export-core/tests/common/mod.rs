//! The engine's tests use the crate's test kit (`export_core::testing`, the `testing` feature):
//! engines over seeded test databases, the actors, and the independent readers of files.
#![allow(unused_imports)] // each test binary uses its own part

pub use export_core::testing::*;
