DROP TABLE scheduled_reports;
DROP TABLE export_audit_log;
DROP TABLE export_jobs;
DROP TABLE export_templates;
