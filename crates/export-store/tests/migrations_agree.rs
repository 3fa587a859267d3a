//! The SQLite and the PostgreSQL migrations describe one schema: after both have run, the
//! tables, their columns (in order, with the type, normalised across the two dialects, whether
//! they take NULL and the primary key), the indexes (named ones by name; unique constraints by
//! their columns; partial or not), and the foreign keys with their `ON DELETE` rule are the same.
//! A migration added to one folder and not the other, or written differently, fails here.
//! Needs EXPORT_TEST_POSTGRES_URL (says it was skipped otherwise).

use std::collections::BTreeSet;

use diesel::sql_types::{BigInt, Bool, Nullable, Text};
use diesel::{Connection, PgConnection, QueryableByName, RunQueryDsl, SqliteConnection};
use export_store::testing::TestDatabase;

/// One column as both databases are made to describe it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Column {
    table: String,
    position: i64,
    name: String,
    kind: String,
    not_null: bool,
    primary_key: bool,
}

/// An index: `name` is `None` for one that backs a UNIQUE constraint (each dialect names those
/// its own way).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Index {
    table: String,
    name: Option<String>,
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    table: String,
    column: String,
    references: String,
    referenced_column: String,
    on_delete: String,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Schema {
    columns: Vec<Column>,
    indexes: BTreeSet<Index>,
    foreign_keys: BTreeSet<ForeignKey>,
}

#[derive(QueryableByName)]
struct ColumnRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = BigInt)]
    position: i64,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    data_type: String,
    #[diesel(sql_type = Bool)]
    not_null: bool,
    #[diesel(sql_type = Bool)]
    primary_key: bool,
}

#[derive(QueryableByName)]
struct IndexRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    index_name: String,
    #[diesel(sql_type = Bool)]
    named: bool,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Bool)]
    partial: bool,
    #[diesel(sql_type = BigInt)]
    ord: i64,
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
}

#[derive(QueryableByName)]
struct ForeignKeyRow {
    #[diesel(sql_type = Text)]
    table_name: String,
    #[diesel(sql_type = Text)]
    column_name: String,
    #[diesel(sql_type = Text)]
    ref_table: String,
    #[diesel(sql_type = Text)]
    ref_column: String,
    #[diesel(sql_type = Text)]
    on_delete: String,
}

/// An index's row of description and its columns with their places.
type IndexColumns = (IndexRow, Vec<(i64, String)>);

/// A type in one spelling: lower case, PostgreSQL's long names shortened to the DDL's words.
fn normalised(kind: &str, length: Option<i64>) -> String {
    let kind = kind.trim().to_ascii_lowercase();
    let kind = match kind.as_str() {
        "timestamp without time zone" => "timestamp".to_owned(),
        "character varying" => format!("varchar({})", length.unwrap_or(0)),
        "int" | "int4" => "integer".to_owned(),
        "int8" => "bigint".to_owned(),
        "bool" => "boolean".to_owned(),
        other => other.to_owned(),
    };
    kind.replace(' ', "")
}

fn schema(columns: Vec<ColumnRow>, indexes: Vec<IndexRow>, keys: Vec<ForeignKeyRow>) -> Schema {
    let mut schema = Schema::default();
    for row in columns {
        let (kind, length) = match row.data_type.split_once('|') {
            Some((kind, length)) => (kind.to_owned(), length.parse().ok()),
            None => (row.data_type.clone(), None),
        };
        schema.columns.push(Column {
            table: row.table_name,
            position: row.position,
            name: row.column_name,
            kind: normalised(&kind, length),
            // A primary key takes no NULL in either, whatever the DDL spelled out.
            not_null: row.not_null || row.primary_key,
            primary_key: row.primary_key,
        });
    }
    schema.columns.sort();
    let mut grouped: std::collections::BTreeMap<(String, String), IndexColumns> =
        Default::default();
    for row in indexes {
        let key = (row.table_name.clone(), row.index_name.clone());
        let column = row
            .column_name
            .clone()
            .unwrap_or_else(|| "(expression)".into());
        let ord = row.ord;
        grouped
            .entry(key)
            .or_insert_with(|| (row, Vec::new()))
            .1
            .push((ord, column));
    }
    for ((table, name), (row, mut columns)) in grouped {
        columns.sort();
        schema.indexes.insert(Index {
            table,
            name: row.named.then_some(name),
            columns: columns.into_iter().map(|(_, c)| c).collect(),
            unique: row.is_unique,
            partial: row.partial,
        });
    }
    schema.foreign_keys = keys
        .into_iter()
        .map(|row| ForeignKey {
            table: row.table_name,
            column: row.column_name,
            references: row.ref_table,
            referenced_column: row.ref_column,
            on_delete: row.on_delete.to_ascii_uppercase(),
        })
        .collect();
    schema
}

fn sqlite_schema(url: &str) -> Schema {
    let mut conn = SqliteConnection::establish(url).unwrap();
    let tables = "m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND m.name NOT LIKE '__diesel%'";
    let columns = diesel::sql_query(format!(
        "SELECT m.name AS table_name, p.cid AS position, p.name AS column_name, \
         p.type AS data_type, p.\"notnull\" <> 0 AS not_null, p.pk > 0 AS primary_key \
         FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE {tables}"
    ))
    .load::<ColumnRow>(&mut conn)
    .unwrap();
    // Indexes made by CREATE INDEX, and those behind UNIQUE constraints; not primary keys.
    let indexes = diesel::sql_query(format!(
        "SELECT m.name AS table_name, l.name AS index_name, l.origin = 'c' AS named, \
         l.\"unique\" <> 0 AS is_unique, l.partial <> 0 AS partial, i.seqno AS ord, \
         i.name AS column_name \
         FROM sqlite_master m JOIN pragma_index_list(m.name) l JOIN pragma_index_info(l.name) i \
         WHERE {tables} AND l.origin <> 'pk'"
    ))
    .load::<IndexRow>(&mut conn)
    .unwrap();
    let keys = diesel::sql_query(format!(
        "SELECT m.name AS table_name, f.\"from\" AS column_name, f.\"table\" AS ref_table, \
         f.\"to\" AS ref_column, f.on_delete AS on_delete \
         FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f WHERE {tables}"
    ))
    .load::<ForeignKeyRow>(&mut conn)
    .unwrap();
    schema(columns, indexes, keys)
}

fn postgres_schema(url: &str) -> Schema {
    let mut conn = PgConnection::establish(url).unwrap();
    let columns = diesel::sql_query(
        "SELECT c.table_name::text AS table_name, (c.ordinal_position - 1)::bigint AS position, \
         c.column_name::text AS column_name, \
         c.data_type || coalesce('|' || c.character_maximum_length, '') AS data_type, \
         c.is_nullable = 'NO' AS not_null, \
         EXISTS (SELECT 1 FROM information_schema.table_constraints t \
                 JOIN information_schema.key_column_usage k \
                   ON k.constraint_name = t.constraint_name AND k.table_name = t.table_name \
                 WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = 'public' \
                   AND t.table_name = c.table_name AND k.column_name = c.column_name) \
           AS primary_key \
         FROM information_schema.columns c \
         WHERE c.table_schema = 'public' AND c.table_name NOT LIKE '__diesel%'",
    )
    .load::<ColumnRow>(&mut conn)
    .unwrap();
    let indexes = diesel::sql_query(
        "SELECT t.relname::text AS table_name, i.relname::text AS index_name, \
         NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) AS named, \
         x.indisunique AS is_unique, x.indpred IS NOT NULL AS partial, \
         (k.ord - 1)::bigint AS ord, a.attname::text AS column_name \
         FROM pg_index x \
         JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, ord) \
         LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE n.nspname = 'public' AND NOT x.indisprimary \
           AND t.relname NOT LIKE '__diesel%'",
    )
    .load::<IndexRow>(&mut conn)
    .unwrap();
    let keys = diesel::sql_query(
        "SELECT cl.relname::text AS table_name, a.attname::text AS column_name, \
         rt.relname::text AS ref_table, ra.attname::text AS ref_column, \
         CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'n' THEN 'SET NULL' \
           WHEN 'd' THEN 'SET DEFAULT' WHEN 'r' THEN 'RESTRICT' ELSE 'NO ACTION' END \
           AS on_delete \
         FROM pg_constraint c \
         JOIN pg_class cl ON cl.oid = c.conrelid \
         JOIN pg_namespace n ON n.oid = cl.relnamespace \
         JOIN pg_class rt ON rt.oid = c.confrelid \
         CROSS JOIN LATERAL unnest(c.conkey, c.confkey) AS k(col, ref) \
         JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.col \
         JOIN pg_attribute ra ON ra.attrelid = c.confrelid AND ra.attnum = k.ref \
         WHERE c.contype = 'f' AND n.nspname = 'public'",
    )
    .load::<ForeignKeyRow>(&mut conn)
    .unwrap();
    schema(columns, indexes, keys)
}

#[test]
fn the_sqlite_and_postgresql_migrations_make_the_same_schema() {
    let Some(postgres) =
        TestDatabase::postgres("the_sqlite_and_postgresql_migrations_make_the_same_schema")
    else {
        return;
    };
    let sqlite = TestDatabase::sqlite();
    let (lite, pg) = (sqlite_schema(&sqlite.url), postgres_schema(&postgres.url));
    assert!(lite.columns.len() > 50, "the schema was read: {lite:?}");
    assert!(!lite.indexes.is_empty() && !lite.foreign_keys.is_empty());

    let only = |a: &[Column], b: &[Column]| -> Vec<Column> {
        a.iter().filter(|c| !b.contains(c)).cloned().collect()
    };
    assert_eq!(
        (
            only(&lite.columns, &pg.columns),
            only(&pg.columns, &lite.columns)
        ),
        (Vec::new(), Vec::new()),
        "columns only in SQLite, and only in PostgreSQL"
    );
    let (lite_only, pg_only): (Vec<_>, Vec<_>) = (
        lite.indexes.difference(&pg.indexes).collect(),
        pg.indexes.difference(&lite.indexes).collect(),
    );
    assert_eq!(
        (lite_only, pg_only),
        (Vec::new(), Vec::new()),
        "indexes only in SQLite, and only in PostgreSQL"
    );
    let (lite_only, pg_only): (Vec<_>, Vec<_>) = (
        lite.foreign_keys.difference(&pg.foreign_keys).collect(),
        pg.foreign_keys.difference(&lite.foreign_keys).collect(),
    );
    assert_eq!(
        (lite_only, pg_only),
        (Vec::new(), Vec::new()),
        "foreign keys only in SQLite, and only in PostgreSQL"
    );
}

#[test]
fn types_are_normalised_across_the_dialects() {
    for (sqlite, postgres, length) in [
        ("TEXT", "text", None),
        ("TIMESTAMP", "timestamp without time zone", None),
        ("VARCHAR(45)", "character varying", Some(45)),
        ("BIGINT", "bigint", None),
        ("BOOLEAN", "boolean", None),
        ("INTEGER", "integer", None),
    ] {
        assert_eq!(normalised(sqlite, None), normalised(postgres, length));
    }
    assert_ne!(normalised("TEXT", None), normalised("integer", None));
    assert_ne!(
        normalised("VARCHAR(45)", None),
        normalised("character varying", Some(46))
    );
}

#[test]
fn a_schema_that_drifted_is_told_apart() {
    let Some(postgres) = TestDatabase::postgres("a_schema_that_drifted_is_told_apart") else {
        return;
    };
    let sqlite = TestDatabase::sqlite();
    assert_eq!(sqlite_schema(&sqlite.url), postgres_schema(&postgres.url));
    // What a migration forgotten in one folder would leave.
    postgres.execute("ALTER TABLE users ADD COLUMN nickname TEXT");
    let drifted = postgres_schema(&postgres.url);
    let lite = sqlite_schema(&sqlite.url);
    assert!(drifted.columns.iter().any(|c| c.name == "nickname"));
    assert_ne!(lite.columns, drifted.columns);
    sqlite.execute("ALTER TABLE users ADD COLUMN nickname TEXT");
    assert_eq!(sqlite_schema(&sqlite.url), postgres_schema(&postgres.url));
    sqlite.execute("CREATE INDEX users_nickname ON users (nickname)");
    assert_ne!(
        sqlite_schema(&sqlite.url).indexes,
        postgres_schema(&postgres.url).indexes
    );
    postgres.execute("CREATE INDEX users_nickname ON users (nickname) WHERE nickname IS NOT NULL");
    assert_ne!(
        sqlite_schema(&sqlite.url).indexes,
        postgres_schema(&postgres.url).indexes,
        "a partial index is not the full one"
    );
}
