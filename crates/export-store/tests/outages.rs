//! A database that goes away: taking a connection fails within the pool's connection timeout with
//! an error the callers read as "unavailable" (the API answers 503), and the store recovers by
//! itself when the database is back. PostgreSQL only: a SQLite file does not go away.

use std::time::{Duration, Instant};

use export_store::testing::TestDatabase;
use export_store::{StoreOptions, jobs};

#[test]
fn unreachable_database_is_unavailable_not_a_failure() {
    let Some(db) = TestDatabase::postgres("unreachable_database_is_unavailable_not_a_failure")
    else {
        return;
    };
    let timeout = StoreOptions::default().connection_timeout;
    assert!(timeout <= Duration::from_secs(5), "{timeout:?}");
    let store = db.reopen().unwrap();
    jobs::count_jobs_by_status(&mut store.connection().unwrap()).unwrap();

    db.refuse_connections();
    let started = Instant::now();
    let err = store
        .connection()
        .map(|_| ())
        .expect_err("no connection to a database that refuses them");
    let waited = started.elapsed();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(!err.is_busy());
    assert!(
        waited >= timeout - Duration::from_millis(100) && waited < timeout * 3,
        "waited {waited:?} for a pool timeout of {timeout:?}"
    );

    db.accept_connections();
    let deadline = Instant::now() + timeout * 3;
    loop {
        match store.connection() {
            Ok(mut conn) => {
                jobs::count_jobs_by_status(&mut conn).unwrap();
                break;
            }
            Err(err) if Instant::now() < deadline => assert!(err.is_unavailable(), "{err:?}"),
            Err(err) => panic!("the store did not recover: {err}"),
        }
    }
}
