//! The hash chain of the audit trail: each entry's hash covers its content and the hash of the
//! entry before it, so altering or removing an entry breaks every hash after it.

use sha2::{Digest, Sha256};

use crate::records::NewAuditEntry;

/// The previous hash of the first entry in the chain.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of the entry at `sequence` whose predecessor hashed to `prev_hash`: lowercase hex
/// SHA-256 over the previous hash, the sequence and the entry's canonical JSON (struct field order,
/// metadata keys sorted).
pub fn chain_hash(prev_hash: &str, sequence: i64, entry: &NewAuditEntry) -> String {
    let canonical = serde_json::to_vec(entry).expect("an audit entry always serializes");
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(sequence.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(&canonical);
    to_hex(&hasher.finalize())
}

/// Lower-case hex of `bytes`, as digests and keys are written (the `hex` crate's encoding).
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::vocabulary::{AuditAction, AuditOutcome};

    fn entry() -> NewAuditEntry {
        NewAuditEntry {
            id: Uuid::from_u128(1),
            export_job_id: Some(Uuid::from_u128(2)),
            user_id: Some(Uuid::from_u128(3)),
            patient_id: None,
            action: AuditAction::Downloaded,
            outcome: AuditOutcome::Success,
            ip_address: Some("::1".into()),
            user_agent: None,
            request_id: None,
            metadata: serde_json::json!({"b": 1, "a": 2}),
            created_at: Utc.with_ymd_and_hms(2025, 1, 15, 14, 30, 0).unwrap(),
        }
    }

    #[test]
    fn hash_depends_on_content_place_and_predecessor() {
        let base = chain_hash(GENESIS_HASH, 1, &entry());
        assert_eq!(base.len(), 64);
        assert_eq!(base, chain_hash(GENESIS_HASH, 1, &entry()));
        assert_ne!(base, chain_hash(GENESIS_HASH, 2, &entry()));
        assert_ne!(base, chain_hash(&base, 1, &entry()));
        let mut altered = entry();
        altered.ip_address = Some("10.0.0.1".into());
        assert_ne!(base, chain_hash(GENESIS_HASH, 1, &altered));
    }
}
