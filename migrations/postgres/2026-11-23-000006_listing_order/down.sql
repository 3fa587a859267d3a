DROP INDEX goals_created_id;
DROP INDEX therapy_sessions_date_id;
