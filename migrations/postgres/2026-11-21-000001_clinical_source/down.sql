DROP TABLE treatment_plans;
DROP TABLE diagnoses;
DROP TABLE assessments;
DROP TABLE goals;
DROP TABLE therapy_sessions;
DROP TABLE therapist_patients;
DROP TABLE users;
