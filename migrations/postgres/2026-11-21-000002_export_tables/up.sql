-- PostgreSQL flavour; kept in step with migrations/sqlite (the DDL is the same today).
-- The engine's own tables: templates, export jobs, the audit trail and scheduled reports.
-- Owners, patients and actors are ids from the clinical source, which an embedding service may
-- keep in its own database, so these tables hold no foreign keys into the clinical tables.
-- The audit trail has no foreign keys at all: it outlives the jobs it describes, and its rows are
-- never updated (a hash chain covers them).

CREATE TABLE export_templates (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    description TEXT,
    export_type TEXT NOT NULL CHECK (export_type IN ('session_notes', 'progress_report',
                                                     'treatment_summary', 'full_record', 'dataset')),
    format TEXT NOT NULL CHECK (format IN ('pdf', 'docx', 'json', 'csv', 'xlsx')),
    template_content TEXT NOT NULL,
    include_sections TEXT NOT NULL,
    is_system BOOLEAN NOT NULL,
    created_by TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX export_templates_name_per_owner ON export_templates (created_by, name)
    WHERE created_by IS NOT NULL;
CREATE UNIQUE INDEX export_templates_system_name ON export_templates (name)
    WHERE created_by IS NULL;
CREATE INDEX export_templates_export_type ON export_templates (export_type);

CREATE TABLE export_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    patient_id TEXT,
    template_id TEXT REFERENCES export_templates (id) ON DELETE SET NULL,
    export_type TEXT NOT NULL CHECK (export_type IN ('session_notes', 'progress_report',
                                                     'treatment_summary', 'full_record', 'dataset')),
    format TEXT NOT NULL CHECK (format IN ('pdf', 'docx', 'json', 'csv', 'xlsx')),
    status TEXT NOT NULL CHECK (status IN ('pending', 'processing', 'completed', 'failed',
                                           'cancelled', 'expired')),
    parameters TEXT NOT NULL,
    idempotency_key TEXT,
    file_key TEXT,
    file_size_bytes BIGINT,
    sha256 TEXT,
    row_count BIGINT,
    error_message TEXT,
    progress_percent INTEGER NOT NULL CHECK (progress_percent BETWEEN 0 AND 100),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    max_attempts INTEGER NOT NULL CHECK (max_attempts >= 1),
    lease_owner TEXT,
    lease_expires_at TIMESTAMP,
    run_after TIMESTAMP NOT NULL,
    started_at TIMESTAMP,
    completed_at TIMESTAMP,
    expires_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX export_jobs_queue ON export_jobs (status, run_after);
CREATE INDEX export_jobs_user_created ON export_jobs (user_id, created_at DESC);
CREATE INDEX export_jobs_user_status_created ON export_jobs (user_id, status, created_at DESC);
CREATE INDEX export_jobs_patient ON export_jobs (patient_id);
CREATE INDEX export_jobs_patient_status ON export_jobs (patient_id, status);
CREATE INDEX export_jobs_expires ON export_jobs (expires_at);
CREATE INDEX export_jobs_template ON export_jobs (template_id);
CREATE UNIQUE INDEX export_jobs_idempotency ON export_jobs (user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

CREATE TABLE export_audit_log (
    id TEXT PRIMARY KEY NOT NULL,
    sequence BIGINT NOT NULL,
    export_job_id TEXT,
    user_id TEXT,
    patient_id TEXT,
    action TEXT NOT NULL CHECK (action IN ('requested', 'created', 'downloaded', 'deleted',
                                           'expired', 'shared', 'failed', 'cancelled')),
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'denied', 'error')),
    ip_address VARCHAR(45),
    user_agent TEXT,
    request_id TEXT,
    metadata TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE UNIQUE INDEX export_audit_log_sequence ON export_audit_log (sequence);
CREATE INDEX export_audit_log_job ON export_audit_log (export_job_id);
CREATE INDEX export_audit_log_user_created ON export_audit_log (user_id, created_at DESC);
CREATE INDEX export_audit_log_patient ON export_audit_log (patient_id);
CREATE INDEX export_audit_log_patient_created ON export_audit_log (patient_id, created_at DESC);
CREATE INDEX export_audit_log_action ON export_audit_log (action);

CREATE TABLE scheduled_reports (
    id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    template_id TEXT NOT NULL REFERENCES export_templates (id),
    patient_id TEXT,
    schedule_type TEXT NOT NULL CHECK (schedule_type IN ('daily', 'weekly', 'monthly', 'cron')),
    schedule_config TEXT NOT NULL,
    timezone TEXT NOT NULL,
    parameters TEXT NOT NULL,
    delivery_method TEXT NOT NULL CHECK (delivery_method IN ('storage', 'email')),
    email_recipients TEXT NOT NULL,
    attach_file BOOLEAN NOT NULL,
    is_active BOOLEAN NOT NULL,
    last_run_at TIMESTAMP,
    next_run_at TIMESTAMP,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX scheduled_reports_user ON scheduled_reports (user_id);
CREATE INDEX scheduled_reports_patient ON scheduled_reports (patient_id);
CREATE INDEX scheduled_reports_template ON scheduled_reports (template_id);
CREATE INDEX scheduled_reports_next_run ON scheduled_reports (next_run_at);
CREATE INDEX scheduled_reports_due ON scheduled_reports (next_run_at) WHERE is_active;
-- One active schedule per (owner, template, patient); a schedule without a patient counts as one.
CREATE UNIQUE INDEX scheduled_reports_one_active
    ON scheduled_reports (user_id, template_id, COALESCE(patient_id, ''))
    WHERE is_active;
