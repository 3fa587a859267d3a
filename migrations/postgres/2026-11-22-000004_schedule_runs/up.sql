-- One row per due time of a scheduled report. The unique (schedule, due time) pair is what makes
-- a due time turn into one export job however many schedulers tick at once; the job itself is
-- submitted with an idempotency key made of the same pair, so a scheduler that died between the
-- two steps is finished by the next tick. Missed due times are coalesced into the run of the most
-- recent one and counted in `skipped`.
CREATE TABLE schedule_runs (
    id TEXT PRIMARY KEY NOT NULL,
    schedule_id TEXT NOT NULL REFERENCES scheduled_reports (id) ON DELETE CASCADE,
    due_at TIMESTAMP NOT NULL,
    skipped INTEGER NOT NULL CHECK (skipped >= 0),
    export_job_id TEXT,
    status TEXT NOT NULL CHECK (status IN ('submitting', 'submitted', 'refused', 'delivering',
                                           'delivered', 'delivery_failed')),
    delivery_attempts INTEGER NOT NULL CHECK (delivery_attempts >= 0),
    next_delivery_at TIMESTAMP,
    error_message TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX schedule_runs_due ON schedule_runs (schedule_id, due_at);
CREATE INDEX schedule_runs_status ON schedule_runs (status, next_delivery_at);

-- Who wants an email when one of their exports completes or fails.
CREATE TABLE notification_preferences (
    user_id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    on_completed BOOLEAN NOT NULL,
    on_failed BOOLEAN NOT NULL,
    updated_at TIMESTAMP NOT NULL
);

-- Each finished job is notified at most once: the row is claimed before the email goes out.
CREATE TABLE notifications (
    export_job_id TEXT PRIMARY KEY NOT NULL,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at TIMESTAMP,
    error_message TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX notifications_pending ON notifications (status, next_attempt_at);
