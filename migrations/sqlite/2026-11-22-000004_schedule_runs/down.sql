DROP TABLE notifications;
DROP TABLE notification_preferences;
DROP TABLE schedule_runs;
