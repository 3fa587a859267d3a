//! Bearer tokens checked in full, over real HTTP against the server binary, on SQLite and on
//! PostgreSQL: a token not valid yet (`nbf`) or expired past a few seconds of leeway is refused,
//! the caller must be a user on record whose stored role is the token's role claim, only the
//! configured algorithm is accepted, and a short HS256 secret or a leeway above 5 s stops the
//! start with a message naming the setting and the limit.

mod common;

use common::*;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use jsonwebtoken::Algorithm;
use serde_json::json;

test_on_both_backends! {
    a_token_not_yet_valid_is_refused,
    a_token_expired_past_five_seconds_of_leeway_is_refused,
    a_token_for_no_known_user_is_refused,
    a_token_whose_role_disagrees_with_the_records_is_refused,
    a_token_signed_with_another_algorithm_is_refused,
}

const JOBS: &str = "/api/v1/export/jobs";
const AUDIT: &str = "/api/v1/audit/logs";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Margaret's HS256 token with these extra claims.
fn margaret_with(extra: serde_json::Value) -> String {
    let mut claims = json!({"sub": MARGARET, "role": "therapist", "exp": now() + 3600});
    claims
        .as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    signed(Algorithm::HS256, &claims)
}

/// Asserts `reply` is a 401 whose message contains `says`.
fn unauthorized(reply: &Reply, what: &str, says: &str) {
    assert_eq!(reply.status, 401, "{what}: {}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"], "unauthorized", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(says),
        "{what}: {message:?} should say {says:?}"
    );
}

fn a_token_not_yet_valid_is_refused(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    for seconds in [3600, 30] {
        let early = margaret_with(json!({"nbf": now() + seconds}));
        unauthorized(
            &get(&server, JOBS, Some(&early)),
            &format!("nbf {seconds} s ahead"),
            "not valid yet",
        );
    }
    let valid = margaret_with(json!({"nbf": now() - 1}));
    let reply = get(&server, JOBS, Some(&valid));
    assert_eq!(
        reply.status,
        200,
        "a token valid since a second: {}",
        reply.text()
    );
    assert!(server.stop().success());
}

fn a_token_expired_past_five_seconds_of_leeway_is_refused(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    // Within the former 30 s of leeway, past the 5 s allowed now.
    let expired = margaret_with(json!({"exp": now() - 20}));
    unauthorized(
        &get(&server, JOBS, Some(&expired)),
        "expired 20 s ago",
        "expired",
    );
    assert!(server.stop().success());
}

#[test]
fn the_token_leeway_is_configurable_up_to_five_seconds() {
    let db = TestDatabase::sqlite();
    // With no leeway, a token valid in 4 s is early; with the default 5 s it is accepted.
    let strict = Server::start(
        &db,
        &[("EXPORT_ROLE", "api"), ("EXPORT_TOKEN_LEEWAY_SECONDS", "0")],
    );
    let soon = margaret_with(json!({"nbf": now() + 4}));
    unauthorized(
        &get(&strict, JOBS, Some(&soon)),
        "nbf 4 s ahead, no leeway",
        "not valid yet",
    );
    assert!(strict.stop().success());
    let lenient = Server::start(&db, &[("EXPORT_ROLE", "api")]);
    let soon = margaret_with(json!({"nbf": now() + 4}));
    let reply = get(&lenient, JOBS, Some(&soon));
    assert_eq!(
        reply.status,
        200,
        "nbf 4 s ahead, 5 s leeway: {}",
        reply.text()
    );
    assert!(lenient.stop().success());
}

#[test]
fn a_token_leeway_above_five_seconds_stops_the_start() {
    let db = TestDatabase::sqlite();
    let data = tempfile::tempdir().unwrap();
    for leeway in ["6", "30"] {
        let (status, stderr) = refused_start(server_command(
            data.path(),
            &db.url,
            &[("EXPORT_TOKEN_LEEWAY_SECONDS", leeway)],
            &[],
        ));
        assert!(!status.success(), "leeway {leeway}: {stderr}");
        assert!(
            stderr.contains("EXPORT_TOKEN_LEEWAY_SECONDS") && stderr.contains("at most 5"),
            "leeway {leeway}: {stderr}"
        );
    }
}

fn a_token_for_no_known_user_is_refused(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    let stranger = uuid::Uuid::new_v4().to_string();
    for (role, path) in [("admin", AUDIT), ("therapist", JOBS), ("patient", JOBS)] {
        unauthorized(
            &get(&server, path, Some(&token(&stranger, role))),
            &format!("an unknown user as {role} on {path}"),
            "no known user",
        );
    }
    let reply = get(&server, AUDIT, Some(&token(HELEN, "admin")));
    assert_eq!(
        reply.status,
        200,
        "the administrator on record: {}",
        reply.text()
    );
    let log = server.log();
    assert!(
        log.contains("token refused: the token's subject is no known user"),
        "{log}"
    );
    assert!(server.stop().success());
}

fn a_token_whose_role_disagrees_with_the_records_is_refused(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    let report = json!({"patient_id": ZOE, "start_date": "2025-01-01",
        "end_date": "2025-12-31", "format": "pdf"})
    .to_string();
    let refusals = [
        (
            "a therapist claiming admin",
            get(&server, AUDIT, Some(&token(MARGARET, "admin"))),
        ),
        (
            "a therapist claiming admin on the CSV export",
            get(
                &server,
                "/api/v1/audit/logs/export",
                Some(&token(DANIEL, "admin")),
            ),
        ),
        (
            "an administrator claiming therapist",
            get(&server, JOBS, Some(&token(HELEN, "therapist"))),
        ),
        (
            "a patient claiming therapist",
            post(
                &server,
                "/api/v1/export/progress-report",
                Some(&token(ZOE, "therapist")),
                &report,
            ),
        ),
        (
            "a therapist claiming patient",
            get(&server, JOBS, Some(&token(MARGARET, "patient"))),
        ),
    ];
    for (what, reply) in &refusals {
        unauthorized(reply, what, "the token's role does not match the records");
        let text = reply.text();
        for name in ["Margaret", "Daniel", "Helen", "Zoë"] {
            assert!(!text.contains(name), "{what}: no names: {text}");
        }
    }
    // With their stored role the same users pass authentication; the role then decides.
    let margaret = token(MARGARET, "therapist");
    assert_eq!(get(&server, JOBS, Some(&margaret)).status, 200);
    let audit = get(&server, AUDIT, Some(&margaret));
    assert_eq!(
        audit.status,
        403,
        "a therapist reads no audit trail: {}",
        audit.text()
    );
    let helen = get(&server, AUDIT, Some(&token(HELEN, "admin")));
    assert_eq!(helen.status, 200, "{}", helen.text());
    // Nothing refused above was submitted.
    assert_eq!(
        get(&server, JOBS, Some(&margaret)).json()["jobs"],
        json!([])
    );
    let log = server.log();
    assert!(
        !log.contains("Margaret") && !log.contains("Zoë"),
        "ids only: {log}"
    );
    assert!(server.stop().success());
}

fn a_token_signed_with_another_algorithm_is_refused(db: &TestDatabase) {
    let server = Server::start(db, &[("EXPORT_ROLE", "api")]);
    let claims = json!({"sub": MARGARET, "role": "therapist", "exp": now() + 3600});
    for algorithm in [Algorithm::HS384, Algorithm::HS512] {
        unauthorized(
            &get(&server, JOBS, Some(&signed(algorithm, &claims))),
            &format!("{algorithm:?} with the server's own secret"),
            "another algorithm",
        );
    }
    let reply = get(&server, JOBS, Some(&signed(Algorithm::HS256, &claims)));
    assert_eq!(reply.status, 200, "the configured HS256: {}", reply.text());
    assert!(server.stop().success());
}

#[test]
fn a_short_token_secret_stops_the_start() {
    let db = TestDatabase::sqlite();
    let data = tempfile::tempdir().unwrap();
    let short = "s".repeat(31);
    for (what, secret) in [("31 bytes", short.as_str()), ("empty", "")] {
        let (status, stderr) = refused_start(server_command(
            data.path(),
            &db.url,
            &[("EXPORT_TOKEN_SECRET", secret)],
            &[],
        ));
        assert!(!status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains("EXPORT_TOKEN_SECRET") && stderr.contains("at least 32 bytes"),
            "{what}: {stderr}"
        );
        assert!(
            secret.is_empty() || !stderr.contains(secret),
            "{what}: echoed: {stderr}"
        );
    }

    // A secret file, empty or short, is refused rather than used.
    let file = data.path().join("token.secret");
    for (what, contents) in [
        ("an empty file", ""),
        ("a file of 31 bytes", short.as_str()),
    ] {
        std::fs::write(&file, contents).unwrap();
        let mut command = server_command(
            data.path(),
            &db.url,
            &[("EXPORT_TOKEN_SECRET_FILE", file.to_str().unwrap())],
            &[],
        );
        command.env_remove("EXPORT_TOKEN_SECRET");
        let (status, stderr) = refused_start(command);
        assert!(!status.success(), "{what}: {stderr}");
        assert!(
            stderr.contains("token_secret_file") && stderr.contains("at least 32 bytes"),
            "{what}: {stderr}"
        );
    }

    // 32 bytes is enough; a generated secret is 64 hex digits.
    let enough = "s".repeat(32);
    let server = Server::start(
        &db,
        &[("EXPORT_ROLE", "api"), ("EXPORT_TOKEN_SECRET", &enough)],
    );
    let reply = get(
        &server,
        JOBS,
        Some(&token_for(MARGARET, "therapist", 60, &enough)),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(server.stop().success());
    std::fs::remove_file(&file).unwrap();
    let generated = tempfile::tempdir().unwrap();
    let mut command = server_command(
        generated.path(),
        &db.url,
        &[
            ("EXPORT_ROLE", "api"),
            ("EXPORT_TOKEN_SECRET_FILE", file.to_str().unwrap()),
        ],
        &[],
    );
    command.env_remove("EXPORT_TOKEN_SECRET");
    let server = Server::start_command(generated, command);
    let secret = std::fs::read_to_string(&file).unwrap();
    assert_eq!(secret.len(), 64, "{secret:?}");
    assert!(secret.bytes().all(|b| b.is_ascii_hexdigit()));
    let reply = get(
        &server,
        JOBS,
        Some(&token_for(MARGARET, "therapist", 60, &secret)),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(server.stop().success());
}

/// PostgreSQL only: the records cannot be read while the token is checked.
#[test]
fn a_token_checked_while_the_records_cannot_be_reached_is_503_not_401() {
    let Some(db) = TestDatabase::postgres(
        "a_token_checked_while_the_records_cannot_be_reached_is_503_not_401",
    ) else {
        return;
    };
    let server = Server::start(&db, &[("EXPORT_ROLE", "api")]);
    let margaret = token(MARGARET, "therapist");
    assert_eq!(get(&server, JOBS, Some(&margaret)).status, 200);
    db.refuse_connections();
    let reply = get(&server, JOBS, Some(&margaret));
    assert_eq!(reply.status, 503, "{}\n{}", reply.text(), server.log());
    assert_eq!(reply.json()["error"], "unavailable");
    assert_eq!(reply.header("retry-after"), Some("5"));
    db.accept_connections();
}
