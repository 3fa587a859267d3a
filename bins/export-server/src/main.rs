//! The HTTP server of the export engine: the export API (actix-web over `export-core`) and the
//! workers that produce the exports, in one process or as separate roles.
//!
//! With no configuration it creates and migrates `data/export.db`, keeps files in `data/files`,
//! generates its secrets beside the database, and serves on 127.0.0.1:8080. SIGTERM or SIGINT stop
//! it gracefully: the API stops accepting, in-flight requests finish, workers stop claiming and
//! get the grace period to finish what they hold, and the rest goes back to the queue.

mod app;
mod auth;
mod client;
mod config;
mod error;
mod http;
mod maintenance;
mod metrics;
mod middleware;
mod openapi;
mod query;
mod routes;
mod scheduled;
mod state;
mod templates;

use std::path::PathBuf;
use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use anyhow::Context;
use clap::Parser;
use export_core::engine::{EngineConfig, ExportEngine};
use export_core::links::LinkSigner;
use export_core::source::StoreSource;
use export_core::storage::{FileStore, LocalFileStore, MasterKey};
use export_core::worker::{WorkerConfig, WorkerPool};
use export_store::{Store, seed};
use hmac::{Hmac, Mac};

use crate::config::{Config, ServerRole, redact_url};

#[derive(Debug, Parser)]
#[command(
    name = "export-server",
    version,
    about = "The export API and its workers"
)]
struct Args {
    /// A TOML configuration file (see README.md); environment variables override it.
    #[arg(long, env = "EXPORT_CONFIG")]
    config: Option<PathBuf>,
    /// What this process runs: the API, the workers, or both.
    #[arg(long)]
    role: Option<ServerRole>,
    /// Seed the demo practice from the fixtures before serving.
    #[arg(long)]
    seed_demo: bool,
    /// Address to listen on (overrides the configuration).
    #[arg(long)]
    bind: Option<String>,
}

fn main() {
    // A child started to render one custom template does only that.
    export_render::sandbox::serve_if_asked();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    if let Err(err) = run() {
        log::error!("{err:#}");
        eprintln!("export-server: {err:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = Config::load(args.config.as_deref(), |name| std::env::var(name).ok())?;
    if let Some(role) = args.role {
        config.role = role;
    }
    if let Some(bind) = args.bind {
        config.bind = bind;
    }
    config.seed_demo |= args.seed_demo;
    log::info!(
        "starting: role {:?}, database {}",
        config.role,
        redact_url(&config.database_url)
    );

    // Token settings are checked before anything else starts.
    let tokens = match (config.role.serves_api(), &config.token_public_key_file) {
        (false, _) => None,
        (true, Some(path)) => Some(auth::TokenVerifier::rs256(
            &std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?,
            config.token_leeway_seconds,
        )?),
        (true, None) => Some(auth::TokenVerifier::hs256(
            config.token_secret()?.as_bytes(),
            config.token_leeway_seconds,
        )?),
    };

    if let Some(parent) = std::path::Path::new(&config.database_url)
        .parent()
        .filter(|p| !config.database_url.contains("://") && !p.as_os_str().is_empty())
    {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let store = Store::open(&config.database_url)
        .with_context(|| format!("cannot open {}", redact_url(&config.database_url)))?;
    if config.seed_demo {
        // Documents of the demo practice name it, unless a practice is configured.
        config
            .practice
            .get_or_insert_with(|| seed::DEMO_PRACTICE.to_owned());
        let practice = seed::load_practice(&config.fixtures_dir).with_context(|| {
            format!(
                "cannot load the demo practice from {}",
                config.fixtures_dir.display()
            )
        })?;
        let report = store.transaction(|conn| seed::seed_practice(conn, &practice))?;
        log::info!(
            "demo practice seeded: {} rows inserted",
            report.inserted.values().sum::<usize>()
        );
    }

    let master = MasterKey::from_hex(&config.master_key_hex()?)
        .context("the configured master key cannot be used")?;
    let files: Arc<dyn FileStore> = match &config.s3 {
        Some(s3) => {
            let settings = export_core::storage::S3Config {
                bucket: s3.bucket.clone(),
                endpoint: s3.endpoint.clone(),
                region: s3.region.clone().unwrap_or_else(|| "us-east-1".to_owned()),
                access_key_id: s3
                    .access_key_id
                    .clone()
                    .context("s3.access_key_id is required with an S3 bucket")?,
                secret_access_key: s3
                    .secret_access_key
                    .clone()
                    .context("s3.secret_access_key is required with an S3 bucket")?,
                allow_http: s3.allow_http,
                key_prefix: s3.prefix.clone(),
            };
            Arc::new(
                export_core::storage::ObjectFileStore::s3(&settings, master.clone())
                    .context("cannot use the S3 bucket for files")?,
            )
        }
        None => Arc::new(
            LocalFileStore::new(&config.storage_dir, master.clone()).with_context(|| {
                format!("cannot use {} for files", config.storage_dir.display())
            })?,
        ),
    };
    // Download links are signed with a key derived from the master key.
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(master.to_hex().as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(b"export download links v1");
    let link_key = mac.finalize().into_bytes().to_vec();
    let mut engine = ExportEngine::new(
        store.clone(),
        files,
        Arc::new(StoreSource(store.clone())),
        EngineConfig {
            retention: chrono::Duration::days(config.retention_days),
            lease: chrono::Duration::seconds(config.lease_seconds),
            template_limits: config.template_limits(),
            practice: config.practice.clone(),
            template_sandbox: Some(
                export_render::Sandbox::current_exe(config.template_memory_mb << 20)
                    .context("cannot find this executable to render templates in")?,
            ),
            ..EngineConfig::default()
        },
    )
    .with_link_signer(LinkSigner::new(link_key));
    if let Some(folder) = &config.archive_dir {
        let archive = LocalFileStore::new(folder, master.clone())
            .with_context(|| format!("cannot use {} as the archive", folder.display()))?;
        engine = engine.with_archive(Arc::new(archive));
    }
    let engine = Arc::new(engine);

    let metrics = Arc::new(metrics::Metrics::default());
    let pool = config.role.runs_workers().then(|| {
        let metrics = metrics.clone();
        WorkerPool::start_observed(
            engine.clone(),
            WorkerConfig {
                workers: config.workers,
                grace: std::time::Duration::from_secs(config.grace_seconds),
                ..WorkerConfig::default()
            },
            move |job| metrics.export_finished(job),
        )
    });

    let mut scheduler = export_schedule::scheduler::Scheduler::new(engine.clone(), store.clone());
    if let Some(smtp) = &config.smtp {
        let mailer =
            export_schedule::email::Mailer::new(smtp).context("the SMTP settings cannot work")?;
        scheduler = scheduler.with_delivery(export_schedule::scheduler::Delivery {
            mailer,
            public_url: config.public_url.clone(),
            link_lifetime: chrono::Duration::hours(config.email_link_hours),
        });
    }
    let scheduler = Arc::new(scheduler);
    let maintenance = config.role.runs_scheduler().then(|| {
        maintenance::Maintenance::start(
            scheduler.clone(),
            engine.clone(),
            std::time::Duration::from_secs(config.scheduler_tick_seconds),
            std::time::Duration::from_secs(config.expiry_interval_seconds),
            pool.as_ref().map(WorkerPool::waker),
            metrics.clone(),
        )
    });

    if let Some(tokens) = tokens {
        let state = web::Data::new(state::AppState {
            engine: engine.clone(),
            tokens,
            metrics,
            ip_limiter: client::IpLimiter::new(config.requests_per_minute_per_ip),
            proxies: client::TrustedProxies::new(config.trusted_proxies()?),
            exports_per_hour: config.exports_per_hour,
            link_minutes: config.link_minutes,
            max_body_bytes: config.max_body_bytes,
            waker: pool.as_ref().map(WorkerPool::waker),
            scheduler: Some(scheduler),
        });
        serve(&config, state)?;
    } else {
        wait_for_signal()?;
    }

    if let Some(maintenance) = maintenance {
        maintenance.stop();
    }
    if let Some(pool) = pool {
        log::info!("stopping the workers");
        let report = pool.shutdown();
        log::info!(
            "workers stopped: {} jobs run, {} released",
            report.jobs_run,
            report.released.len()
        );
    }
    log::info!("stopped");
    Ok(())
}

/// Serves the API until SIGTERM or SIGINT, then drains in-flight requests.
fn serve(config: &Config, state: web::Data<state::AppState>) -> anyhow::Result<()> {
    let grace = config.grace_seconds;
    let system = actix_web::rt::System::new();
    system.block_on(async move {
        // Addresses quiet for a minute are forgotten, so the limiter's table stays small.
        let limits = state.clone();
        actix_web::rt::spawn(async move {
            let mut every = actix_web::rt::time::interval(std::time::Duration::from_secs(60));
            loop {
                every.tick().await;
                limits.ip_limiter.forget_idle();
            }
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(crate::middleware::json_errors())
                .wrap(actix_web::middleware::from_fn(crate::middleware::observe))
                .configure(app::routes)
        })
        .shutdown_timeout(grace)
        .bind(&config.bind)
        .with_context(|| format!("cannot listen on {}", config.bind))?;
        for address in server.addrs() {
            #[allow(clippy::print_stdout)] // the address tests and operators read
            {
                println!("listening on http://{address}");
            }
        }
        server.run().await.context("the server failed")
    })
}

/// Blocks a worker-only process until SIGTERM or SIGINT.
fn wait_for_signal() -> anyhow::Result<()> {
    let system = actix_web::rt::System::new();
    system.block_on(async {
        let mut term = actix_web::rt::signal::unix::signal(
            actix_web::rt::signal::unix::SignalKind::terminate(),
        )
        .context("cannot listen for SIGTERM")?;
        let interrupt = Box::pin(actix_web::rt::signal::ctrl_c());
        let terminate = Box::pin(term.recv());
        futures_util::future::select(interrupt, terminate).await;
        log::info!("shutdown asked for");
        Ok(())
    })
}
