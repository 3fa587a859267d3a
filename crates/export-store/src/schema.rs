//! The diesel schema of both backends, written to match `migrations/` column for column (the
//! store's tests round-trip every table on SQLite and PostgreSQL, which catches any drift).

#![cfg_attr(rustfmt, rustfmt_skip)]

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        first_name -> Text,
        last_name -> Text,
        role -> Text,
        date_of_birth -> Nullable<Date>,
        created_at -> Timestamp,
        credentials -> Nullable<Text>,
    }
}

diesel::table! {
    therapist_patients (id) {
        id -> Text,
        therapist_id -> Text,
        patient_id -> Text,
        relationship_type -> Text,
        is_active -> Bool,
        started_on -> Date,
    }
}

diesel::table! {
    therapy_sessions (id) {
        id -> Text,
        patient_id -> Text,
        therapist_id -> Text,
        session_date -> Timestamp,
        duration_seconds -> Integer,
        status -> Text,
        transcript_text -> Nullable<Text>,
        transcript_segments -> Text,
        therapist_summary -> Nullable<Text>,
        patient_summary -> Nullable<Text>,
        extracted_notes -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    goals (id) {
        id -> Text,
        patient_id -> Text,
        therapist_id -> Text,
        description -> Text,
        baseline -> Text,
        current -> Text,
        progress_percentage -> Integer,
        status -> Text,
        target_date -> Nullable<Date>,
        created_at -> Timestamp,
    }
}

diesel::table! {
    assessments (id) {
        id -> Text,
        patient_id -> Text,
        instrument -> Text,
        score -> Integer,
        administered_on -> Date,
        notes -> Nullable<Text>,
    }
}

diesel::table! {
    diagnoses (id) {
        id -> Text,
        patient_id -> Text,
        icd10_code -> Text,
        description -> Text,
        is_primary -> Bool,
        diagnosed_on -> Date,
    }
}

diesel::table! {
    treatment_plans (id) {
        id -> Text,
        patient_id -> Text,
        therapist_id -> Text,
        modality -> Text,
        frequency -> Text,
        prognosis -> Text,
        summary -> Text,
        start_date -> Date,
        review_date -> Nullable<Date>,
        medical_necessity -> Nullable<Text>,
    }
}

diesel::table! {
    export_templates (id) {
        id -> Text,
        name -> Text,
        description -> Nullable<Text>,
        export_type -> Text,
        format -> Text,
        template_content -> Text,
        include_sections -> Text,
        is_system -> Bool,
        created_by -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    export_jobs (id) {
        id -> Text,
        user_id -> Text,
        patient_id -> Nullable<Text>,
        template_id -> Nullable<Text>,
        export_type -> Text,
        format -> Text,
        status -> Text,
        parameters -> Text,
        idempotency_key -> Nullable<Text>,
        file_key -> Nullable<Text>,
        file_size_bytes -> Nullable<BigInt>,
        sha256 -> Nullable<Text>,
        row_count -> Nullable<BigInt>,
        error_message -> Nullable<Text>,
        progress_percent -> Integer,
        attempts -> Integer,
        max_attempts -> Integer,
        lease_owner -> Nullable<Text>,
        lease_expires_at -> Nullable<Timestamp>,
        run_after -> Timestamp,
        started_at -> Nullable<Timestamp>,
        completed_at -> Nullable<Timestamp>,
        expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        wrapped_key -> Nullable<Text>,
    }
}

diesel::table! {
    export_audit_log (id) {
        id -> Text,
        sequence -> BigInt,
        export_job_id -> Nullable<Text>,
        user_id -> Nullable<Text>,
        patient_id -> Nullable<Text>,
        action -> Text,
        outcome -> Text,
        ip_address -> Nullable<Text>,
        user_agent -> Nullable<Text>,
        request_id -> Nullable<Text>,
        metadata -> Text,
        created_at -> Timestamp,
        prev_hash -> Text,
        entry_hash -> Text,
    }
}

diesel::table! {
    scheduled_reports (id) {
        id -> Text,
        user_id -> Text,
        template_id -> Text,
        patient_id -> Nullable<Text>,
        schedule_type -> Text,
        schedule_config -> Text,
        timezone -> Text,
        parameters -> Text,
        delivery_method -> Text,
        email_recipients -> Text,
        attach_file -> Bool,
        is_active -> Bool,
        last_run_at -> Nullable<Timestamp>,
        next_run_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    schedule_runs (id) {
        id -> Text,
        schedule_id -> Text,
        due_at -> Timestamp,
        skipped -> Integer,
        export_job_id -> Nullable<Text>,
        status -> Text,
        delivery_attempts -> Integer,
        next_delivery_at -> Nullable<Timestamp>,
        error_message -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    notification_preferences (user_id) {
        user_id -> Text,
        email -> Text,
        on_completed -> Bool,
        on_failed -> Bool,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    notifications (export_job_id) {
        export_job_id -> Text,
        user_id -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        error_message -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    archived_files (export_job_id) {
        export_job_id -> Text,
        file_key -> Text,
        wrapped_key -> Text,
        size_bytes -> BigInt,
        archived_at -> Timestamp,
    }
}

diesel::joinable!(export_jobs -> export_templates (template_id));
diesel::joinable!(schedule_runs -> scheduled_reports (schedule_id));
diesel::joinable!(scheduled_reports -> export_templates (template_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    therapist_patients,
    therapy_sessions,
    goals,
    assessments,
    diagnoses,
    treatment_plans,
    export_templates,
    export_jobs,
    export_audit_log,
    scheduled_reports,
    schedule_runs,
    notification_preferences,
    notifications,
    archived_files
);
