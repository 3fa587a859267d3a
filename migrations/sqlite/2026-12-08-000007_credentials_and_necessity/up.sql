-- What documents print about the clinician after their name ("LCSW", "PsyD"), and the
-- treatment plan's statement of medical necessity, which an insurer's summary carries.
ALTER TABLE users ADD COLUMN credentials TEXT;
ALTER TABLE treatment_plans ADD COLUMN medical_necessity TEXT;
