//! The one error type of the store. Messages name tables, columns and constraints, never the
//! values in them: a value may be protected health information.

use diesel::result::{DatabaseErrorKind, Error as DieselError};

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unsupported database url; expected postgres://…, sqlite://… or a file path")]
    UnsupportedUrl,
    #[error("cannot connect to the database: {0}")]
    Connect(#[from] diesel::ConnectionError),
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("cannot prepare the database: {0}")]
    Setup(String),
    #[error("database migration failed: {0}")]
    Migration(String),
    #[error("a template with this name already exists for this owner")]
    TemplateNameTaken,
    #[error("an active schedule already exists for this owner, template and patient")]
    ScheduleAlreadyActive,
    #[error("a job with this idempotency key already exists for this user")]
    IdempotencyKeyTaken,
    #[error("the audit trail moved on while this entry was appended; retry")]
    AuditSequenceTaken,
    #[error("a {table} row with this id already exists")]
    AlreadyExists { table: &'static str },
    #[error("a {table} row with this {what} already exists")]
    Duplicate {
        table: &'static str,
        what: &'static str,
    },
    #[error("the {table} row refers to a row that does not exist, or is still referred to")]
    ForeignKey { table: &'static str },
    #[error("stored value in {column} is not valid: {reason}")]
    Corrupt {
        column: &'static str,
        reason: String,
    },
    #[error(transparent)]
    Query(DieselError),
}

impl StoreError {
    /// Whether the database could not be reached: no pooled connection within the pool's
    /// connection timeout (the server is down, refuses connections, or every connection is in
    /// use), a connection that could not be made, or one that broke while in use (a terminated
    /// backend, a dropped network). Trying again later may succeed; nothing about the request
    /// was wrong.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Connect(_)
                | StoreError::Pool(_)
                | StoreError::Query(DieselError::DatabaseError(
                    DatabaseErrorKind::ClosedConnection,
                    _
                ))
        )
    }

    /// Whether SQLite refused because another connection holds the write lock and waiting could
    /// not help (a read transaction that wanted to write after another writer committed): the
    /// whole transaction should be tried again.
    pub fn is_busy(&self) -> bool {
        match self {
            StoreError::Query(DieselError::DatabaseError(_, info)) => {
                let message = info.message();
                message.contains("database is locked")
                    || message.contains("database table is locked")
            }
            _ => false,
        }
    }
}

impl From<DieselError> for StoreError {
    fn from(err: DieselError) -> Self {
        StoreError::Query(err)
    }
}

impl StoreError {
    /// Turns a failed insert or update of `table` into a typed error: a unique violation is
    /// handed to `on_unique` with the constraint text the database reported (an index name on
    /// PostgreSQL, the column list on SQLite); a foreign-key violation names the table.
    pub(crate) fn from_write(
        table: &'static str,
        err: DieselError,
        on_unique: impl FnOnce(&str) -> Option<StoreError>,
    ) -> StoreError {
        match &err {
            DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info) => {
                let constraint = info.constraint_name().unwrap_or(info.message()).to_owned();
                if constraint.ends_with("_pkey") || constraint.ends_with(&format!("{table}.id")) {
                    return StoreError::AlreadyExists { table };
                }
                on_unique(&constraint).unwrap_or(StoreError::Query(err))
            }
            DieselError::DatabaseError(DatabaseErrorKind::ForeignKeyViolation, _) => {
                StoreError::ForeignKey { table }
            }
            _ => StoreError::Query(err),
        }
    }
}
