//! Repository of the audit trail: entries are appended to a hash chain and never updated or
//! deleted through this module.

use chrono::NaiveDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use export_domain::{AuditAction, AuditEntry, GENESIS_HASH, NewAuditEntry, chain_hash};
use uuid::Uuid;

use crate::convert::{id, json, naive, opt_id, opt_text, to_json, utc, word};
use crate::schema::export_audit_log;
use crate::{DbConnection, StoreError};

#[derive(Queryable, Selectable, Insertable)]
#[diesel(table_name = export_audit_log)]
struct AuditRow {
    id: String,
    sequence: i64,
    export_job_id: Option<String>,
    user_id: Option<String>,
    patient_id: Option<String>,
    action: String,
    outcome: String,
    ip_address: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    metadata: String,
    created_at: NaiveDateTime,
    prev_hash: String,
    entry_hash: String,
}

impl AuditRow {
    fn of(entry: &AuditEntry) -> AuditRow {
        let e = &entry.entry;
        AuditRow {
            id: e.id.to_string(),
            sequence: entry.sequence,
            export_job_id: opt_text(e.export_job_id),
            user_id: opt_text(e.user_id),
            patient_id: opt_text(e.patient_id),
            action: e.action.as_str().to_owned(),
            outcome: e.outcome.as_str().to_owned(),
            ip_address: e.ip_address.clone(),
            user_agent: e.user_agent.clone(),
            request_id: e.request_id.clone(),
            metadata: to_json(&e.metadata),
            created_at: naive(e.created_at),
            prev_hash: entry.prev_hash.clone(),
            entry_hash: entry.entry_hash.clone(),
        }
    }

    fn into_entry(self) -> Result<AuditEntry, StoreError> {
        Ok(AuditEntry {
            sequence: self.sequence,
            entry: NewAuditEntry {
                id: id("export_audit_log.id", &self.id)?,
                export_job_id: opt_id(
                    "export_audit_log.export_job_id",
                    self.export_job_id.as_deref(),
                )?,
                user_id: opt_id("export_audit_log.user_id", self.user_id.as_deref())?,
                patient_id: opt_id("export_audit_log.patient_id", self.patient_id.as_deref())?,
                action: word("export_audit_log.action", &self.action)?,
                outcome: word("export_audit_log.outcome", &self.outcome)?,
                ip_address: self.ip_address,
                user_agent: self.user_agent,
                request_id: self.request_id,
                metadata: json("export_audit_log.metadata", &self.metadata)?,
                created_at: utc(self.created_at),
            },
            prev_hash: self.prev_hash,
            entry_hash: self.entry_hash,
        })
    }
}

/// Appends `entry` after the last one in the chain and returns it with its place and hashes.
///
/// On PostgreSQL appends take a transaction-scoped advisory lock, so concurrent writers queue up
/// and never race for a place. On SQLite writers are serialised by the database itself; a writer
/// that read a stale last place gets [`StoreError::AuditSequenceTaken`] and should retry its
/// transaction. Either way nothing forks the chain.
pub fn append(conn: &mut DbConnection, entry: NewAuditEntry) -> Result<AuditEntry, StoreError> {
    conn.transaction(|conn| {
        queue_for_append(conn)?;
        append_unlocked(conn, entry)
    })
}

/// Queues the transaction on `conn` behind every other audit writer until it ends (PostgreSQL's
/// transaction-scoped advisory lock; SQLite admits one writer at a time already). For a
/// transaction that reads the trail and then appends to it, so that nobody appends in between.
/// Call it inside a transaction.
pub fn queue_for_append(conn: &mut DbConnection) -> Result<(), StoreError> {
    if matches!(conn, DbConnection::Postgres(_)) {
        conn.batch_execute(&format!("SELECT pg_advisory_xact_lock({AUDIT_LOCK})"))?;
    }
    Ok(())
}

/// The advisory lock key that serialises audit appends on PostgreSQL.
const AUDIT_LOCK: i64 = 0x6578_706f_7274; // "export"

fn append_unlocked(
    conn: &mut DbConnection,
    entry: NewAuditEntry,
) -> Result<AuditEntry, StoreError> {
    // The entry with the highest sequence, without a bound LIMIT (SQLite would prepare such a
    // statement anew on every append).
    let latest: Option<i64> = export_audit_log::table
        .select(diesel::dsl::max(export_audit_log::sequence))
        .get_result(conn)?;
    let last: Option<(i64, String)> = match latest {
        Some(sequence) => Some(
            export_audit_log::table
                .filter(export_audit_log::sequence.eq(sequence))
                .select((export_audit_log::sequence, export_audit_log::entry_hash))
                .get_result(conn)?,
        ),
        None => None,
    };
    let (sequence, prev_hash) = match last {
        Some((sequence, hash)) => (sequence + 1, hash),
        None => (1, GENESIS_HASH.to_owned()),
    };
    let mut entry = entry;
    entry.created_at = export_domain::to_storage_precision(entry.created_at);
    let entry_hash = chain_hash(&prev_hash, sequence, &entry);
    let chained = AuditEntry {
        sequence,
        entry,
        prev_hash,
        entry_hash,
    };
    diesel::insert_into(export_audit_log::table)
        .values(AuditRow::of(&chained))
        .execute(conn)
        .map_err(|err| {
            StoreError::from_write("export_audit_log", err, |constraint| {
                constraint
                    .contains("sequence")
                    .then_some(StoreError::AuditSequenceTaken)
            })
        })?;
    Ok(chained)
}

/// Of `user_id`'s granted export requests at or after `since`, when the `n`th newest was made
/// (`None` when there were fewer than `n`): what a per-user rate limit of `n` asks. The audit
/// trail is append-only, so deleting jobs gives no request back.
pub fn nth_latest_request_since(
    conn: &mut DbConnection,
    user_id: Uuid,
    since: chrono::DateTime<chrono::Utc>,
    n: i64,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
    Ok(export_audit_log::table
        .filter(export_audit_log::user_id.eq(user_id.to_string()))
        .filter(export_audit_log::created_at.ge(crate::convert::naive(since)))
        .filter(export_audit_log::action.eq(AuditAction::Requested.as_str()))
        .filter(export_audit_log::outcome.eq(export_domain::AuditOutcome::Success.as_str()))
        .order(export_audit_log::created_at.desc())
        .select(export_audit_log::created_at)
        .limit(1)
        .offset((n - 1).max(0))
        .get_result::<NaiveDateTime>(conn)
        .optional()?
        .map(crate::convert::utc))
}

/// The sequence of the last entry of the trail, `None` when it is empty.
pub fn last_sequence(conn: &mut DbConnection) -> Result<Option<i64>, StoreError> {
    Ok(export_audit_log::table
        .select(diesel::dsl::max(export_audit_log::sequence))
        .get_result(conn)?)
}

/// Which entries [`list`] returns.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub export_job_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub patient_id: Option<Uuid>,
    pub action: Option<AuditAction>,
    /// Only entries after this place in the chain.
    pub after_sequence: Option<i64>,
    /// Only entries made on or after this day (UTC).
    pub from: Option<chrono::NaiveDate>,
    /// Only entries made on or before this day (UTC).
    pub to: Option<chrono::NaiveDate>,
    /// At most this many; `None` for all.
    pub limit: Option<i64>,
}

/// Entries in chain order, filtered as `filter` says.
pub fn list(conn: &mut DbConnection, filter: &AuditFilter) -> Result<Vec<AuditEntry>, StoreError> {
    let mut query = export_audit_log::table
        .select(AuditRow::as_select())
        .into_boxed();
    if let Some(job_id) = filter.export_job_id {
        query = query.filter(export_audit_log::export_job_id.eq(job_id.to_string()));
    }
    if let Some(user_id) = filter.user_id {
        query = query.filter(export_audit_log::user_id.eq(user_id.to_string()));
    }
    if let Some(patient_id) = filter.patient_id {
        query = query.filter(export_audit_log::patient_id.eq(patient_id.to_string()));
    }
    if let Some(action) = filter.action {
        query = query.filter(export_audit_log::action.eq(action.as_str()));
    }
    if let Some(after) = filter.after_sequence {
        query = query.filter(export_audit_log::sequence.gt(after));
    }
    if let Some(from) = filter.from {
        query =
            query.filter(export_audit_log::created_at.ge(from.and_time(chrono::NaiveTime::MIN)));
    }
    if let Some(to) = filter.to.and_then(|to| to.succ_opt()) {
        query = query.filter(export_audit_log::created_at.lt(to.and_time(chrono::NaiveTime::MIN)));
    }
    if let Some(limit) = filter.limit {
        query = query.limit(limit.max(0));
    }
    query
        .order(export_audit_log::sequence.asc())
        .load(conn)?
        .into_iter()
        .map(AuditRow::into_entry)
        .collect()
}
