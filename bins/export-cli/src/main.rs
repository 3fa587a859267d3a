//! `export-cli`: one-shot commands over an export database: apply migrations, seed the demo
//! practice from `fixtures/`, and list what a database holds.

#![allow(clippy::print_stdout)] // printing results is this binary's job

use std::path::PathBuf;

mod bench;
mod render;

use anyhow::Context;
use clap::{Parser, Subcommand};
use export_core::worker::{WorkerConfig, worker_identity};
use export_domain::{ExportFormat, Role};
use export_store::{Store, StoreOptions, clinical, jobs, seed};

/// The database used when neither `--database` nor `EXPORT_DATABASE_URL` names one.
const DEFAULT_DATABASE: &str = "data/export.db";

/// The exit statuses, in `--help` and the README: 1 is only ever a verdict of `audit verify`.
const EXIT_STATUS_HELP: &str = "\
Exit status:
  0  done (audit verify: the audit trail is intact)
  1  audit verify: the audit trail is broken
  2  the command could not do its work: bad arguments, a database that cannot be reached,
     any other error (for audit verify: the trail could not be checked)";

#[derive(Parser, Debug)]
#[command(
    name = "export-cli",
    version,
    about = "One-shot commands of the clinical export engine",
    after_help = EXIT_STATUS_HELP
)]
struct Cli {
    /// Database URL: a SQLite file path (or sqlite://PATH), or postgres://…
    #[arg(long, global = true, env = "EXPORT_DATABASE_URL", default_value = DEFAULT_DATABASE)]
    database: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Walk the hash chain and name the first entry that was altered or removed. Exits with 0
    /// when the trail is intact, 1 when it is broken, 2 when it could not be checked.
    #[command(after_help = EXIT_STATUS_HELP)]
    Verify,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Load a practice (the demo fixtures by default) into the database; rows already there are
    /// left alone, so seeding twice duplicates nothing.
    Seed {
        /// Folder with users.json, therapist_patients.json, therapy_sessions.json, goals.json,
        /// assessments.json, diagnoses.json and treatment_plans.json.
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
    },
    /// Import a full-record JSON export (its "data") into the database; rows already there are
    /// left alone.
    Import {
        /// A file written by `render --type full_record --format json` or the export API.
        #[arg(long)]
        file: PathBuf,
    },
    /// Run a worker process: claim export jobs and produce them until every job is finished (or,
    /// with --watch, until SIGTERM or SIGINT). Several worker processes may share one database.
    /// On a signal it stops claiming, lets running jobs finish within --grace-seconds and hands
    /// the rest back to the queue.
    Work {
        /// Folder the encrypted export files go to.
        #[arg(long, env = "EXPORT_STORAGE_DIR", default_value = "data/files")]
        storage: PathBuf,
        /// The master key (64 hex digits) that wraps every file's key.
        #[arg(long, env = "EXPORT_MASTER_KEY", hide_env_values = true)]
        master_key: String,
        /// This worker's name in job leases; it must be unique among the processes sharing the
        /// database. By default the host name, the process id and a random suffix.
        #[arg(long)]
        name: Option<String>,
        /// Keep polling once the queue is empty instead of stopping.
        #[arg(long)]
        watch: bool,
        /// How many jobs this process produces at once.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// How long a claimed job stays this worker's without a renewal; a dead worker's jobs are
        /// taken over after it.
        #[arg(long, default_value_t = 300)]
        lease_seconds: i64,
        /// How long running jobs may take to finish after a shutdown signal.
        #[arg(long, default_value_t = 30)]
        grace_seconds: u64,
    },
    /// Delete the files of completed exports whose retention has passed, mark them expired and
    /// audit it (the server also does this on a schedule); --dry-run only counts.
    Expire {
        /// Folder the encrypted export files are in.
        #[arg(long, env = "EXPORT_STORAGE_DIR", default_value = "data/files")]
        storage: PathBuf,
        /// The master key (64 hex digits) that wraps every file's key.
        #[arg(long, env = "EXPORT_MASTER_KEY", hide_env_values = true)]
        master_key: String,
        /// Count what would expire without deleting anything.
        #[arg(long)]
        dry_run: bool,
        /// Expire as if it were this time (RFC 3339) instead of now.
        #[arg(long)]
        at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Run the scheduler's tick: turn due scheduled reports into export jobs, once per due time.
    /// With --from/--until it ticks on a simulated clock, every --step-minutes (for tests and
    /// for catching up by hand); otherwise once, now.
    Tick {
        /// Folder the encrypted export files go to.
        #[arg(long, env = "EXPORT_STORAGE_DIR", default_value = "data/files")]
        storage: PathBuf,
        /// The master key (64 hex digits) that wraps every file's key.
        #[arg(long, env = "EXPORT_MASTER_KEY", hide_env_values = true)]
        master_key: String,
        /// First simulated instant (RFC 3339).
        #[arg(long, requires = "until")]
        from: Option<chrono::DateTime<chrono::Utc>>,
        /// Last simulated instant (RFC 3339).
        #[arg(long, requires = "from")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Minutes between simulated ticks.
        #[arg(long, default_value_t = 60)]
        step_minutes: i64,
    },
    /// Mint a bearer token for the export API (HS256, with the server's token secret): for the
    /// demo users and for trying the API by hand. The role comes from the database.
    Token {
        /// The user the token stands for.
        #[arg(long)]
        user: String,
        /// File holding the secret (the server generates it on first start).
        #[arg(
            long,
            env = "EXPORT_TOKEN_SECRET_FILE",
            default_value = "data/token.secret"
        )]
        secret_file: PathBuf,
        /// The secret itself, instead of the file.
        #[arg(long, env = "EXPORT_TOKEN_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Minutes until it expires.
        #[arg(long, default_value_t = 60)]
        minutes: i64,
    },
    /// Work with the audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Print how many rows each table holds and who the therapists and patients are.
    List,
    /// Migrate, seed the demo practice and list it: the first thing to run on a new machine.
    Demo {
        #[arg(long, default_value = "fixtures")]
        fixtures: PathBuf,
    },
    /// Render one export from a practice folder (the fixtures by default) straight to a file.
    Render(render::RenderArgs),
    /// Render the synthetic benchmark rows (../shared/bench-dataset.md) and print one JSON line:
    /// format, rows, seconds, rows per second, bytes, peak memory.
    Bench {
        #[arg(long)]
        format: ExportFormat,
        /// How many dataset rows to render as a table.
        #[arg(long, default_value_t = 1_000_000, conflicts_with = "report_sessions")]
        rows: u64,
        /// Render the progress-report model with this many sessions instead (pdf or docx).
        #[arg(long)]
        report_sessions: Option<u64>,
        #[arg(long)]
        out: PathBuf,
    },
    /// Push this many small progress reports through the whole engine on a fresh SQLite
    /// database and print jobs per second and the overhead beyond rendering.
    BenchEngine {
        #[arg(long, default_value_t = 500)]
        jobs: u64,
    },
}

/// How a command that did its work ended; an error is exit status 2.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Done,
    /// `audit verify` found the chain broken.
    AuditTrailBroken,
}

fn main() -> std::process::ExitCode {
    // A child started to render one custom template does only that.
    export_render::sandbox::serve_if_asked();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    // Bad arguments exit here with status 2 (clap's usage error), --help and --version with 0.
    let cli = Cli::parse();
    // Every store `run` opened is dropped when it returns, which waits for the pool's thread:
    // exiting while it opens a connection would crash the process (see export_store::Store).
    // A panic is an error like any other: its status must not read as a verdict either.
    let outcome = std::panic::catch_unwind(|| run(cli));
    std::process::ExitCode::from(match outcome {
        Ok(Ok(Verdict::Done)) => 0,
        Ok(Ok(Verdict::AuditTrailBroken)) => 1,
        Ok(Err(err)) => {
            eprintln!("Error: {err:?}");
            2
        }
        Err(_) => 2, // the panic hook has printed it
    })
}

fn run(cli: Cli) -> anyhow::Result<Verdict> {
    let done = |result: anyhow::Result<()>| result.map(|()| Verdict::Done);
    done(match cli.command {
        Command::Migrate => migrate(&cli.database),
        Command::Seed { fixtures } => seed_practice(&cli.database, &fixtures),
        Command::List => list(&cli.database),
        Command::Work {
            storage,
            master_key,
            name,
            watch,
            workers,
            lease_seconds,
            grace_seconds,
        } => work(
            &cli.database,
            &storage,
            &master_key,
            WorkerConfig {
                workers,
                name: name.unwrap_or_else(worker_identity),
                idle_poll: std::time::Duration::from_millis(200),
                grace: std::time::Duration::from_secs(grace_seconds),
            },
            lease_seconds,
            watch,
        ),
        Command::Expire {
            storage,
            master_key,
            dry_run,
            at,
        } => expire(&cli.database, &storage, &master_key, dry_run, at),
        Command::Tick {
            storage,
            master_key,
            from,
            until,
            step_minutes,
        } => tick(
            &cli.database,
            &storage,
            &master_key,
            from,
            until,
            step_minutes,
        ),
        Command::Token {
            user,
            secret_file,
            secret,
            minutes,
        } => token(&cli.database, &user, &secret_file, secret, minutes),
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let report = export_core::audit::verify_store(&open(&cli.database)?)?;
            println!("{report}");
            if !matches!(report, export_core::audit::ChainReport::Intact { .. }) {
                return Ok(Verdict::AuditTrailBroken);
            }
            Ok(())
        }
        Command::Import { file } => import(&cli.database, &file),
        Command::Demo { fixtures } => {
            migrate(&cli.database)?;
            seed_practice(&cli.database, &fixtures)?;
            list(&cli.database)
        }
        Command::Render(args) => {
            println!("{}", render::render(&args, chrono::Utc::now())?);
            Ok(())
        }
        Command::BenchEngine { jobs } => {
            println!("{}", bench::bench_engine(jobs)?);
            Ok(())
        }
        Command::Bench {
            format,
            rows,
            report_sessions,
            out,
        } => {
            let line = match report_sessions {
                Some(sessions) => bench::bench_report(format, sessions, &out)?,
                None => bench::bench_rows(format, rows, &out)?,
            };
            println!("{line}");
            Ok(())
        }
    })
}

/// The store of one command: no idle connection kept in reserve, so the pool opens only the
/// connections the command takes, and none is being opened in the background when it ends.
fn open(database: &str) -> anyhow::Result<Store> {
    let options = StoreOptions {
        min_idle: 0,
        ..StoreOptions::default()
    };
    Store::open_with(database, &options)
        .with_context(|| format!("cannot open the database at {database}"))
}

fn migrate(database: &str) -> anyhow::Result<()> {
    // Opening applies whatever migrations are pending.
    let store = open(database)?;
    let applied = store.applied_migrations()?;
    println!(
        "database {database} ({:?}) is migrated: {} migrations, the latest {}",
        store.backend(),
        applied.len(),
        applied.last().map_or("none", String::as_str)
    );
    Ok(())
}

fn seed_practice(database: &str, fixtures: &std::path::Path) -> anyhow::Result<()> {
    let store = open(database)?;
    let practice = seed::load_practice(fixtures)
        .with_context(|| format!("cannot load the practice in {}", fixtures.display()))?;
    let report = store.transaction(|conn| seed::seed_practice(conn, &practice))?;
    println!("seeded {database} from {}:", fixtures.display());
    print_report(&report);
    Ok(())
}

/// An engine over the database at `database` and the encrypted files in `storage`, with records
/// from the database: what `work`, `expire` and `tick` run.
/// This executable as the sandbox custom templates render in, with 1 GiB of address space.
fn template_sandbox() -> anyhow::Result<export_render::Sandbox> {
    export_render::Sandbox::current_exe(1 << 30)
        .context("cannot find this executable to render templates in")
}

fn engine(
    database: &str,
    storage: &std::path::Path,
    master_key: &str,
    config: export_core::engine::EngineConfig,
) -> anyhow::Result<(Store, export_core::engine::ExportEngine)> {
    use std::sync::Arc;

    use export_core::source::StoreSource;
    use export_core::storage::{LocalFileStore, MasterKey};

    let store = open(database)?;
    let files = LocalFileStore::new(storage, MasterKey::from_hex(master_key)?)?;
    let config = export_core::engine::EngineConfig {
        template_sandbox: Some(template_sandbox()?),
        ..config
    };
    let engine = export_core::engine::ExportEngine::new(
        store.clone(),
        Arc::new(files),
        Arc::new(StoreSource(store.clone())),
        config,
    );
    Ok((store, engine))
}

fn work(
    database: &str,
    storage: &std::path::Path,
    master_key: &str,
    config: WorkerConfig,
    lease_seconds: i64,
    watch: bool,
) -> anyhow::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use export_core::engine::EngineConfig;
    use export_core::worker::WorkerPool;

    anyhow::ensure!(lease_seconds >= 1, "--lease-seconds must be at least 1");
    let (store, engine) = engine(
        database,
        storage,
        master_key,
        EngineConfig {
            lease: chrono::Duration::seconds(lease_seconds),
            ..EngineConfig::default()
        },
    )?;
    let signalled = Arc::new(AtomicBool::new(false));
    let flag = signalled.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
        .context("cannot install the SIGTERM and SIGINT handler")?;
    let name = config.name.clone();
    let pool = WorkerPool::start(Arc::new(engine), config);
    log::info!("worker {name} started with {} threads", pool.names().len());
    loop {
        std::thread::sleep(std::time::Duration::from_millis(100));
        if signalled.load(Ordering::SeqCst) {
            log::info!("worker {name}: shutdown asked for");
            break;
        }
        if !watch {
            let mut conn = store.connection()?;
            let unfinished = jobs::count_jobs_by_status(&mut conn)?
                .iter()
                .any(|(status, count)| !status.is_terminal() && *count > 0);
            if !unfinished && pool.running() == 0 {
                break;
            }
        }
    }
    let report = pool.shutdown();
    println!(
        "worker {name} finished {} jobs and released {}",
        report.jobs_run,
        report.released.len()
    );
    Ok(())
}

fn expire(
    database: &str,
    storage: &std::path::Path,
    master_key: &str,
    dry_run: bool,
    at: Option<chrono::DateTime<chrono::Utc>>,
) -> anyhow::Result<()> {
    let (_, engine) = engine(database, storage, master_key, Default::default())?;
    let report = engine.expire(at.unwrap_or_else(chrono::Utc::now), dry_run)?;
    let (verb, sweep) = if dry_run {
        ("would expire", "would remove")
    } else {
        ("expired", "removed")
    };
    println!(
        "{verb} {} exports, {} bytes; {sweep} {} leftover files",
        report.expired, report.bytes, report.swept
    );
    if report.failed + report.sweep_failed > 0 {
        anyhow::bail!(
            "{} exports could not be expired and {} leftovers not removed (see the log)",
            report.failed,
            report.sweep_failed
        );
    }
    Ok(())
}

fn tick(
    database: &str,
    storage: &std::path::Path,
    master_key: &str,
    from: Option<chrono::DateTime<chrono::Utc>>,
    until: Option<chrono::DateTime<chrono::Utc>>,
    step_minutes: i64,
) -> anyhow::Result<()> {
    use std::sync::Arc;

    use export_schedule::scheduler::Scheduler;

    anyhow::ensure!(step_minutes >= 1, "--step-minutes must be at least 1");
    let (store, engine) = engine(database, storage, master_key, Default::default())?;
    let scheduler = Scheduler::new(Arc::new(engine), store);
    let now = chrono::Utc::now();
    let (mut at, until) = (from.unwrap_or(now), until.unwrap_or(now));
    let (mut submitted, mut skipped, mut refused, mut lost) = (0, 0, 0, 0);
    while at <= until {
        let report = scheduler.tick(at)?;
        submitted += report.submitted;
        skipped += report.skipped;
        refused += report.refused;
        lost += report.lost_races;
        at += chrono::Duration::minutes(step_minutes);
    }
    println!(
        "ticked: {submitted} runs submitted ({skipped} missed due times coalesced, {refused} refused); {lost} due times were another scheduler's"
    );
    Ok(())
}

fn token(
    database: &str,
    user: &str,
    secret_file: &std::path::Path,
    secret: Option<String>,
    minutes: i64,
) -> anyhow::Result<()> {
    #[derive(serde::Serialize)]
    struct Claims {
        sub: String,
        role: String,
        exp: i64,
        iat: i64,
    }
    anyhow::ensure!(
        (1..=7 * 24 * 60).contains(&minutes),
        "--minutes must be from 1 to 10080"
    );
    let user_id = uuid::Uuid::try_parse(user).context("--user must be a user id (a UUID)")?;
    let store = open(database)?;
    let mut conn = store.connection()?;
    let found = clinical::get_user(&mut conn, user_id)?
        .with_context(|| format!("there is no user {user_id} in {database}"))?;
    let secret = match secret {
        Some(secret) => secret,
        None => std::fs::read_to_string(secret_file)
            .with_context(|| {
                format!(
                    "cannot read the token secret {} (start export-server once to create it)",
                    secret_file.display()
                )
            })?
            .trim()
            .to_owned(),
    };
    let now = chrono::Utc::now().timestamp();
    let claims = Claims {
        sub: user_id.to_string(),
        role: found.role.to_string(),
        exp: now + minutes * 60,
        iat: now,
    };
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )?;
    println!("{token}");
    Ok(())
}

fn import(database: &str, file: &std::path::Path) -> anyhow::Result<()> {
    #[derive(serde::Deserialize)]
    struct FullRecordFile {
        data: export_domain::Practice,
    }
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let record: FullRecordFile = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a full-record export", file.display()))?;
    let store = open(database)?;
    let report = store.transaction(|conn| seed::seed_practice(conn, &record.data))?;
    println!("imported {} into {database}:", file.display());
    print_report(&report);
    Ok(())
}

fn print_report(report: &seed::SeedReport) {
    for table in seed::PRACTICE_FILES {
        println!(
            "  {table:<20} {:>5} inserted {:>5} already present",
            report.inserted.get(table).copied().unwrap_or(0),
            report.already_present.get(table).copied().unwrap_or(0)
        );
    }
}

fn list(database: &str) -> anyhow::Result<()> {
    let store = open(database)?;
    let mut conn = store.connection()?;
    println!("rows in {database}:");
    for (table, count) in seed::count_clinical_rows(&mut conn)? {
        println!("  {table:<20} {count:>5}");
    }
    println!("sessions by status:");
    for (status, count) in clinical::count_sessions_by_status(&mut conn)? {
        println!("  {status:<20} {count:>5}");
    }
    let therapists = clinical::list_users(&mut conn, Some(Role::Therapist))?;
    let patients = clinical::list_users(&mut conn, Some(Role::Patient))?;
    println!("therapists and their patients (ids for export requests):");
    for therapist in &therapists {
        println!(
            "  {}  {} <{}>",
            therapist.id,
            therapist.full_name(),
            therapist.email
        );
        for link in clinical::list_relationships(&mut conn, therapist.id, true)? {
            let name = patients
                .iter()
                .find(|p| p.id == link.patient_id)
                .map(|p| p.full_name())
                .unwrap_or_default();
            let state = if link.is_active { "active" } else { "inactive" };
            println!(
                "    {}  {name} ({}, {state})",
                link.patient_id, link.relationship_type
            );
        }
    }
    for admin in clinical::list_users(&mut conn, Some(Role::Admin))? {
        println!(
            "admin: {}  {} <{}>",
            admin.id,
            admin.full_name(),
            admin.email
        );
    }
    Ok(())
}
