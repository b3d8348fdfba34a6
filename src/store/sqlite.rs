//! SQLite backend (the embedded default): WAL, one driver (rusqlite), a few reading
//! connections (`readers`), and one writing connection on a thread of its own (`writer`),
//! where queued writes share a transaction. The SQL is the shared item layer's (`sql`).

mod readers;
mod rotation;
mod writer;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;

use super::migrations;
use super::sql::store::{Driver, SqlStore};
use super::sql::{Dialect, Sql, SqlValue, WriteSql, Wrote};
use super::*;
use readers::Readers;
use rotation::refresh;
use writer::Writer;

/// gatehouse's record of the migrations applied (see `migrations`).
const MIGRATIONS_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS "gatehouse_migrations" ("version" integer PRIMARY KEY NOT NULL, "name" text NOT NULL, "applied_at" integer NOT NULL, "checksum" text)"#;

/// SQLite's SQL: uuids as text, timestamps stored as epoch milliseconds (as knex writes JS
/// dates) and read as text, so hand-written ISO values read too.
pub(super) static SQLITE: Dialect = Dialect {
    param: '?',
    typed_uuid: false,
    json_param: "",
    select: |kind| match kind {
        Kind::Timestamp => "CAST({c} AS TEXT)",
        _ => "{c}",
    },
    json_text: "{c}",
    is_distinct: "IS NOT",
    email_key: r#"gh_email_key("email")"#,
    second_before: "{t} - 1000",
    access_ids: r#"(SELECT group_concat("id") FROM (SELECT a."id" FROM "directus_access" a WHERE a."user" = u."id" ORDER BY a."sort" IS NULL, a."sort", a."id"))"#,
    show_ts: sqlite_ts,
};

/// The SQLite store: the shared SQL layer over this module's driver.
pub type SqliteStore = SqlStore<Sqlite>;

/// The SQLite driver: reading connections and the writer thread.
#[derive(Clone)]
pub struct Sqlite {
    read: Readers,
    writer: Writer,
}

/// Registers gatehouse's SQL functions on a rusqlite connection: `gh_email_key(text)` is
/// `crate::email::key` (SQLite's LOWER() only knows ASCII). They exist only in gatehouse's
/// connections and are used only in queries, never in the schema, so Directus is unaffected.
pub(super) fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "gh_email_key",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            Ok(match ctx.get_raw(0) {
                ValueRef::Text(bytes) => std::str::from_utf8(bytes).ok().map(crate::email::key),
                _ => None,
            })
        },
    )
}

impl SqlStore<Sqlite> {
    /// `acquire_timeout` bounds how long a read waits for a free reader (503 after that).
    pub async fn connect(
        path: &Path,
        readers: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Writer(format!("cannot create the folder {}: {e}", dir.display()))
            })?;
        }
        let writer = Writer::open(path)?;
        let read = Readers::open(path, readers.max(2), acquire_timeout)?;
        Ok(SqlStore {
            driver: Sqlite { read, writer },
        })
    }
}

/// The driver's form of a neutral value: uuids as text, timestamps as epoch milliseconds,
/// booleans as 0/1.
impl rusqlite::ToSql for SqlValue {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match self {
            SqlValue::Null(_) => ToSqlOutput::Owned(V::Null),
            SqlValue::Text(s) | SqlValue::Json(s) => {
                ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes()))
            }
            SqlValue::Int(n) => ToSqlOutput::Owned(V::Integer(*n)),
            SqlValue::Bool(b) => ToSqlOutput::Owned(V::Integer(i64::from(*b))),
            SqlValue::Uuid(u) => ToSqlOutput::Owned(V::Text(u.to_string())),
            SqlValue::Ts(t) => ToSqlOutput::Owned(V::Integer(ms(*t))),
        })
    }
}

/// A row's values, as stored (the decoder reads them by the column's kind).
fn row_values(row: &rusqlite::Row<'_>, n: usize) -> rusqlite::Result<Vec<SqlValue>> {
    (0..n)
        .map(|i| {
            Ok(match row.get_ref(i)? {
                ValueRef::Null => SqlValue::Null(Kind::Text),
                ValueRef::Integer(n) => SqlValue::Int(n),
                ValueRef::Real(f) => SqlValue::Text(f.to_string()),
                ValueRef::Text(b) | ValueRef::Blob(b) => {
                    SqlValue::Text(String::from_utf8_lossy(b).into_owned())
                }
            })
        })
        .collect()
}

/// Every row of `sql`, as neutral values.
fn rows(conn: &rusqlite::Connection, sql: &Sql) -> Result<Vec<Vec<SqlValue>>, StoreError> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let n = stmt.column_count();
    let rows = stmt.query_map(rusqlite::params_from_iter(sql.values.iter()), |row| {
        row_values(row, n)
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Directus on SQLite shows timestamps without milliseconds or zone (`2026-11-28T23:38:52`),
/// so gatehouse does too on this backend.
fn sqlite_ts(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// Runs the statements in order on the writer; the job's savepoint undoes them all if one
/// fails. The writer serialises every write of this process and its transaction holds the
/// database's write lock, so the email check and the write cannot interleave with another.
fn apply(conn: &rusqlite::Connection, stmts: &[WriteSql]) -> Result<Vec<Wrote>, StoreError> {
    let mut written = Vec::with_capacity(stmts.len());
    for s in stmts {
        if let Some((email, check)) = &s.email_taken {
            let taken: bool = conn
                .prepare_cached(&check.text)?
                .query_row(rusqlite::params_from_iter(check.values.iter()), |row| {
                    row.get(0)
                })?;
            if taken {
                return Err(email_conflict(email));
            }
        }
        let Some(sql) = &s.sql else {
            written.push(Wrote::Nothing);
            continue;
        };
        let mut stmt = conn.prepare_cached(&sql.text)?;
        let params = rusqlite::params_from_iter(sql.values.iter());
        let conflict = |e: rusqlite::Error| writer_conflict(s.c, e.into(), &s.item);
        let wrote = if s.returns_key {
            Wrote::Generated(stmt.query_row(params, |row| row.get(0)).map_err(conflict)?)
        } else if s.counts {
            Wrote::found(stmt.exists(params)?)
        } else {
            Wrote::found(stmt.execute(params).map_err(conflict)? > 0)
        };
        written.push(wrote);
    }
    Ok(written)
}

/// A unique violation from the writer, as `conflict_in` names it; a foreign-key violation
/// becomes `StoreError::ForeignKey`. SQLite does not say which column failed, so only the
/// collection is known (Directus, in `api/src/database/errors/dialects/sqlite.ts`, reports
/// none of the three).
fn writer_conflict(c: &Collection, e: StoreError, item: &Item) -> StoreError {
    use rusqlite::ffi::{
        SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_NOTNULL, SQLITE_CONSTRAINT_PRIMARYKEY,
        SQLITE_CONSTRAINT_UNIQUE,
    };
    match &e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, Some(msg)))
            if [SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY]
                .contains(&f.extended_code) =>
        {
            conflict_in(c, msg, item)
        }
        // `NOT NULL constraint failed: directus_settings.project_name`, read as Directus's
        // `api/src/database/errors/dialects/sqlite.ts` reads it.
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg))
            if f.extended_code == SQLITE_CONSTRAINT_NOTNULL =>
        {
            let column = msg
                .as_deref()
                .and_then(|m| m.rsplit_once(": "))
                .and_then(|(_, tc)| tc.split_once('.'));
            StoreError::NotNull {
                collection: Some(column.map_or(c.name, |(t, _)| t).to_string()),
                field: column.map(|(_, f)| f.to_string()),
            }
        }
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
            if f.extended_code == SQLITE_CONSTRAINT_FOREIGNKEY =>
        {
            StoreError::ForeignKey {
                collection: Some(c.name.to_string()),
                field: None,
                value: None,
            }
        }
        _ => e,
    }
}

#[async_trait]
impl Driver for Sqlite {
    const DIALECT: &'static Dialect = &SQLITE;

    /// The reading connections plus the one writer.
    fn pool_stats(&self) -> PoolStats {
        let (in_use, idle, max) = self.read.stats();
        PoolStats {
            open: (in_use + idle + 1) as u64,
            idle: idle as u64,
            max: (max + 1) as u64,
        }
    }

    async fn fetch(&self, sql: Sql, _kinds: Vec<Kind>) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.read.read(|conn| rows(conn, &sql)).await
    }

    async fn write(&self, sqls: Vec<Sql>) -> Result<Vec<u64>, StoreError> {
        self.writer
            .write(move |conn| {
                sqls.iter()
                    .map(|sql| {
                        let n = conn
                            .prepare_cached(&sql.text)?
                            .execute(rusqlite::params_from_iter(sql.values.iter()))?;
                        Ok(n as u64)
                    })
                    .collect()
            })
            .await
    }

    async fn write_returning(
        &self,
        sql: Sql,
        _kinds: Vec<Kind>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.writer.write(move |conn| rows(conn, &sql)).await
    }

    async fn apply(
        &self,
        stmts: Vec<WriteSql>,
        if_no_users: bool,
    ) -> Result<Option<Vec<Wrote>>, StoreError> {
        // The writer's transaction is BEGIN IMMEDIATE: the count and the inserts hold the
        // database's write lock, so another process bootstrapping the same file waits
        // (busy_timeout) and then finds the users.
        self.writer
            .write(move |conn| {
                if if_no_users {
                    let users: i64 = conn
                        .prepare_cached(r#"SELECT COUNT(*) FROM "directus_users""#)?
                        .query_row([], |row| row.get(0))?;
                    if users > 0 {
                        return Ok(None);
                    }
                }
                apply(conn, &stmts).map(Some)
            })
            .await
    }

    async fn refresh(&self, r: &Rotation) -> Result<Refreshed, StoreError> {
        let r = r.clone();
        self.writer.write(move |conn| refresh(conn, &r)).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // Each migration is checked and applied in one write transaction: another process
        // migrating the same file waits for the write lock (busy_timeout), then finds the
        // version recorded. A failed migration is undone whole, with its record.
        for m in migrations::SQLITE {
            self.writer
                .write(move |conn| {
                    conn.execute_batch(MIGRATIONS_TABLE)?;
                    // Tables created before gatehouse kept checksums gain the column.
                    let has_checksum: bool = conn.query_row(
                        r#"SELECT EXISTS (SELECT 1 FROM pragma_table_info('gatehouse_migrations') WHERE "name" = 'checksum')"#,
                        [],
                        |row| row.get(0),
                    )?;
                    if !has_checksum {
                        conn.execute_batch(
                            r#"ALTER TABLE "gatehouse_migrations" ADD COLUMN "checksum" text"#,
                        )?;
                    }
                    let recorded: Option<Option<String>> = conn
                        .query_row(
                            r#"SELECT "checksum" FROM "gatehouse_migrations" WHERE "version" = ?"#,
                            [m.version],
                            |row| row.get(0),
                        )
                        .optional()?;
                    match recorded {
                        Some(recorded) => {
                            if m.check_applied(recorded.as_deref())? {
                                conn.execute(
                                    r#"UPDATE "gatehouse_migrations" SET "checksum" = ? WHERE "version" = ?"#,
                                    params![m.checksum(), m.version],
                                )?;
                            }
                        }
                        None => {
                            conn.execute_batch(m.sql).map_err(|e| m.failed(e))?;
                            conn.execute(
                                r#"INSERT INTO "gatehouse_migrations" ("version", "name", "applied_at", "checksum") VALUES (?, ?, ?, ?)"#,
                                params![m.version, m.name, Utc::now().timestamp_millis(), m.checksum()],
                            )
                            .map_err(|e| m.failed(e))?;
                        }
                    }
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }
}
