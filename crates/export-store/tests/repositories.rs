//! Repository tests, each run on SQLite and on PostgreSQL: round trips of every table, the unique
//! and foreign-key constraints as typed errors, ordering and paging, and harmless re-migration.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use export_domain::{
    ActionItem, Assessment, AuditAction, AuditOutcome, DeliveryMethod, Diagnosis, ExportFormat,
    ExportJob, ExportTemplate, ExportType, ExtractedNotes, GENESIS_HASH, Goal, GoalStatus,
    JobStatus, NewAuditEntry, RelationshipType, RiskFlag, RiskSeverity, Role, ScheduledReport,
    SessionStatus, Speaker, Strategy, StrategyStatus, TherapistPatient, TherapySession,
    TranscriptSegment, TreatmentPlan, User, chain_hash,
};
use export_store::jobs::JobFilter;
use export_store::testing::{TestDatabase, weekly_schedule};
use export_store::{
    StoreError, audit, clinical, jobs, schedules, templates, test_on_both_backends,
};
use uuid::Uuid;

fn at(day: u32, hour: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, day, hour, 0, 0).unwrap() + Duration::microseconds(123_456)
}

fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, month, day).unwrap()
}

fn user(n: u128, role: Role, first: &str, last: &str) -> User {
    User {
        id: Uuid::from_u128(n),
        email: format!("user{n}@example.org"),
        first_name: first.into(),
        last_name: last.into(),
        role,
        date_of_birth: (role == Role::Patient)
            .then(|| NaiveDate::from_ymd_opt(1990, 2, 28).unwrap()),
        created_at: at(1, 9),
        // Round-trips the clinician's credentials.
        credentials: (role == Role::Therapist).then(|| "PsyD, LMFT".to_owned()),
    }
}

const THERAPIST: u128 = 1;
const PATIENT: u128 = 2;
const OTHER_THERAPIST: u128 = 3;

/// Two therapists and a patient (with a right-to-left name) in a fresh database.
fn people(db: &TestDatabase) {
    let mut conn = db.store.connection().unwrap();
    clinical::insert_user(
        &mut conn,
        &user(THERAPIST, Role::Therapist, "Zoë", "Brontë"),
    )
    .unwrap();
    clinical::insert_user(&mut conn, &user(PATIENT, Role::Patient, "נועה", "כהן")).unwrap();
    clinical::insert_user(
        &mut conn,
        &user(OTHER_THERAPIST, Role::Therapist, "美玲", "王"),
    )
    .unwrap();
}

fn session(n: u128, day: u32, status: SessionStatus) -> TherapySession {
    TherapySession {
        id: Uuid::from_u128(100 + n),
        patient_id: Uuid::from_u128(PATIENT),
        therapist_id: Uuid::from_u128(THERAPIST),
        session_date: at(day, 14),
        duration_seconds: 3000,
        status,
        transcript_text: Some("Therapist: How was the week?\nPatient: Better & calmer.".into()),
        transcript_segments: vec![TranscriptSegment {
            speaker: Speaker::Patient,
            start_seconds: 4.5,
            end_seconds: 9.25,
            text: "Better & calmer.".into(),
        }],
        therapist_summary: Some("Reviewed sleep diary.".into()),
        patient_summary: None,
        extracted_notes: Some(ExtractedNotes {
            topic_summary: "Sleep and work stress".into(),
            key_topics: vec!["sleep".into(), "work stress".into()],
            session_mood: "hopeful".into(),
            mood_trajectory: "improving".into(),
            strategies: vec![Strategy {
                name: "Box breathing".into(),
                category: "somatic".into(),
                status: StrategyStatus::Practiced,
                context: "before meetings".into(),
            }],
            action_items: vec![ActionItem {
                task: "Keep a sleep diary".into(),
                category: "tracking".into(),
                details: String::new(),
            }],
            risk_flags: vec![RiskFlag {
                kind: "self_harm".into(),
                severity: RiskSeverity::Low,
                evidence: "=SUM(A1) \"quoted\"".into(),
            }],
            ..ExtractedNotes::default()
        }),
        created_at: at(day, 15),
    }
}

fn template(n: u128, owner: Option<u128>, name: &str) -> ExportTemplate {
    ExportTemplate {
        id: Uuid::from_u128(200 + n),
        name: name.into(),
        description: Some("Monthly progress".into()),
        export_type: ExportType::ProgressReport,
        format: ExportFormat::Pdf,
        template_content: "<h1>{{ title }}</h1>".into(),
        include_sections: BTreeMap::from([("assessments".into(), false)]),
        is_system: owner.is_none(),
        created_by: owner.map(Uuid::from_u128),
        created_at: at(2, 9),
        updated_at: at(2, 9),
    }
}

fn job(n: u128, user: u128, created_day: u32) -> ExportJob {
    let mut job = ExportJob::pending(
        Uuid::from_u128(300 + n),
        Uuid::from_u128(user),
        Some(Uuid::from_u128(PATIENT)),
        ExportType::ProgressReport,
        ExportFormat::Docx,
        serde_json::json!({"start_date": "2025-01-01", "end_date": "2025-03-01"}),
        3,
        at(created_day, 10),
    );
    job.idempotency_key = Some(format!("key-{n}"));
    job
}

fn schedule(n: u128, template: u128, patient: Option<u128>) -> ScheduledReport {
    ScheduledReport {
        id: Uuid::from_u128(400 + n),
        patient_id: patient.map(Uuid::from_u128),
        parameters: serde_json::json!({"last_days": 30}),
        delivery_method: DeliveryMethod::Email,
        email_recipients: vec!["clinic@example.org".into()],
        next_run_at: Some(at(10, 7)),
        ..weekly_schedule(
            Uuid::from_u128(THERAPIST),
            Uuid::from_u128(200 + template),
            at(3, 9),
        )
    }
}

fn audit_entry(n: u128, action: AuditAction) -> NewAuditEntry {
    NewAuditEntry {
        id: Uuid::from_u128(500 + n),
        export_job_id: Some(Uuid::from_u128(301)),
        user_id: Some(Uuid::from_u128(THERAPIST)),
        patient_id: Some(Uuid::from_u128(PATIENT)),
        action,
        outcome: AuditOutcome::Success,
        ip_address: Some("2001:0db8:85a3:0000:0000:8a2e:0370:7334".into()),
        user_agent: Some("curl/8".into()),
        request_id: Some(format!("req-{n}")),
        metadata: serde_json::json!({"format": "docx", "bytes": 1234}),
        created_at: at(5, 12) + Duration::nanoseconds(789),
    }
}

test_on_both_backends! {
    clinical_tables_round_trip,
    clinical_constraints_are_typed,
    templates_round_trip_and_names_are_unique_per_owner,
    jobs_round_trip_page_and_expire,
    idempotency_keys_are_unique_per_user,
    one_active_schedule_per_owner_template_patient,
    audit_entries_chain,
    migrations_twice_are_harmless,
    transactions_commit_all_or_nothing,
}

fn clinical_tables_round_trip(db: &TestDatabase) {
    people(db);
    let mut conn = db.store.connection().unwrap();
    let patient = Uuid::from_u128(PATIENT);

    let fetched = clinical::get_user(&mut conn, patient).unwrap().unwrap();
    assert_eq!(fetched, user(PATIENT, Role::Patient, "נועה", "כהן"));
    assert_eq!(fetched.full_name(), "נועה כהן");
    let therapists = clinical::list_users(&mut conn, Some(Role::Therapist)).unwrap();
    assert_eq!(
        therapists
            .iter()
            .map(|u| u.last_name.as_str())
            .collect::<Vec<_>>(),
        ["Brontë", "王"]
    );
    assert_eq!(
        clinical::get_user(&mut conn, Uuid::from_u128(99)).unwrap(),
        None
    );

    let link = TherapistPatient {
        id: Uuid::from_u128(10),
        therapist_id: Uuid::from_u128(THERAPIST),
        patient_id: patient,
        relationship_type: RelationshipType::Primary,
        is_active: true,
        started_on: date(1, 6),
    };
    clinical::insert_relationship(&mut conn, &link).unwrap();
    assert_eq!(
        clinical::find_relationship(&mut conn, Uuid::from_u128(THERAPIST), patient).unwrap(),
        Some(link.clone())
    );
    assert_eq!(
        clinical::find_relationship(&mut conn, Uuid::from_u128(OTHER_THERAPIST), patient).unwrap(),
        None
    );
    assert_eq!(
        clinical::list_relationships(&mut conn, patient, false).unwrap(),
        [link]
    );

    let sessions = [
        session(3, 20, SessionStatus::Processed),
        session(1, 4, SessionStatus::Processed),
        session(2, 12, SessionStatus::Failed),
    ];
    for s in &sessions {
        clinical::insert_session(&mut conn, s).unwrap();
    }
    let processed = clinical::list_patient_sessions(
        &mut conn,
        patient,
        Some(SessionStatus::Processed),
        None,
        None,
    )
    .unwrap();
    assert_eq!(processed, [sessions[1].clone(), sessions[0].clone()]);
    let window =
        clinical::list_patient_sessions(&mut conn, patient, None, Some(at(5, 0)), Some(at(20, 14)))
            .unwrap();
    assert_eq!(
        window.iter().map(|s| s.id).collect::<Vec<_>>(),
        [sessions[2].id]
    );
    let picked =
        clinical::get_sessions(&mut conn, &[sessions[0].id, Uuid::from_u128(999)]).unwrap();
    assert_eq!(picked, [sessions[0].clone()]);
    assert_eq!(
        clinical::count_sessions_by_status(&mut conn).unwrap(),
        [(SessionStatus::Processed, 2), (SessionStatus::Failed, 1)]
    );

    let goal = Goal {
        id: Uuid::from_u128(20),
        patient_id: patient,
        therapist_id: Uuid::from_u128(THERAPIST),
        description: "Fewer panic attacks".into(),
        baseline: "4 per week".into(),
        current: "1 per week".into(),
        progress_percentage: 75,
        status: GoalStatus::Active,
        target_date: Some(date(6, 30)),
        created_at: at(1, 10),
    };
    clinical::insert_goal(&mut conn, &goal).unwrap();
    assert_eq!(clinical::list_goals(&mut conn, patient).unwrap(), [goal]);

    let assessments: Vec<Assessment> = [("PHQ-9", 14, 1), ("GAD-7", 9, 2), ("PHQ-9", 8, 3)]
        .into_iter()
        .enumerate()
        .map(|(i, (instrument, score, month))| Assessment {
            id: Uuid::from_u128(30 + i as u128),
            patient_id: patient,
            instrument: instrument.into(),
            score,
            administered_on: date(month, 15),
            notes: (i == 0).then(|| "baseline".into()),
        })
        .collect();
    for a in &assessments {
        clinical::insert_assessment(&mut conn, a).unwrap();
    }
    assert_eq!(
        clinical::list_assessments(&mut conn, patient, None, None).unwrap(),
        assessments
    );
    assert_eq!(
        clinical::list_assessments(&mut conn, patient, Some(date(2, 15)), Some(date(2, 15)))
            .unwrap(),
        [assessments[1].clone()]
    );

    let secondary = Diagnosis {
        id: Uuid::from_u128(40),
        patient_id: patient,
        icd10_code: "F51.01".into(),
        description: "Primary insomnia".into(),
        is_primary: false,
        diagnosed_on: date(1, 6),
    };
    let primary = Diagnosis {
        id: Uuid::from_u128(41),
        icd10_code: "F41.1".into(),
        description: "Generalized anxiety disorder".into(),
        is_primary: true,
        diagnosed_on: date(2, 1),
        ..secondary.clone()
    };
    clinical::insert_diagnosis(&mut conn, &secondary).unwrap();
    clinical::insert_diagnosis(&mut conn, &primary).unwrap();
    assert_eq!(
        clinical::list_diagnoses(&mut conn, patient).unwrap(),
        [primary, secondary]
    );

    let plan = TreatmentPlan {
        id: Uuid::from_u128(50),
        patient_id: patient,
        therapist_id: Uuid::from_u128(THERAPIST),
        modality: "Cognitive Behavioral Therapy".into(),
        frequency: "weekly".into(),
        prognosis: "good".into(),
        summary: "Exposure work and sleep hygiene.".into(),
        start_date: date(1, 6),
        review_date: None,
        medical_necessity: Some("Symptoms impair work and sleep; weekly CBT is indicated.".into()),
    };
    clinical::insert_treatment_plan(&mut conn, &plan).unwrap();
    assert_eq!(
        clinical::list_treatment_plans(&mut conn, patient).unwrap(),
        [plan]
    );
}

fn clinical_constraints_are_typed(db: &TestDatabase) {
    people(db);
    let mut conn = db.store.connection().unwrap();
    let again = user(THERAPIST, Role::Therapist, "Zoë", "Brontë");
    let same_id = User {
        email: "new@example.org".into(),
        ..again.clone()
    };
    assert!(matches!(
        clinical::insert_user(&mut conn, &same_id),
        Err(StoreError::AlreadyExists { table: "users" })
    ));
    let same_email = User {
        id: Uuid::from_u128(77),
        ..again
    };
    assert!(matches!(
        clinical::insert_user(&mut conn, &same_email),
        Err(StoreError::Duplicate {
            table: "users",
            what: "email"
        })
    ));

    let link = TherapistPatient {
        id: Uuid::from_u128(10),
        therapist_id: Uuid::from_u128(THERAPIST),
        patient_id: Uuid::from_u128(PATIENT),
        relationship_type: RelationshipType::Primary,
        is_active: true,
        started_on: date(1, 6),
    };
    clinical::insert_relationship(&mut conn, &link).unwrap();
    let twice = TherapistPatient {
        id: Uuid::from_u128(11),
        ..link.clone()
    };
    assert!(matches!(
        clinical::insert_relationship(&mut conn, &twice),
        Err(StoreError::Duplicate {
            table: "therapist_patients",
            ..
        })
    ));
    let dangling = TherapistPatient {
        id: Uuid::from_u128(12),
        patient_id: Uuid::from_u128(999),
        ..link
    };
    assert!(matches!(
        clinical::insert_relationship(&mut conn, &dangling),
        Err(StoreError::ForeignKey {
            table: "therapist_patients"
        })
    ));
}

fn templates_round_trip_and_names_are_unique_per_owner(db: &TestDatabase) {
    let mut conn = db.store.connection().unwrap();
    let system = template(1, None, "Standard progress report");
    let mine = template(2, Some(THERAPIST), "Monthly");
    let theirs = template(3, Some(OTHER_THERAPIST), "Monthly");
    for t in [&system, &mine, &theirs] {
        templates::insert_template(&mut conn, t).unwrap();
    }
    assert_eq!(
        templates::get_template(&mut conn, mine.id).unwrap(),
        Some(mine.clone())
    );
    let visible = templates::list_templates(&mut conn, Uuid::from_u128(THERAPIST), None).unwrap();
    assert_eq!(visible, [system.clone(), mine.clone()]);
    assert!(
        templates::list_templates(
            &mut conn,
            Uuid::from_u128(THERAPIST),
            Some(ExportType::SessionNotes)
        )
        .unwrap()
        .is_empty()
    );

    let clash = template(4, Some(THERAPIST), "Monthly");
    assert!(matches!(
        templates::insert_template(&mut conn, &clash),
        Err(StoreError::TemplateNameTaken)
    ));
    let system_clash = template(5, None, "Standard progress report");
    assert!(matches!(
        templates::insert_template(&mut conn, &system_clash),
        Err(StoreError::TemplateNameTaken)
    ));

    let renamed = ExportTemplate {
        name: "Quarterly".into(),
        description: None,
        updated_at: at(4, 9),
        ..mine.clone()
    };
    assert!(templates::update_template(&mut conn, &renamed).unwrap());
    assert_eq!(
        templates::get_template(&mut conn, mine.id).unwrap(),
        Some(renamed)
    );
    let onto_taken = ExportTemplate {
        name: "Quarterly".into(),
        ..template(6, Some(THERAPIST), "Weekly")
    };
    templates::insert_template(&mut conn, &template(6, Some(THERAPIST), "Weekly")).unwrap();
    assert!(matches!(
        templates::update_template(&mut conn, &onto_taken),
        Err(StoreError::TemplateNameTaken)
    ));

    // A template in use by a schedule cannot go; one in use by a job can, and the job forgets it.
    schedules::insert_schedule(&mut conn, &schedule(1, 2, None)).unwrap();
    assert!(matches!(
        templates::delete_template(&mut conn, mine.id),
        Err(StoreError::ForeignKey { .. })
    ));
    let mut from_template = job(1, THERAPIST, 5);
    from_template.template_id = Some(theirs.id);
    jobs::insert_job(&mut conn, &from_template).unwrap();
    assert!(templates::delete_template(&mut conn, theirs.id).unwrap());
    assert_eq!(
        jobs::get_job(&mut conn, from_template.id)
            .unwrap()
            .unwrap()
            .template_id,
        None
    );
    assert!(!templates::delete_template(&mut conn, theirs.id).unwrap());
}

fn jobs_round_trip_page_and_expire(db: &TestDatabase) {
    let mut conn = db.store.connection().unwrap();
    let jobs_made: Vec<ExportJob> = (1..=5).map(|n| job(n, THERAPIST, n as u32)).collect();
    for j in &jobs_made {
        jobs::insert_job(&mut conn, j).unwrap();
    }
    jobs::insert_job(&mut conn, &job(9, OTHER_THERAPIST, 9)).unwrap();
    assert_eq!(
        jobs::get_job(&mut conn, jobs_made[0].id).unwrap(),
        Some(jobs_made[0].clone())
    );

    let mut done = jobs_made[1].clone();
    done.status = JobStatus::Completed;
    done.file_key = Some(format!("exports/{}.docx", done.id));
    done.file_size_bytes = Some(48_213);
    done.sha256 = Some("ab".repeat(32));
    done.row_count = Some(12);
    done.progress_percent = 100;
    done.attempts = 1;
    done.lease_owner = None;
    done.started_at = Some(at(2, 11));
    done.completed_at = Some(at(2, 12));
    done.expires_at = Some(at(9, 12));
    done.updated_at = at(2, 12);
    assert!(jobs::update_job(&mut conn, &done).unwrap());
    assert_eq!(
        jobs::get_job(&mut conn, done.id).unwrap(),
        Some(done.clone())
    );

    let first_page = jobs::list_jobs(
        &mut conn,
        &JobFilter {
            limit: 2,
            ..JobFilter::of_user(Uuid::from_u128(THERAPIST))
        },
    )
    .unwrap();
    assert_eq!(
        first_page.iter().map(|j| j.id).collect::<Vec<_>>(),
        [jobs_made[4].id, jobs_made[3].id]
    );
    let last = &first_page[1];
    let next_page = jobs::list_jobs(
        &mut conn,
        &JobFilter {
            limit: 10,
            before: Some((last.created_at, last.id)),
            ..JobFilter::of_user(Uuid::from_u128(THERAPIST))
        },
    )
    .unwrap();
    assert_eq!(
        next_page.iter().map(|j| j.id).collect::<Vec<_>>(),
        [jobs_made[2].id, done.id, jobs_made[0].id]
    );
    let completed = jobs::list_jobs(
        &mut conn,
        &JobFilter {
            status: Some(JobStatus::Completed),
            ..JobFilter::of_user(Uuid::from_u128(THERAPIST))
        },
    )
    .unwrap();
    assert_eq!(completed, [done.clone()]);
    let for_nobody = jobs::list_jobs(
        &mut conn,
        &JobFilter {
            patient_id: Some(Uuid::from_u128(THERAPIST)),
            ..JobFilter::of_user(Uuid::from_u128(THERAPIST))
        },
    )
    .unwrap();
    assert!(for_nobody.is_empty());

    assert!(
        jobs::list_expired(&mut conn, at(9, 11), 10)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        jobs::list_expired(&mut conn, at(9, 12), 10).unwrap(),
        [done.clone()]
    );
    assert_eq!(
        jobs::count_jobs_by_status(&mut conn).unwrap(),
        [(JobStatus::Pending, 5), (JobStatus::Completed, 1)]
    );
    assert_eq!(
        jobs::find_by_idempotency_key(&mut conn, Uuid::from_u128(THERAPIST), "key-3")
            .unwrap()
            .map(|j| j.id),
        Some(jobs_made[2].id)
    );
    assert!(jobs::delete_job(&mut conn, done.id).unwrap());
    assert_eq!(jobs::get_job(&mut conn, done.id).unwrap(), None);
    assert!(!jobs::delete_job(&mut conn, done.id).unwrap());
}

fn idempotency_keys_are_unique_per_user(db: &TestDatabase) {
    let mut conn = db.store.connection().unwrap();
    jobs::insert_job(&mut conn, &job(1, THERAPIST, 1)).unwrap();
    let same_key = ExportJob {
        id: Uuid::from_u128(399),
        ..job(1, THERAPIST, 2)
    };
    assert!(matches!(
        jobs::insert_job(&mut conn, &same_key),
        Err(StoreError::IdempotencyKeyTaken)
    ));
    let other_user = ExportJob {
        id: Uuid::from_u128(398),
        ..job(1, OTHER_THERAPIST, 2)
    };
    jobs::insert_job(&mut conn, &other_user).unwrap();
    let no_keys: Vec<ExportJob> = (0..2)
        .map(|n| ExportJob {
            id: Uuid::from_u128(390 + n),
            idempotency_key: None,
            ..job(7, THERAPIST, 3)
        })
        .collect();
    for j in &no_keys {
        jobs::insert_job(&mut conn, j).unwrap();
    }
    let same_id = ExportJob {
        idempotency_key: None,
        ..job(1, THERAPIST, 1)
    };
    assert!(matches!(
        jobs::insert_job(&mut conn, &same_id),
        Err(StoreError::AlreadyExists {
            table: "export_jobs"
        })
    ));
}

fn one_active_schedule_per_owner_template_patient(db: &TestDatabase) {
    let mut conn = db.store.connection().unwrap();
    templates::insert_template(&mut conn, &template(1, Some(THERAPIST), "Monthly")).unwrap();
    let first = schedule(1, 1, Some(PATIENT));
    schedules::insert_schedule(&mut conn, &first).unwrap();
    assert_eq!(
        schedules::get_schedule(&mut conn, first.id).unwrap(),
        Some(first.clone())
    );

    let twin = schedule(2, 1, Some(PATIENT));
    assert!(matches!(
        schedules::insert_schedule(&mut conn, &twin),
        Err(StoreError::ScheduleAlreadyActive)
    ));
    // Without a patient, two active schedules of one template clash too.
    schedules::insert_schedule(&mut conn, &schedule(3, 1, None)).unwrap();
    assert!(matches!(
        schedules::insert_schedule(&mut conn, &schedule(4, 1, None)),
        Err(StoreError::ScheduleAlreadyActive)
    ));
    // A paused one does not count.
    let paused = ScheduledReport {
        is_active: false,
        ..twin.clone()
    };
    schedules::insert_schedule(&mut conn, &paused).unwrap();
    let resumed = ScheduledReport {
        is_active: true,
        ..paused
    };
    assert!(matches!(
        schedules::update_schedule(&mut conn, &resumed),
        Err(StoreError::ScheduleAlreadyActive)
    ));
    // A schedule needs its template.
    assert!(matches!(
        schedules::insert_schedule(&mut conn, &schedule(5, 99, None)),
        Err(StoreError::ForeignKey { .. })
    ));

    let ran = ScheduledReport {
        last_run_at: Some(at(10, 7)),
        next_run_at: Some(at(17, 7)),
        updated_at: at(10, 7),
        ..first.clone()
    };
    assert!(schedules::update_schedule(&mut conn, &ran).unwrap());
    let due: Vec<Uuid> = schedules::list_due(&mut conn, at(10, 7), 10)
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(due, [Uuid::from_u128(403)]);
    assert_eq!(
        schedules::list_schedules(&mut conn, Uuid::from_u128(THERAPIST))
            .unwrap()
            .len(),
        3
    );
    assert!(schedules::delete_schedule(&mut conn, first.id).unwrap());
    assert_eq!(schedules::get_schedule(&mut conn, first.id).unwrap(), None);
}

fn audit_entries_chain(db: &TestDatabase) {
    let mut conn = db.store.connection().unwrap();
    let actions = [
        AuditAction::Requested,
        AuditAction::Created,
        AuditAction::Downloaded,
    ];
    let appended: Vec<_> = actions
        .iter()
        .enumerate()
        .map(|(i, &action)| audit::append(&mut conn, audit_entry(i as u128, action)).unwrap())
        .collect();
    assert_eq!(
        appended.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(appended[0].prev_hash, GENESIS_HASH);
    assert_eq!(appended[1].prev_hash, appended[0].entry_hash);

    let stored = audit::list(&mut conn, &audit::AuditFilter::default()).unwrap();
    assert_eq!(stored, appended);
    let mut prev = GENESIS_HASH.to_owned();
    for entry in &stored {
        assert_eq!(
            entry.entry_hash,
            chain_hash(&prev, entry.sequence, &entry.entry),
            "entry {}",
            entry.sequence
        );
        prev = entry.entry_hash.clone();
    }
    let downloads = db.audit_of(AuditAction::Downloaded);
    assert_eq!(downloads, [appended[2].clone()]);
    let after_first = audit::list(
        &mut conn,
        &audit::AuditFilter {
            after_sequence: Some(1),
            limit: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(after_first, [appended[1].clone()]);
    let other = audit::list(
        &mut conn,
        &audit::AuditFilter {
            user_id: Some(Uuid::from_u128(OTHER_THERAPIST)),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(other.is_empty());
    // Days, inclusive at both ends, filtered in the database before any limit.
    let day = appended[0].entry.created_at.date_naive();
    let by_days = |from: Option<chrono::NaiveDate>, to: Option<chrono::NaiveDate>| {
        let filter = audit::AuditFilter {
            from,
            to,
            limit: Some(10),
            ..Default::default()
        };
        audit::list(&mut db.store.connection().unwrap(), &filter)
            .unwrap()
            .len()
    };
    assert_eq!(by_days(Some(day), Some(day)), 3);
    assert_eq!(by_days(day.succ_opt(), None), 0);
    assert_eq!(by_days(None, day.pred_opt()), 0);
}

fn migrations_twice_are_harmless(db: &TestDatabase) {
    people(db);
    assert_eq!(db.store.migrate().unwrap(), Vec::<String>::new());
    let again = db.reopen().unwrap();
    assert_eq!(again.migrate().unwrap(), Vec::<String>::new());
    let mut conn = again.connection().unwrap();
    assert_eq!(clinical::list_users(&mut conn, None).unwrap().len(), 3);
}

fn transactions_commit_all_or_nothing(db: &TestDatabase) {
    let failed: Result<(), StoreError> = db.store.transaction(|conn| {
        jobs::insert_job(conn, &job(1, THERAPIST, 1))?;
        audit::append(conn, audit_entry(1, AuditAction::Requested))?;
        // The same id again fails, and everything before it rolls back.
        jobs::insert_job(
            conn,
            &ExportJob {
                idempotency_key: None,
                ..job(1, THERAPIST, 1)
            },
        )?;
        Ok(())
    });
    assert!(matches!(failed, Err(StoreError::AlreadyExists { .. })));
    let mut conn = db.store.connection().unwrap();
    assert_eq!(
        jobs::get_job(&mut conn, Uuid::from_u128(301)).unwrap(),
        None
    );
    assert!(
        audit::list(&mut conn, &audit::AuditFilter::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn sqlite_connections_use_wal_foreign_keys_and_a_busy_timeout() {
    use diesel::prelude::*;
    use diesel::sql_types::{BigInt, Text};

    #[derive(QueryableByName)]
    struct Mode {
        #[diesel(sql_type = Text)]
        journal_mode: String,
    }
    #[derive(QueryableByName)]
    struct Flag {
        #[diesel(sql_type = BigInt)]
        foreign_keys: i64,
    }
    #[derive(QueryableByName)]
    struct Timeout {
        #[diesel(sql_type = BigInt)]
        timeout: i64,
    }
    let db = TestDatabase::sqlite();
    let mut conn = db.store.connection().unwrap();
    let conn: &mut export_store::DbConnection = &mut conn;
    let mode: Mode = diesel::sql_query("PRAGMA journal_mode")
        .get_result(conn)
        .unwrap();
    assert_eq!(mode.journal_mode, "wal");
    let flag: Flag = diesel::sql_query("PRAGMA foreign_keys")
        .get_result(conn)
        .unwrap();
    assert_eq!(flag.foreign_keys, 1);
    let timeout: Timeout = diesel::sql_query("PRAGMA busy_timeout")
        .get_result(conn)
        .unwrap();
    assert_eq!(timeout.timeout, 5000);
}

#[test]
fn urls_pick_the_backend() {
    use export_store::Backend;
    assert_eq!(
        Backend::of_url("postgres://h/db").unwrap().0,
        Backend::Postgres
    );
    assert_eq!(
        Backend::of_url("postgresql://h/db").unwrap().0,
        Backend::Postgres
    );
    assert_eq!(
        Backend::of_url("sqlite://data/x.db").unwrap(),
        (Backend::Sqlite, "data/x.db".to_owned())
    );
    assert_eq!(
        Backend::of_url("x.db").unwrap(),
        (Backend::Sqlite, "x.db".to_owned())
    );
    assert!(matches!(
        Backend::of_url("mysql://h/db"),
        Err(StoreError::UnsupportedUrl)
    ));
    assert!(matches!(
        Backend::of_url(""),
        Err(StoreError::UnsupportedUrl)
    ));
}
