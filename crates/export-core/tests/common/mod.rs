//! What the engine's tests share: an engine over a seeded test database and a folder, the
//! actors, and the independent readers of rendered files (from the store's test kit).
#![allow(dead_code)] // each test binary uses its own part

use std::path::Path;
use std::sync::Arc;

use export_core::engine::{Actor, EngineConfig, ExportEngine};
use export_core::source::StoreSource;
use export_core::storage::{LocalFileStore, MasterKey};
use export_domain::Role;
use export_store::testing::TestDatabase;
use uuid::Uuid;

#[allow(unused_imports)] // not every test binary reads files back
pub use export_store::testing::{docx_text, pdf_text};

/// An engine over `db`, seeded with the fixtures, storing its files in `files`.
pub fn engine(db: &TestDatabase, files: &Path) -> ExportEngine {
    db.seed_fixtures();
    ExportEngine::new(
        db.store.clone(),
        Arc::new(LocalFileStore::new(files, MasterKey::generate()).unwrap()),
        Arc::new(StoreSource(db.store.clone())),
        EngineConfig::default(),
    )
}

/// The user `id` acting as `role`.
pub fn actor(id: &str, role: Role) -> Actor {
    Actor {
        user_id: Uuid::parse_str(id).unwrap(),
        role,
    }
}
