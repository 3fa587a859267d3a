-- Keyset pages of the sessions and goals datasets walk these in order; the patient is the last
-- column so an entry of another patient is skipped without reading its row.
CREATE INDEX therapy_sessions_date_id ON therapy_sessions (session_date, id, patient_id);
CREATE INDEX goals_created_id ON goals (created_at, id, patient_id);
