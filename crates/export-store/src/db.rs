//! Connecting: one diesel connection type over SQLite and PostgreSQL, an r2d2 pool of it (closed
//! for good when the last handle is dropped), the SQLite settings every connection gets, and the
//! embedded migrations of each backend.

use std::sync::Arc;
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::{Connection, PgConnection, SqliteConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use scheduled_thread_pool::{OnPoolDropBehavior, ScheduledThreadPool};

use crate::StoreError;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT_MS: u32 = 5_000;

/// How long dropping a store's last handle waits for a connection its pool is still opening.
const CLOSE_WAIT: Duration = Duration::from_secs(10);

/// A connection to either backend; repositories take `&mut DbConnection`.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgres(PgConnection),
    Sqlite(SqliteConnection),
}

impl std::fmt::Debug for DbConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DbConnection::Postgres(_) => "DbConnection::Postgres",
            DbConnection::Sqlite(_) => "DbConnection::Sqlite",
        })
    }
}

/// Which database a store talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names: `postgres://` or `postgresql://` for PostgreSQL;
    /// `sqlite://PATH`, `file:PATH` or a plain path for SQLite.
    pub fn of_url(url: &str) -> Result<(Backend, String), StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok((Backend::Postgres, url.to_owned()));
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .or_else(|| url.strip_prefix("file:"))
            .unwrap_or(url);
        if path.is_empty() || path.contains("://") {
            return Err(StoreError::UnsupportedUrl);
        }
        Ok((Backend::Sqlite, path.to_owned()))
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// Idle connections kept open ahead of need, opened in the background: 1 for a long-running
    /// process; 0 for a one-shot command, which then opens only the connections it takes.
    pub min_idle: u32,
    /// How long taking a connection waits for one to be free or made; then the caller gets
    /// an error for which [`StoreError::is_unavailable`] holds (the API answers 503).
    pub connection_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            min_idle: 1,
            // Long enough for a busy pool to free a connection, short enough that a database
            // that is down is reported while the client still waits: 5 s, SQLite's busy
            // timeout too.
            connection_timeout: Duration::from_secs(5),
        }
    }
}

/// Applies the SQLite settings to every new connection: foreign keys enforced and a busy timeout
/// instead of instant failure.
#[derive(Debug)]
struct SqliteSettings;

impl CustomizeConnection<DbConnection, diesel::r2d2::Error> for SqliteSettings {
    fn on_acquire(&self, conn: &mut DbConnection) -> Result<(), diesel::r2d2::Error> {
        if let DbConnection::Sqlite(conn) = conn {
            // The WAL journal mode is a property of the file, set once in `Store::open_with`.
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS};
                 PRAGMA synchronous = NORMAL;
                 PRAGMA foreign_keys = ON;"
            ))
            .map_err(diesel::r2d2::Error::QueryError)?;
        }
        Ok(())
    }
}

/// A pool of connections to one database, migrated. Clones share the pool; when the last one is
/// dropped (take connections back first), the pool closes and the drop returns once no thread of
/// it can touch the database any more.
#[derive(Clone)]
pub struct Store {
    pool: Pool<ConnectionManager<DbConnection>>,
    backend: Backend,
    /// SQLite has one writer at a time. Writers of this process take turns here rather than in
    /// SQLite's busy handler, which sleeps milliseconds between tries; other processes still
    /// meet the busy timeout.
    sqlite_writer: std::sync::Arc<std::sync::Mutex<()>>,
    /// Declared after `pool`: fields drop in order, so the last handle lets go of the pool
    /// before it waits for the pool's thread. Held for its `Drop`, never read.
    #[allow(dead_code)]
    pool_thread: Arc<PoolThread>,
}

/// The one thread on which the pool opens its connections (and closes the ones it retires).
/// Dropped, it waits for the task that thread is running. A process must not exit while that
/// thread is inside libpq: exit tears libpq and OpenSSL down under a TLS handshake in progress,
/// and the process dies of SIGSEGV instead of returning its exit code.
struct PoolThread(Arc<ScheduledThreadPool>);

impl PoolThread {
    fn start() -> PoolThread {
        let threads = ScheduledThreadPool::builder()
            .num_threads(1)
            .thread_name_pattern("r2d2-worker-{}")
            // Once the store is closed, its retries and reaper runs are moot.
            .on_drop_behavior(OnPoolDropBehavior::DiscardPendingScheduled)
            .build();
        PoolThread(Arc::new(threads))
    }
}

impl Drop for PoolThread {
    fn drop(&mut self) {
        // The pool's own handles are gone by now. A task running on the thread holds the pool
        // while it runs and closes it when it ends; a task that starts later finds it gone. The
        // thread runs one task at a time, in order, so once this one has run, no task of the
        // pool is running or can start.
        let (ran, wait) = std::sync::mpsc::channel();
        self.0.execute(move || {
            let _ = ran.send(());
        });
        if wait.recv_timeout(CLOSE_WAIT).is_err() {
            log::warn!(
                "a database connection was still being opened {} s after the store was closed",
                CLOSE_WAIT.as_secs()
            );
        }
    }
}

impl std::fmt::Debug for PoolThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PoolThread")
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the database at `url` with default pool settings and applies pending migrations.
    /// A SQLite file (and its folder) is created if missing.
    pub fn open(url: &str) -> Result<Store, StoreError> {
        Store::open_with(url, &StoreOptions::default())
    }

    /// Opens the database at `url` and applies pending migrations.
    pub fn open_with(url: &str, options: &StoreOptions) -> Result<Store, StoreError> {
        let (backend, target) = Backend::of_url(url)?;
        if backend == Backend::Sqlite {
            if let Some(folder) = std::path::Path::new(&target).parent()
                && !folder.as_os_str().is_empty()
            {
                std::fs::create_dir_all(folder).map_err(|err| {
                    StoreError::Setup(format!("cannot create the database folder: {err}"))
                })?;
            }
            // Write-ahead logging, so readers never block the writer. It is stored in the file,
            // and switching it needs the only connection, so it happens before the pool exists.
            let mut conn = SqliteConnection::establish(&target)?;
            conn.batch_execute(&format!(
                "PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}; PRAGMA journal_mode = WAL;"
            ))
            .map_err(|err| StoreError::Setup(format!("cannot switch SQLite to WAL: {err}")))?;
        }
        // The MultiConnection picks PostgreSQL for postgres URLs and SQLite for anything else.
        let manager = ConnectionManager::<DbConnection>::new(target);
        // Made first, so that every way out of here, errors included, waits for its thread.
        let pool_thread = PoolThread::start();
        let pool = Pool::builder()
            .max_size(options.max_connections)
            .min_idle(Some(options.min_idle))
            .connection_timeout(options.connection_timeout)
            .connection_customizer(Box::new(SqliteSettings))
            .thread_pool(pool_thread.0.clone())
            .build(manager)
            .map_err(|err| StoreError::Setup(err.to_string()))?;
        let store = Store {
            pool,
            backend,
            sqlite_writer: std::sync::Arc::default(),
            pool_thread: Arc::new(pool_thread),
        };
        store.migrate()?;
        Ok(store)
    }

    /// The backend this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations not yet applied and returns their versions (none when up to date).
    pub fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.connection()?;
        let migrations = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS,
            Backend::Postgres => POSTGRES_MIGRATIONS,
        };
        let applied = conn
            .run_pending_migrations(migrations)
            .map_err(|err| StoreError::Migration(err.to_string()))?;
        Ok(applied.iter().map(ToString::to_string).collect())
    }

    /// The versions of every migration applied to the database, oldest first.
    pub fn applied_migrations(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.connection()?;
        let mut versions: Vec<String> = conn
            .applied_migrations()
            .map_err(|err| StoreError::Migration(err.to_string()))?
            .iter()
            .map(ToString::to_string)
            .collect();
        versions.sort();
        Ok(versions)
    }

    /// A pooled connection, for reads and single statements.
    pub fn connection(
        &self,
    ) -> Result<PooledConnection<ConnectionManager<DbConnection>>, StoreError> {
        Ok(self.pool.get()?)
    }

    /// Runs `work` in one transaction: all of its writes commit together, or none do. On SQLite
    /// the writers of this process take turns (see [`Store::write_turn`]).
    pub fn transaction<T>(
        &self,
        work: impl FnOnce(&mut DbConnection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut pooled = self.connection()?;
        let _turn = self.write_turn();
        let conn: &mut DbConnection = &mut pooled;
        conn.transaction(work)
    }

    /// On SQLite, waits for this process's turn to write and holds it until dropped; on
    /// PostgreSQL, nothing (it has row locks). Take it around a write outside [`Store::transaction`].
    pub fn write_turn(&self) -> Option<std::sync::MutexGuard<'_, ()>> {
        (self.backend == Backend::Sqlite).then(|| {
            self.sqlite_writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        })
    }
}
