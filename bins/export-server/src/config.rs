//! Configuration: defaults that start a working server with no setup, an optional TOML file, and
//! `EXPORT_*` environment variables over both. Every setting is documented in README.md.
//!
//! Secrets that are not configured (the master key that wraps file keys, the token secret) are
//! generated on first start into files beside the database, readable by their owner only, so a
//! fresh checkout runs securely without anyone choosing a key. A generated file appears whole or
//! not at all, so processes starting together all read the one secret.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::auth::{MAX_LEEWAY_SECONDS, MIN_SECRET_BYTES};

/// What this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServerRole {
    /// The HTTP API only.
    Api,
    /// Workers only: claim and produce jobs.
    Worker,
    /// The scheduler and maintenance only: due scheduled reports, deliveries, notifications,
    /// the expiry pass.
    Scheduler,
    /// API, workers and scheduler (the default).
    All,
}

impl ServerRole {
    pub fn serves_api(self) -> bool {
        matches!(self, ServerRole::Api | ServerRole::All)
    }

    pub fn runs_workers(self) -> bool {
        matches!(self, ServerRole::Worker | ServerRole::All)
    }

    pub fn runs_scheduler(self) -> bool {
        matches!(self, ServerRole::Scheduler | ServerRole::All)
    }
}

/// S3-compatible object storage.
#[derive(Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Settings {
    pub bucket: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub allow_http: bool,
    pub prefix: Option<String>,
}

impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Every setting, with its default.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the API listens on.
    pub bind: String,
    /// A SQLite file path or a `postgres://` URL.
    pub database_url: String,
    /// Folder of the encrypted export files (when no S3 bucket is configured).
    pub storage_dir: PathBuf,
    /// S3-compatible storage instead of the folder.
    pub s3: Option<S3Settings>,
    /// When set, the expiry pass moves expired files to this folder instead of deleting them.
    pub archive_dir: Option<PathBuf>,
    /// The SMTP server scheduled reports and notifications are sent through; none: no email.
    pub smtp: Option<export_schedule::email::SmtpSettings>,
    /// 64 hex digits; when unset, read from (or generated into) `master_key_file`.
    pub master_key: Option<String>,
    pub master_key_file: PathBuf,
    /// HS256 secret of the bearer tokens; when neither this nor `token_public_key_file` is set,
    /// read from (or generated into) `token_secret_file`.
    pub token_secret: Option<String>,
    pub token_secret_file: PathBuf,
    /// PEM public key: tokens are then RS256, signed by the host platform.
    pub token_public_key_file: Option<PathBuf>,
    /// Seconds of clock skew allowed on a token's `exp` and `nbf`; at most 5.
    pub token_leeway_seconds: u64,
    /// Days a completed file is kept.
    pub retention_days: i64,
    /// Exports one user may request per hour; 0: no limit.
    pub exports_per_hour: u32,
    /// Requests one IP address may make per minute, on every route.
    pub requests_per_minute_per_ip: u32,
    /// Addresses (`10.0.0.5`) or networks (`10.0.0.0/8`, `fd00::/8`) of the reverse proxies in
    /// front of the server: only from these is `X-Forwarded-For` believed, for the rate limit
    /// and the audit trail.
    pub trusted_proxies: Vec<String>,
    /// Jobs produced at once by this process.
    pub workers: usize,
    pub lease_seconds: i64,
    pub grace_seconds: u64,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// Minutes a signed download link stays valid.
    pub link_minutes: i64,
    /// Seed the demo practice (fixtures) at start-up.
    pub seed_demo: bool,
    pub fixtures_dir: PathBuf,
    pub role: ServerRole,
    /// Seconds between scheduler ticks (due reports, deliveries, notifications).
    pub scheduler_tick_seconds: u64,
    /// Seconds between expiry passes.
    pub expiry_interval_seconds: u64,
    /// The address users reach the API at, for links in emails.
    pub public_url: String,
    /// The practice's name and address, as the footer of every page of a document prints them
    /// ("Riverside Counselling, 12 Mill Lane, Bristol").
    pub practice: Option<String>,
    /// Hours a link sent by email stays valid.
    pub email_link_hours: i64,
    /// What one render of a custom template may cost (at save, preview and export): time in
    /// milliseconds, bytes of markup, nesting depth, items of one `range()`, fuel (work units:
    /// one per instruction and per 64 bytes of data), and the memory of the sandbox process.
    pub template_timeout_ms: u64,
    pub template_output_bytes: usize,
    pub template_depth: usize,
    pub template_loop_items: usize,
    pub template_fuel: u64,
    pub template_memory_mb: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: "127.0.0.1:8080".into(),
            database_url: "data/export.db".into(),
            storage_dir: "data/files".into(),
            s3: None,
            archive_dir: None,
            smtp: None,
            master_key: None,
            master_key_file: "data/master.key".into(),
            token_secret: None,
            token_secret_file: "data/token.secret".into(),
            token_public_key_file: None,
            token_leeway_seconds: 5,
            retention_days: 7,
            exports_per_hour: 20,
            requests_per_minute_per_ip: 1200,
            trusted_proxies: Vec::new(),
            workers: 2,
            lease_seconds: 300,
            grace_seconds: 30,
            max_body_bytes: 1024 * 1024,
            link_minutes: 15,
            template_timeout_ms: 2000,
            template_output_bytes: 5_000_000,
            template_depth: 100,
            template_loop_items: 10_000,
            template_fuel: 1_000_000,
            template_memory_mb: 1024,
            seed_demo: false,
            fixtures_dir: "fixtures".into(),
            role: ServerRole::All,
            scheduler_tick_seconds: 30,
            expiry_interval_seconds: 3600,
            public_url: "http://127.0.0.1:8080".into(),
            practice: None,
            email_link_hours: 72,
        }
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("bind", &self.bind)
            .field("database_url", &redact_url(&self.database_url))
            .field("storage_dir", &self.storage_dir)
            .field("s3", &self.s3)
            .field("role", &self.role)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// The URL without its password, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The environment variables read, each overriding the file: `EXPORT_<SETTING>` in capitals.
pub const ENV_SETTINGS: &[&str] = &[
    "bind",
    "database_url",
    "storage_dir",
    "archive_dir",
    "master_key",
    "master_key_file",
    "token_secret",
    "token_secret_file",
    "token_public_key_file",
    "token_leeway_seconds",
    "retention_days",
    "exports_per_hour",
    "requests_per_minute_per_ip",
    "trusted_proxies",
    "workers",
    "lease_seconds",
    "grace_seconds",
    "max_body_bytes",
    "link_minutes",
    "seed_demo",
    "fixtures_dir",
    "role",
    "scheduler_tick_seconds",
    "expiry_interval_seconds",
    "public_url",
    "practice",
    "email_link_hours",
    "s3_bucket",
    "s3_endpoint",
    "s3_region",
    "s3_access_key_id",
    "s3_secret_access_key",
    "s3_allow_http",
    "s3_prefix",
    "smtp_host",
    "smtp_port",
    "smtp_security",
    "smtp_username",
    "smtp_password",
    "smtp_from",
    "smtp_timeout_seconds",
    "smtp_hello_name",
    "template_timeout_ms",
    "template_output_bytes",
    "template_depth",
    "template_loop_items",
    "template_fuel",
    "template_memory_mb",
];

impl Config {
    /// The defaults, then `file` when given, then the environment.
    pub fn load(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Config> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the configuration {}", path.display()))?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("{} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        for setting in ENV_SETTINGS {
            let name = format!("EXPORT_{}", setting.to_ascii_uppercase());
            let Some(value) = env(&name) else { continue };
            let value = typed_value(setting, &value)
                .with_context(|| format!("environment variable {name}"))?;
            let nested = [("s3", "s3_"), ("smtp", "smtp_")]
                .into_iter()
                .find_map(|(table, prefix)| setting.strip_prefix(prefix).map(|key| (table, key)));
            if let Some((section, key)) = nested {
                let section = table
                    .entry(section)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(section) = section {
                    section.insert(key.to_owned(), value);
                }
            } else {
                table.insert((*setting).to_owned(), value);
            }
        }
        let config: Config = toml::Value::Table(table)
            .try_into()
            .map_err(|err: toml::de::Error| anyhow::anyhow!("invalid configuration: {err}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        if self.retention_days < 1 {
            bail!("retention_days must be at least 1");
        }
        if self.workers == 0 && self.role.runs_workers() {
            bail!("workers must be at least 1 when this process runs workers");
        }
        if self.lease_seconds < 5 {
            bail!("lease_seconds must be at least 5");
        }
        if self.requests_per_minute_per_ip == 0 {
            bail!("requests_per_minute_per_ip must be at least 1");
        }
        if self.scheduler_tick_seconds == 0 || self.expiry_interval_seconds == 0 {
            bail!("scheduler_tick_seconds and expiry_interval_seconds must be at least 1");
        }
        if !(1..=24 * 30).contains(&self.email_link_hours) {
            bail!("email_link_hours must be between 1 and 720");
        }
        self.trusted_proxies()?;
        if !(10..=60_000).contains(&self.template_timeout_ms) {
            bail!("template_timeout_ms must be between 10 and 60000");
        }
        if self.template_output_bytes < 1000 || self.template_depth < 10 {
            bail!("template_output_bytes must be at least 1000 and template_depth at least 10");
        }
        if self.template_depth > 500 {
            bail!("template_depth must be at most 500 (deeper nesting can overflow the stack)");
        }
        if self.template_loop_items == 0 || self.template_fuel < 10_000 {
            bail!("template_loop_items must be at least 1 and template_fuel at least 10000");
        }
        if self.template_memory_mb < 64 {
            bail!("template_memory_mb must be at least 64");
        }
        if !(1..=24 * 60).contains(&self.link_minutes) {
            bail!("link_minutes must be between 1 and 1440");
        }
        if let Some(s3) = &self.s3
            && s3.bucket.is_empty()
        {
            bail!("s3.bucket must name a bucket");
        }
        if self.token_leeway_seconds > MAX_LEEWAY_SECONDS {
            bail!(
                "token_leeway_seconds (EXPORT_TOKEN_LEEWAY_SECONDS) is {}; at most {MAX_LEEWAY_SECONDS} seconds of clock skew are allowed on token times",
                self.token_leeway_seconds
            );
        }
        if let Some(secret) = &self.token_secret
            && self.token_public_key_file.is_none()
        {
            check_token_secret(secret, "token_secret (EXPORT_TOKEN_SECRET)")?;
        }
        Ok(())
    }

    /// The trusted proxies as networks (a bare address is a network of one).
    pub fn trusted_proxies(&self) -> anyhow::Result<Vec<ipnet::IpNet>> {
        self.trusted_proxies
            .iter()
            .map(|text| {
                let text = text.trim();
                text.parse::<ipnet::IpNet>()
                    .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .with_context(|| {
                        format!("trusted_proxies: {text:?} is not an address or a network like 10.0.0.0/8")
                    })
            })
            .collect()
    }

    /// What one render of a custom template may cost.
    pub fn template_limits(&self) -> export_render::TemplateLimits {
        export_render::TemplateLimits {
            time: std::time::Duration::from_millis(self.template_timeout_ms),
            output_bytes: self.template_output_bytes,
            depth: self.template_depth,
            loop_items: self.template_loop_items,
            fuel: self.template_fuel,
        }
    }

    /// The master key: configured, or kept in `master_key_file` (generated there on first start).
    pub fn master_key_hex(&self) -> anyhow::Result<String> {
        match &self.master_key {
            Some(key) => Ok(key.trim().to_owned()),
            None => secret_file(&self.master_key_file, "master_key_file", 64, || {
                export_core::storage::MasterKey::generate().to_hex()
            }),
        }
    }

    /// The HS256 token secret, of at least `MIN_SECRET_BYTES`: configured, or kept in
    /// `token_secret_file`.
    pub fn token_secret(&self) -> anyhow::Result<String> {
        let secret = match &self.token_secret {
            Some(secret) => secret.clone(),
            None => secret_file(
                &self.token_secret_file,
                "token_secret_file",
                MIN_SECRET_BYTES,
                || export_core::storage::MasterKey::generate().to_hex(),
            )?,
        };
        check_token_secret(&secret, "token_secret (EXPORT_TOKEN_SECRET)")?;
        Ok(secret)
    }
}

/// Refuses an HS256 secret shorter than `MIN_SECRET_BYTES`, naming `setting` but never the secret.
fn check_token_secret(secret: &str, setting: &str) -> anyhow::Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        bail!(
            "{setting} is {} bytes long; an HS256 token secret must be at least {MIN_SECRET_BYTES} bytes",
            secret.len()
        );
    }
    Ok(())
}

/// A setting's text from the environment as the TOML value its field expects.
fn typed_value(setting: &str, text: &str) -> anyhow::Result<toml::Value> {
    const INTEGERS: &[&str] = &[
        "token_leeway_seconds",
        "retention_days",
        "exports_per_hour",
        "requests_per_minute_per_ip",
        "workers",
        "lease_seconds",
        "grace_seconds",
        "max_body_bytes",
        "link_minutes",
        "scheduler_tick_seconds",
        "expiry_interval_seconds",
        "email_link_hours",
        "smtp_port",
        "smtp_timeout_seconds",
        "template_timeout_ms",
        "template_output_bytes",
        "template_depth",
        "template_loop_items",
        "template_fuel",
        "template_memory_mb",
    ];
    Ok(if INTEGERS.contains(&setting) {
        toml::Value::Integer(
            text.trim()
                .parse()
                .with_context(|| format!("{setting} must be a whole number"))?,
        )
    } else if setting == "trusted_proxies" {
        toml::Value::Array(
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(|t| toml::Value::String(t.to_owned()))
                .collect(),
        )
    } else if setting == "seed_demo" || setting == "s3_allow_http" {
        toml::Value::Boolean(match text.trim() {
            "1" | "true" | "yes" => true,
            "0" | "false" | "no" | "" => false,
            _ => bail!("{setting} must be true or false"),
        })
    } else {
        toml::Value::String(text.to_owned())
    })
}

/// The secret kept in `path` (the setting `setting`), of at least `min_bytes`: read, or made by
/// `generate` and put there owner-only when missing. A new secret is written whole to a temporary
/// file beside `path`, synced, then linked into place, which fails when another process got there
/// first: its secret is then read instead. So a reader never sees a half-written file.
fn secret_file(
    path: &Path,
    setting: &str,
    min_bytes: usize,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    match read_secret(path, setting, min_bytes) {
        Err(err) if is_not_found(&err) => {}
        other => return other,
    }
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let secret = generate();
    let name = path
        .file_name()
        .with_context(|| format!("{setting} {} names no file", path.display()))?;
    let temporary = TemporaryFile(parent.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        uuid::Uuid::new_v4().simple()
    )));
    write_synced(&temporary.0, secret.as_bytes())
        .with_context(|| format!("cannot write {}", temporary.0.display()))?;
    match std::fs::hard_link(&temporary.0, path) {
        Ok(()) => {
            // The link is durable once the folder is.
            if let Ok(folder) = std::fs::File::open(parent) {
                let _ = folder.sync_all();
            }
            log::info!("generated a new secret in {}", path.display());
            Ok(secret)
        }
        // Another process put its secret there first: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            read_secret(path, setting, min_bytes)
        }
        Err(err) => Err(err).with_context(|| format!("cannot create {}", path.display())),
    }
}

/// A file removed when dropped, on every path.
struct TemporaryFile(PathBuf);

impl Drop for TemporaryFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Writes `bytes` to the new file `path`, owner-only, and syncs it to disk.
fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    std::io::Write::write_all(&mut file, bytes)?;
    file.sync_all()
}

/// The trimmed secret in `path`; an empty or short one is an error naming the file and `setting`.
fn read_secret(path: &Path, setting: &str, min_bytes: usize) -> anyhow::Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        bail!(
            "the secret file {} ({setting}) is empty; it must hold a secret of at least {min_bytes} bytes",
            path.display()
        );
    }
    if secret.len() < min_bytes {
        bail!(
            "the secret file {} ({setting}) holds {} bytes; a secret of at least {min_bytes} bytes is required",
            path.display(),
            secret.len()
        );
    }
    Ok(secret.to_owned())
}

fn is_not_found(err: &anyhow::Error) -> bool {
    err.downcast_ref::<std::io::Error>()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn the_environment_overrides_the_file_which_overrides_the_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(
            &file,
            "bind = \"0.0.0.0:9000\"\nworkers = 4\n[s3]\nbucket = \"exports\"\n",
        )
        .unwrap();
        let config = Config::load(
            Some(&file),
            env_of(&[("EXPORT_WORKERS", "8"), ("EXPORT_S3_ALLOW_HTTP", "true")]),
        )
        .unwrap();
        assert_eq!(config.bind, "0.0.0.0:9000");
        assert_eq!(config.workers, 8);
        assert_eq!(config.retention_days, 7);
        let s3 = config.s3.unwrap();
        assert_eq!((s3.bucket.as_str(), s3.allow_http), ("exports", true));
    }

    #[test]
    fn bad_settings_are_refused_with_their_name() {
        let err = Config::load(None, env_of(&[("EXPORT_WORKERS", "many")])).unwrap_err();
        assert!(format!("{err:#}").contains("EXPORT_WORKERS"), "{err:#}");
        let err = Config::load(None, env_of(&[("EXPORT_ROLE", "cook")])).unwrap_err();
        assert!(format!("{err:#}").contains("role"), "{err:#}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "colour = \"red\"\n").unwrap();
        let err = Config::load(Some(&file), env_of(&[])).unwrap_err();
        assert!(format!("{err:#}").contains("colour"), "{err:#}");
    }

    #[test]
    fn passwords_stay_out_of_logs() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/exports"),
            "postgres://app:***@db:5432/exports"
        );
        assert_eq!(redact_url("data/export.db"), "data/export.db");
    }

    #[test]
    fn a_missing_secret_is_generated_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            master_key_file: dir.path().join("keys/master.key"),
            ..Config::default()
        };
        let first = config.master_key_hex().unwrap();
        assert_eq!(first.len(), 64);
        assert_eq!(config.master_key_hex().unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&config.master_key_file)
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn concurrent_starts_never_produce_an_empty_secret() {
        const THREADS: usize = 8;
        let dir = tempfile::tempdir().unwrap();
        for round in 0..100 {
            let path = dir.path().join(format!("round-{round}/token.secret"));
            let gate = std::sync::Barrier::new(THREADS);
            let secrets: Vec<String> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..THREADS)
                    .map(|_| {
                        scope.spawn(|| {
                            gate.wait();
                            secret_file(&path, "token_secret_file", MIN_SECRET_BYTES, || {
                                export_core::storage::MasterKey::generate().to_hex()
                            })
                            .unwrap()
                        })
                    })
                    .collect();
                workers.into_iter().map(|w| w.join().unwrap()).collect()
            });
            assert_eq!(secrets[0].len(), 64, "round {round}: {secrets:?}");
            assert!(
                secrets.iter().all(|s| *s == secrets[0]),
                "round {round}: every start reads the one secret: {secrets:?}"
            );
            assert_eq!(std::fs::read_to_string(&path).unwrap(), secrets[0]);
            let left: Vec<_> = std::fs::read_dir(path.parent().unwrap())
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert_eq!(left.len(), 1, "no temporary file is left: {left:?}");
        }
    }

    #[test]
    fn an_empty_or_short_secret_file_is_refused_not_used() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            master_key_file: dir.path().join("master.key"),
            token_secret_file: dir.path().join("token.secret"),
            ..Config::default()
        };
        for (contents, says) in [
            ("", "is empty"),
            ("\n", "is empty"),
            ("0f1e2d", "holds 6 bytes"),
        ] {
            std::fs::write(&config.master_key_file, contents).unwrap();
            let err = format!("{:#}", config.master_key_hex().unwrap_err());
            assert!(err.contains(says), "{err}");
            assert!(
                err.contains("master_key_file") && err.contains("at least 64"),
                "{err}"
            );
            std::fs::write(&config.token_secret_file, contents).unwrap();
            let err = format!("{:#}", config.token_secret().unwrap_err());
            assert!(err.contains(says), "{err}");
            assert!(
                err.contains("token_secret_file") && err.contains("at least 32"),
                "{err}"
            );
        }
        std::fs::write(&config.token_secret_file, "a".repeat(31)).unwrap();
        let err = format!("{:#}", config.token_secret().unwrap_err());
        assert!(
            err.contains("holds 31 bytes") && err.contains("at least 32"),
            "{err}"
        );
        std::fs::write(&config.token_secret_file, "a".repeat(32)).unwrap();
        assert_eq!(config.token_secret().unwrap(), "a".repeat(32));
    }

    #[test]
    fn a_short_token_secret_is_refused_with_the_minimum() {
        for secret in ["", &"s".repeat(31)] {
            let err = Config::load(None, env_of(&[("EXPORT_TOKEN_SECRET", secret)])).unwrap_err();
            let err = format!("{err:#}");
            assert!(
                err.contains("EXPORT_TOKEN_SECRET") && err.contains("at least 32 bytes"),
                "{err}"
            );
            assert!(
                secret.is_empty() || !err.contains(secret),
                "the secret is not echoed: {err}"
            );
        }
        let config =
            Config::load(None, env_of(&[("EXPORT_TOKEN_SECRET", &"s".repeat(32))])).unwrap();
        assert_eq!(config.token_secret().unwrap().len(), 32);
    }

    #[test]
    fn a_token_leeway_above_five_seconds_is_refused() {
        assert_eq!(
            Config::load(None, env_of(&[]))
                .unwrap()
                .token_leeway_seconds,
            5
        );
        let config = Config::load(None, env_of(&[("EXPORT_TOKEN_LEEWAY_SECONDS", "0")])).unwrap();
        assert_eq!(config.token_leeway_seconds, 0);
        let err = Config::load(None, env_of(&[("EXPORT_TOKEN_LEEWAY_SECONDS", "6")])).unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("EXPORT_TOKEN_LEEWAY_SECONDS") && err.contains("at most 5"),
            "{err}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "token_leeway_seconds = 30\n").unwrap();
        let err = format!("{:#}", Config::load(Some(&file), env_of(&[])).unwrap_err());
        assert!(
            err.contains("token_leeway_seconds") && err.contains("at most 5"),
            "{err}"
        );
    }
}
