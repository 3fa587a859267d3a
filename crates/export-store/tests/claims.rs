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

/// A finished file of `rows` rows and `size` bytes under `file_key` (digest and wrapped key
/// made up: the store keeps them as given).
fn finished(file_key: String, size_bytes: i64, row_count: i64) -> jobs::FinishedFile {
    jobs::FinishedFile {
        file_key,
        size_bytes,
        sha256: "ab".repeat(32),
        row_count,
        wrapped_key: "cd".repeat(60),
    }
}

fn held(job_id: Uuid, worker: &str, attempt: i32) -> jobs::Lease {
    jobs::Lease {
        job_id,
        worker: worker.to_owned(),
        attempt,
    }
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
    assert!(jobs::renew_lease(&mut conn, &held(ids[2], "w1", 1), at(40), 50).unwrap());
    assert!(
        !jobs::renew_lease(&mut conn, &held(ids[1], "w9", 1), at(40), 50).unwrap(),
        "only the holder renews"
    );
    assert!(jobs::renew_lease(&mut conn, &held(ids[0], "w3", 1), at(40), 50).unwrap());
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
        !jobs::renew_lease(&mut conn, &held(ids[1], "w2", 1), at(50), 50).unwrap(),
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

test_on_both_backends! {
    only_the_lease_holder_completes_or_fails_a_job,
}

fn only_the_lease_holder_completes_or_fails_a_job(db: &TestDatabase) {
    let ids = add_jobs(db, 2, |_| at(0));
    let mut conn = db.store.connection().unwrap();
    let lease = Duration::minutes(5);
    let file = finished(format!("exports/{}.csv", ids[0]), 1234, 10);

    // w1 claims, stalls past its lease; w2 takes over. w1's late completion changes nothing.
    jobs::claim_next(&mut conn, "w1", at(1), lease)
        .unwrap()
        .unwrap();
    let second = jobs::claim_next(&mut conn, "w2", at(7), lease)
        .unwrap()
        .unwrap();
    assert_eq!((second.id, second.attempts), (ids[0], 2));
    assert_eq!(
        jobs::complete_job(
            &mut conn,
            &held(ids[0], "w1", 1),
            &file,
            at(8),
            at(8) + Duration::days(7)
        )
        .unwrap(),
        None
    );
    let done = jobs::complete_job(
        &mut conn,
        &held(ids[0], "w2", 2),
        &file,
        at(8),
        at(8) + Duration::days(7),
    )
    .unwrap()
    .unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(
        (done.file_size_bytes, done.row_count, done.attempts),
        (Some(1234), Some(10), 2)
    );
    assert_eq!(done.wrapped_key.as_deref(), Some(file.wrapped_key.as_str()));
    assert_eq!(
        (done.lease_owner, done.expires_at),
        (None, Some(at(8) + Duration::days(7)))
    );
    assert_eq!(
        jobs::complete_job(&mut conn, &held(ids[0], "w2", 2), &file, at(9), at(9)).unwrap(),
        None,
        "completes once"
    );

    // Failures retry until the attempts run out (max 3), then the job fails with the reason.
    for attempt in 1..=3 {
        let claimed = jobs::claim_next(&mut conn, "w3", at(10 * attempt), lease)
            .unwrap()
            .unwrap();
        assert_eq!((claimed.id, claimed.attempts), (ids[1], attempt as i32));
        assert_eq!(
            jobs::fail_attempt(
                &mut conn,
                &held(ids[1], "other", attempt as i32),
                "x",
                at(10 * attempt),
                at(0)
            )
            .unwrap(),
            None
        );
        let after = jobs::fail_attempt(
            &mut conn,
            &held(ids[1], "w3", attempt as i32),
            "renderer failed",
            at(10 * attempt + 1),
            at(10 * attempt + 5),
        )
        .unwrap()
        .unwrap();
        if attempt < 3 {
            assert_eq!(
                (after.status, after.run_after),
                (JobStatus::Pending, at(10 * attempt + 5))
            );
            assert_eq!(
                jobs::claim_next(&mut conn, "w3", at(10 * attempt + 4), lease).unwrap(),
                None,
                "backoff holds"
            );
        } else {
            assert_eq!(after.status, JobStatus::Failed);
            assert_eq!(after.error_message.as_deref(), Some("renderer failed"));
            assert_eq!(
                jobs::claim_next(&mut conn, "w3", at(100), lease).unwrap(),
                None
            );
        }
    }
}

test_on_both_backends! {
    a_lease_lapsed_with_no_attempt_left_fails_the_job_as_worker_lost,
    an_earlier_lease_of_the_same_worker_changes_nothing,
}

fn a_lease_lapsed_with_no_attempt_left_fails_the_job_as_worker_lost(db: &TestDatabase) {
    let ids = add_jobs(db, 1, |_| at(0)); // max_attempts 3
    let mut conn = db.store.connection().unwrap();
    let lease = Duration::minutes(5);
    // Three workers die in turn, each holding the job until its lease lapses.
    for attempt in 1..=3 {
        let claimed = jobs::claim_next(&mut conn, &format!("w{attempt}"), at(10 * attempt), lease)
            .unwrap()
            .expect("the lapsed job is claimed again while attempts remain");
        assert_eq!((claimed.id, claimed.attempts), (ids[0], attempt as i32));
        assert!(!jobs::any_lost_jobs(&mut conn, at(10 * attempt + 1)).unwrap());
    }
    assert_eq!(
        jobs::claim_next(&mut conn, "w4", at(40), lease).unwrap(),
        None,
        "no attempt left: the lapsed job is not claimed a fourth time"
    );
    assert!(jobs::any_lost_jobs(&mut conn, at(40)).unwrap());
    let failed = jobs::fail_lost_jobs(&mut conn, at(40)).unwrap();
    assert_eq!(failed.len(), 1);
    let job = &failed[0];
    assert_eq!(
        (job.id, job.status, job.attempts),
        (ids[0], JobStatus::Failed, 3)
    );
    assert_eq!(job.error_message.as_deref(), Some("worker lost 3 times"));
    assert_eq!(
        (job.lease_owner.as_deref(), job.completed_at),
        (None, Some(at(40)))
    );
    assert!(
        jobs::fail_lost_jobs(&mut conn, at(41)).unwrap().is_empty(),
        "once"
    );
    assert!(!jobs::any_lost_jobs(&mut conn, at(41)).unwrap());
}

fn an_earlier_lease_of_the_same_worker_changes_nothing(db: &TestDatabase) {
    let ids = add_jobs(db, 1, |_| at(0));
    let mut conn = db.store.connection().unwrap();
    let lease = Duration::minutes(5);
    let first = jobs::claim_next(&mut conn, "w1", at(1), lease)
        .unwrap()
        .unwrap();
    let stale = jobs::Lease::of(&first).unwrap();
    // The lease lapses and the same worker name claims the job again: a new attempt, a new lease.
    let second = jobs::claim_next(&mut conn, "w1", at(7), lease)
        .unwrap()
        .unwrap();
    let current = jobs::Lease::of(&second).unwrap();
    assert_eq!((stale.attempt, current.attempt), (1, 2));
    assert!(!jobs::renew_lease(&mut conn, &stale, at(8), 40).unwrap());
    assert_eq!(
        jobs::fail_attempt(&mut conn, &stale, "x", at(8), at(9)).unwrap(),
        None
    );
    let file = finished(format!("exports/{}.1-0000000a.csv", ids[0]), 1, 1);
    assert_eq!(
        jobs::complete_job(&mut conn, &stale, &file, at(8), at(9)).unwrap(),
        None,
        "the earlier attempt cannot complete the job"
    );
    assert!(jobs::renew_lease(&mut conn, &current, at(8), 40).unwrap());
    let done = jobs::complete_job(&mut conn, &current, &file, at(8), at(9))
        .unwrap()
        .unwrap();
    assert_eq!((done.status, done.attempts), (JobStatus::Completed, 2));
}
