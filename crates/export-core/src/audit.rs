//! Verifying the audit trail: walk the hash chain from the first entry and name the first entry
//! that was altered or removed.
//!
//! Each entry's hash covers its content, its place and the previous entry's hash, so editing a
//! row breaks its own hash, recomputing that hash breaks the next entry's link, and deleting a
//! row leaves a gap in the places. Removing entries from the end cannot be seen from the chain
//! alone; the count and head hash this returns are what to record elsewhere to catch that.

use export_domain::{AuditEntry, GENESIS_HASH, chain_hash};
use export_store::audit::{self, AuditFilter};
use export_store::{Store, StoreError};

/// How many entries are read per query while verifying.
const BATCH: i64 = 1_000;

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainReport {
    /// Every entry is in place and unaltered.
    Intact { entries: u64, head_hash: String },
    /// The entry at this place no longer matches its hash (its content was edited), or its hash
    /// no longer matches the link the next entry holds (it was edited and rehashed).
    Altered { sequence: i64 },
    /// The entry at this place is missing.
    Removed { sequence: i64 },
}

impl std::fmt::Display for ChainReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainReport::Intact { entries, head_hash } => {
                write!(
                    f,
                    "audit trail intact: {entries} entries, head hash {head_hash}"
                )
            }
            ChainReport::Altered { sequence } => write!(f, "audit entry {sequence} was altered"),
            ChainReport::Removed { sequence } => write!(f, "audit entry {sequence} was removed"),
        }
    }
}

/// Walks `entries` (in chain order) and reports the first break.
pub fn verify_entries(entries: impl IntoIterator<Item = AuditEntry>) -> ChainReport {
    let mut walker = Walker::default();
    for entry in entries {
        if let Some(report) = walker.step(&entry) {
            return report;
        }
    }
    walker.finish()
}

/// Walks the whole audit trail of `store`, a batch at a time.
pub fn verify_store(store: &Store) -> Result<ChainReport, StoreError> {
    let mut conn = store.connection()?;
    let mut walker = Walker::default();
    loop {
        let filter = AuditFilter {
            after_sequence: Some(walker.last_sequence),
            limit: Some(BATCH),
            ..AuditFilter::default()
        };
        let batch = audit::list(&mut conn, &filter)?;
        if batch.is_empty() {
            return Ok(walker.finish());
        }
        for entry in &batch {
            if let Some(report) = walker.step(entry) {
                return Ok(report);
            }
        }
    }
}

struct Walker {
    last_sequence: i64,
    last_hash: String,
    entries: u64,
}

impl Default for Walker {
    fn default() -> Self {
        Walker {
            last_sequence: 0,
            last_hash: GENESIS_HASH.to_owned(),
            entries: 0,
        }
    }
}

impl Walker {
    fn step(&mut self, entry: &AuditEntry) -> Option<ChainReport> {
        let expected = self.last_sequence + 1;
        if entry.sequence != expected {
            return Some(ChainReport::Removed { sequence: expected });
        }
        if entry.prev_hash != self.last_hash {
            // The link to the previous entry broke: that entry was rewritten, hash and all.
            return Some(ChainReport::Altered {
                sequence: self.last_sequence,
            });
        }
        if chain_hash(&entry.prev_hash, entry.sequence, &entry.entry) != entry.entry_hash {
            return Some(ChainReport::Altered {
                sequence: entry.sequence,
            });
        }
        self.last_sequence = entry.sequence;
        self.last_hash.clone_from(&entry.entry_hash);
        self.entries += 1;
        None
    }

    fn finish(self) -> ChainReport {
        ChainReport::Intact {
            entries: self.entries,
            head_hash: self.last_hash,
        }
    }
}
