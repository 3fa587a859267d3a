//! Claiming jobs with leases, on SQLite and PostgreSQL: oldest first, a lapsed lease is taken over
//! with one more attempt, only the holder renews, and workers racing over many jobs never claim
//! the same one twice.

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use chrono::{DateTime, Duration, TimeZone, Utc};
use export_domain::{ExportFormat, ExportJob, ExportType, JobStatus};
use export_store::jobs;
use export_store::test_on_both_backends;
use export_store::testing::TestDatabase;
use uuid::Uuid;

fn at(minute: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 1, 9, 0, 0).unwrap() + Duration::minutes(minute)
}

fn add_jobs(db: &TestDatabase, count: u128, created: impl Fn(u128) -> DateTime<Utc>) -> Vec<Uuid> {
    let mut conn = db.store.connection().unwrap();
    (0..count)
        .map(|n| {
            let job = ExportJob::pending(
                Uuid::from_u128(1000 + n),
                Uuid::from_u128(1),
                None,
                ExportType::Dataset,
                ExportFormat::Csv,
                serde_json::json!({}),
                3,
                created(n),
            );
            jobs::insert_job(&mut conn, &job).unwrap();
            job.id
        })
        .collect()
}

test_on_both_backends! {
    claims_take_the_oldest_and_leases_lapse,
    racing_workers_never_share_a_job,
}

fn claims_take_the_oldest_and_leases_lapse(db: &TestDatabase) {
    let ids = add_jobs(db, 3, |n| at(10 - n as i64)); // the last added is the oldest
    let mut conn = db.store.connection().unwrap();
    let lease = Duration::minutes(5);

    // Not yet due: nothing is claimable before the jobs' run_after.
    assert_eq!(
        jobs::claim_next(&mut conn, "w1", at(0), lease).unwrap(),
        None
    );

    let first = jobs::claim_next(&mut conn, "w1", at(20), lease)
        .unwrap()
        .unwrap();
    assert_eq!(first.id, ids[2]);
    assert_eq!((first.status, first.attempts), (JobStatus::Processing, 1));
    assert_eq!(first.lease_owner.as_deref(), Some("w1"));
    assert_eq!(first.lease_expires_at, Some(at(25)));
    assert_eq!(first.started_at, Some(at(20)));
    assert_eq!(jobs::get_job(&mut conn, first.id).unwrap().unwrap(), first);

    assert_eq!(
        jobs::claim_next(&mut conn, "w2", at(20), lease)
            .unwrap()
            .unwrap()
            .id,
        ids[1]
    );
    assert_eq!(
        jobs::claim_next(&mut conn, "w3", at(20), lease)
            .unwrap()
            .unwrap()
            .id,
        ids[0]
    );
    assert_eq!(
        jobs::claim_next(&mut conn, "w4", at(21), lease).unwrap(),
        None,
        "all leased"
    );

    // w1 renews; w2 does not and dies. After the lapse only w2's job is claimable again.
    assert!(jobs::renew_lease(&mut conn, ids[2], "w1", at(40)).unwrap());
    assert!(
        !jobs::renew_lease(&mut conn, ids[1], "w9", at(40)).unwrap(),
        "only the holder renews"
    );
    assert!(jobs::renew_lease(&mut conn, ids[0], "w3", at(40)).unwrap());
    let taken_over = jobs::claim_next(&mut conn, "w4", at(26), lease)
        .unwrap()
        .unwrap();
    assert_eq!(taken_over.id, ids[1]);
    assert_eq!(
        (taken_over.attempts, taken_over.lease_owner.as_deref()),
        (2, Some("w4"))
    );
    assert_eq!(
        taken_over.started_at,
        Some(at(20)),
        "the first start is kept"
    );
    assert!(
        !jobs::renew_lease(&mut conn, ids[1], "w2", at(50)).unwrap(),
        "the dead worker lost it"
    );
}

fn racing_workers_never_share_a_job(db: &TestDatabase) {
    const JOBS: u128 = 200;
    const WORKERS: usize = 4;
    add_jobs(db, JOBS, |n| at(0) + Duration::seconds(n as i64));
    let barrier = Arc::new(Barrier::new(WORKERS));
    let handles: Vec<_> = (0..WORKERS)
        .map(|w| {
            let store = db.store.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let mut conn = store.connection().unwrap();
                barrier.wait();
                let mut claimed = Vec::new();
                while let Some(job) =
                    jobs::claim_next(&mut conn, &format!("w{w}"), at(60), Duration::minutes(5))
                        .unwrap()
                {
                    assert_eq!(job.lease_owner, Some(format!("w{w}")));
                    claimed.push(job.id);
                }
                claimed
            })
        })
        .collect();
    let claimed: Vec<Uuid> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let unique: HashSet<&Uuid> = claimed.iter().collect();
    assert_eq!(claimed.len(), JOBS as usize, "every job claimed");
    assert_eq!(unique.len(), JOBS as usize, "no job claimed twice");
    let mut conn = db.store.connection().unwrap();
    assert_eq!(
        jobs::count_jobs_by_status(&mut conn).unwrap(),
        [(JobStatus::Processing, JOBS as i64)]
    );
}
