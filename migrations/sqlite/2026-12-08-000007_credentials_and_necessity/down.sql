ALTER TABLE treatment_plans DROP COLUMN medical_necessity;
ALTER TABLE users DROP COLUMN credentials;
