-- The clinical source tables the engine's own ClinicalSource reads: users, their care
-- relationships, sessions with transcripts and extracted notes, goals, assessments, diagnoses and
-- treatment plans. Ids are UUID text; JSON is stored as text; timestamps are UTC.

CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL,
    email TEXT NOT NULL,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('therapist', 'patient', 'admin')),
    date_of_birth DATE,
    created_at TIMESTAMP NOT NULL
);
CREATE UNIQUE INDEX users_email ON users (email);

CREATE TABLE therapist_patients (
    id TEXT PRIMARY KEY NOT NULL,
    therapist_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    relationship_type TEXT NOT NULL CHECK (relationship_type IN ('primary', 'secondary')),
    is_active BOOLEAN NOT NULL,
    started_on DATE NOT NULL
);
CREATE UNIQUE INDEX therapist_patients_pair ON therapist_patients (therapist_id, patient_id);
CREATE INDEX therapist_patients_patient ON therapist_patients (patient_id);

CREATE TABLE therapy_sessions (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    therapist_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_date TIMESTAMP NOT NULL,
    duration_seconds INTEGER NOT NULL CHECK (duration_seconds >= 0),
    status TEXT NOT NULL CHECK (status IN ('uploading', 'transcribing', 'transcribed',
                                           'extracting_notes', 'processed', 'failed')),
    transcript_text TEXT,
    transcript_segments TEXT NOT NULL,
    therapist_summary TEXT,
    patient_summary TEXT,
    extracted_notes TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX therapy_sessions_patient_date ON therapy_sessions (patient_id, session_date);
CREATE INDEX therapy_sessions_therapist ON therapy_sessions (therapist_id);

CREATE TABLE goals (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    therapist_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    description TEXT NOT NULL,
    baseline TEXT NOT NULL,
    current TEXT NOT NULL,
    progress_percentage INTEGER NOT NULL CHECK (progress_percentage BETWEEN 0 AND 100),
    status TEXT NOT NULL CHECK (status IN ('active', 'achieved', 'paused')),
    target_date DATE,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX goals_patient ON goals (patient_id);

CREATE TABLE assessments (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    instrument TEXT NOT NULL,
    score INTEGER NOT NULL CHECK (score >= 0),
    administered_on DATE NOT NULL,
    notes TEXT
);
CREATE INDEX assessments_patient_date ON assessments (patient_id, administered_on);

CREATE TABLE diagnoses (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    icd10_code TEXT NOT NULL,
    description TEXT NOT NULL,
    is_primary BOOLEAN NOT NULL,
    diagnosed_on DATE NOT NULL
);
CREATE INDEX diagnoses_patient ON diagnoses (patient_id);

CREATE TABLE treatment_plans (
    id TEXT PRIMARY KEY NOT NULL,
    patient_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    therapist_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    modality TEXT NOT NULL,
    frequency TEXT NOT NULL,
    prognosis TEXT NOT NULL,
    summary TEXT NOT NULL,
    start_date DATE NOT NULL,
    review_date DATE
);
CREATE INDEX treatment_plans_patient ON treatment_plans (patient_id);
