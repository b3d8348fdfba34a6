//! The migration runner's record: each applied migration's SHA-256 is kept in
//! `gatehouse_migrations."checksum"`, a changed file stops the start naming the file, and a
//! table from before checksums gains the column. These reach into the database directly, so
//! they are written per backend rather than through `contract!`.

use super::*;

/// The file texts the runner applies, as the repository holds them.
const SQLITE_0001: &str = include_str!("../../migrations/sqlite/0001_directus_auth_tables.sql");
const POSTGRES_0001: &str = include_str!("../../migrations/postgres/0001_directus_auth_tables.sql");

/// Runs statements on the test's database, outside any store.
async fn raw(db: &Database, sql: &str) {
    match db {
        Database::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("gatehouse.db")).expect("open");
            conn.execute_batch(sql).expect("raw SQL");
        }
        Database::Postgres { base, schema } => {
            let mut conn = sqlx::PgConnection::connect(base).await.expect("connect");
            let sql = format!("SET search_path TO \"{schema}\"; {sql}");
            sqlx::raw_sql(&sql)
                .execute(&mut conn)
                .await
                .expect("raw SQL");
        }
    }
}

/// The recorded (version, checksum) pairs.
async fn recorded(db: &Database) -> Vec<(i64, Option<String>)> {
    const SQL: &str =
        r#"SELECT "version", "checksum" FROM "gatehouse_migrations" ORDER BY "version""#;
    match db {
        Database::Sqlite(dir) => {
            let conn = rusqlite::Connection::open(dir.path().join("gatehouse.db")).expect("open");
            let mut stmt = conn.prepare(SQL).expect("prepare");
            let rows = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("query");
            rows.collect::<Result<_, _>>().expect("rows")
        }
        Database::Postgres { base, schema } => {
            let mut conn = sqlx::PgConnection::connect(base).await.expect("connect");
            sqlx::raw_sql(&format!("SET search_path TO \"{schema}\""))
                .execute(&mut conn)
                .await
                .expect("search_path");
            sqlx::query_as(SQL)
                .fetch_all(&mut conn)
                .await
                .expect("rows")
        }
    }
}

/// A migration whose recorded checksum differs from its file's is refused, naming the file.
async fn changed_migration_is_refused(db: Database, first_file: &str, first_text: &str) {
    let store = db.migrated().await;
    let rows = recorded(&db).await;
    assert_eq!(
        rows.len(),
        gatehouse::store::migrations::SQLITE.len(),
        "{rows:?}"
    );
    assert_eq!(rows[0], (1, Some(hex::encode(Sha256::digest(first_text)))));
    assert!(rows
        .iter()
        .all(|(_, sum)| sum.as_ref().is_some_and(|s| s.len() == 64)));
    store
        .migrate()
        .await
        .expect("an unchanged set migrates again");

    // As if the file had been edited after it was applied.
    raw(
        &db,
        r#"UPDATE "gatehouse_migrations" SET "checksum" = 'f00d' WHERE "version" = 1"#,
    )
    .await;
    match db.open().await.migrate().await {
        Err(StoreError::Migration(msg)) => {
            assert!(msg.contains(first_file), "{msg}");
            assert!(msg.contains("changed after it was applied"), "{msg}");
        }
        other => panic!("expected a migration error, got {other:?}"),
    }
    db.finish().await;
}

/// A `gatehouse_migrations` table from before checksums (no column) is upgraded: the
/// column is added and the applied migrations' checksums are recorded.
async fn old_table_gains_checksums(db: Database, first_text: &str) {
    db.migrated().await;
    raw(
        &db,
        r#"ALTER TABLE "gatehouse_migrations" DROP COLUMN "checksum""#,
    )
    .await;
    let store = db.open().await;
    store.migrate().await.expect("an old table is upgraded");
    let rows = recorded(&db).await;
    assert_eq!(
        rows.len(),
        gatehouse::store::migrations::SQLITE.len(),
        "{rows:?}"
    );
    assert_eq!(rows[0], (1, Some(hex::encode(Sha256::digest(first_text)))));
    assert!(rows[1].1.is_some(), "{rows:?}");
    // And the records now guard the files.
    store.migrate().await.expect("migrates again");
    db.finish().await;
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_migration_is_refused() {
        super::changed_migration_is_refused(
            Database::sqlite(),
            "migrations/sqlite/0001_directus_auth_tables.sql",
            SQLITE_0001,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn old_table_gains_checksums() {
        super::old_table_gains_checksums(Database::sqlite(), SQLITE_0001).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
    async fn changed_migration_is_refused() {
        let db = Database::postgres();
        super::changed_migration_is_refused(
            db,
            "migrations/postgres/0001_directus_auth_tables.sql",
            POSTGRES_0001,
        )
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
    async fn old_table_gains_checksums() {
        let db = Database::postgres();
        super::old_table_gains_checksums(db, POSTGRES_0001).await;
    }
}
