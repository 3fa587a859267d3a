//! The real server as a child process on a free port, over a test database, with tokens minted
//! for the demo users and a small HTTP client. Each test file includes this module.

#![allow(dead_code)] // not every test file uses every helper

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use export_store::testing::TestDatabase;

pub const SECRET: &str = "test-token-secret-of-the-api-tests";
pub const MARGARET: &str = "7d25348d-75bb-5e22-8073-05bfd9b3230c"; // therapist of Zoë and Noa
pub const DANIEL: &str = "97b930e0-79af-5b44-83f0-6df6f68564d7"; // a therapist, not Zoë's
pub const HELEN: &str = "5c84fc77-b00f-59f3-b3f1-c41f6fb7eee9"; // the administrator
pub const ZOE: &str = "4333a588-c713-5117-85aa-6c9dc288e1df"; // a patient
pub const LUKASZ: &str = "94c319c2-8698-5dbc-bff1-889f6cb77255"; // not Margaret's patient
pub const MASTER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00112233445566778899aabbccddeeff0";

/// A running `export-server`.
pub struct Server {
    pub base: String,
    pub child: Child,
    pub data: tempfile::TempDir,
    pub database_url: String,
    log: PathBuf,
}

impl Server {
    /// Starts the server over `db` with the demo practice seeded, and `env` on top.
    pub fn start(db: &TestDatabase, env: &[(&str, &str)]) -> Server {
        Server::start_with(&db.url, env, &[])
    }

    /// Starts `export-server` with these arguments over the database at `url`.
    pub fn start_with(url: &str, env: &[(&str, &str)], args: &[&str]) -> Server {
        let data = tempfile::tempdir().unwrap();
        Server::start_in(data, url, env, args)
    }

    pub fn start_in(
        data: tempfile::TempDir,
        url: &str,
        env: &[(&str, &str)],
        args: &[&str],
    ) -> Server {
        let command = server_command(data.path(), url, env, args);
        Server::start_command(data, command)
    }

    /// Starts `command` (see `server_command`), whose files are in `data`.
    pub fn start_command(data: tempfile::TempDir, mut command: Command) -> Server {
        let database_url = command
            .get_envs()
            .find(|(name, _)| *name == "EXPORT_DATABASE_URL")
            .and_then(|(_, value)| value?.to_str().map(str::to_owned))
            .unwrap_or_default();
        let log = data
            .path()
            .join(format!("server-{}.log", uuid::Uuid::new_v4().simple()));
        command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap());
        let mut child = command.spawn().expect("export-server starts");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(address) = line.strip_prefix("listening on ") {
                        break address.to_owned();
                    }
                }
                _ => {
                    let _ = child.wait();
                    panic!(
                        "export-server stopped before listening:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        Server {
            base,
            child,
            data,
            database_url,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        terminate(&mut self.child)
    }
}

pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `export-server` command the tests run: the demo practice seeded, listening on a free port,
/// over the database at `url`, with files in `data`, then `env` and `args` on top.
pub fn server_command(data: &Path, url: &str, env: &[(&str, &str)], args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_export-server"));
    command
        .args(["--seed-demo", "--bind", "127.0.0.1:0"])
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("EXPORT_DATABASE_URL", url)
        .env("EXPORT_STORAGE_DIR", data.join("files"))
        .env("EXPORT_MASTER_KEY", MASTER_KEY)
        .env("EXPORT_TOKEN_SECRET", SECRET)
        .env(
            "EXPORT_FIXTURES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"),
        )
        .env("EXPORT_WORKERS", "2")
        .env("RUST_LOG", "info");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

/// Runs `command`, which must stop without ever listening: its exit status and what it wrote to
/// stderr. A server that starts listening instead is stopped and the test fails.
pub fn refused_start(mut command: Command) -> (std::process::ExitStatus, String) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("export-server starts");
    let stdout = child.stdout.take().unwrap();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap_or_default();
        if line.starts_with("listening on ") {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "export-server started although it should not have:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[derive(serde::Serialize)]
struct Claims<'a> {
    sub: &'a str,
    role: &'a str,
    exp: i64,
}

/// An HS256 token for `user` as `role`, expiring `minutes` from now (negative: already expired).
pub fn token_for(user: &str, role: &str, minutes: i64, secret: &str) -> String {
    let claims = Claims {
        sub: user,
        role,
        exp: chrono::Utc::now().timestamp() + minutes * 60,
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

pub fn token(user: &str, role: &str) -> String {
    token_for(user, role, 60, SECRET)
}

/// A token of these `claims`, signed with `algorithm` and the tests' secret.
pub fn signed(algorithm: jsonwebtoken::Algorithm, claims: &serde_json::Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// An answer: status, headers we look at, body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|_| {
            panic!(
                "not JSON ({}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// Sends a request; `body` is sent as JSON text when given.
pub fn call(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Option<&str>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let agent = agent();
    let response = match body {
        Some(body) => {
            let request = request
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .unwrap();
            agent.run(request)
        }
        None => agent.run(request.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let mut body = Vec::new();
    response
        .into_body()
        .into_reader()
        .read_to_end(&mut body)
        .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

pub fn get(server: &Server, path: &str, token: Option<&str>) -> Reply {
    call("GET", &server.url(path), token, None, &[])
}

pub fn post(server: &Server, path: &str, token: Option<&str>, body: &str) -> Reply {
    call("POST", &server.url(path), token, Some(body), &[])
}

/// Asks for a signed link to the job `id` with the default lifetime.
pub fn request_link(server: &Server, id: &str, token: &str) -> Reply {
    let path = format!("/api/v1/export/jobs/{id}/link");
    post(server, &path, Some(token), "{}")
}

/// Polls a job until it is no longer pending or processing.
pub fn wait_for_job(server: &Server, token: &str, id: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let reply = get(server, &format!("/api/v1/export/jobs/{id}"), Some(token));
        assert_eq!(reply.status, 200, "{}", reply.text());
        let job = reply.json();
        match job["status"].as_str() {
            Some("pending" | "processing") => {
                assert!(
                    reply.header("retry-after").is_some(),
                    "a running job says when to ask again"
                );
            }
            _ => return job,
        }
        assert!(
            Instant::now() < deadline,
            "job {id} did not finish: {job}\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[allow(unused_imports)] // not every test binary reads files back
pub use export_core::testing::{docx_text, pdf_text, xlsx_rows};

pub fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures"))
}

/// The audit entries of job `id` as an administrator reads them, in chain order.
pub fn audit_entries_of_job(server: &Server, id: &str) -> Vec<serde_json::Value> {
    let reply = get(
        server,
        &format!("/api/v1/audit/logs?export_job_id={id}"),
        Some(&token(HELEN, "admin")),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    reply.json()["entries"].as_array().unwrap().clone()
}

/// Three processed sessions of Zoë's, from the fixtures.
pub fn zoe_sessions() -> Vec<String> {
    let sessions: Vec<serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("therapy_sessions.json")).unwrap(),
    )
    .unwrap();
    sessions
        .iter()
        .filter(|s| s["patient_id"] == ZOE && s["status"] == "processed")
        .take(3)
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Sixteen reads at once, so the server's connection pool has grown before a test races
/// requests against each other.
pub fn warm_pool(server: &std::sync::Arc<Server>, token: &str) {
    let warm: Vec<_> = (0..16)
        .map(|_| {
            let (server, token) = (server.clone(), token.to_owned());
            std::thread::spawn(move || get(&server, "/api/v1/export/jobs", Some(&token)).status)
        })
        .collect();
    assert!(warm.into_iter().all(|t| t.join().unwrap() == 200));
}
