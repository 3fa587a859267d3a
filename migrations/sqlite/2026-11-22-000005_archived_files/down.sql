DROP TABLE archived_files;
