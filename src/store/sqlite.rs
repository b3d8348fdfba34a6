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
use uuid::Uuid;

use super::migrations;
use super::sql::{self, Dialect, Sql, SqlValue, WriteSql};
use super::*;
use readers::Readers;
use rotation::{insert_lineage, insert_session, refresh};
use writer::Writer;

/// gatehouse's record of the migrations applied (see `migrations`).
const MIGRATIONS_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS "gatehouse_migrations" ("version" integer PRIMARY KEY NOT NULL, "name" text NOT NULL, "applied_at" integer NOT NULL, "checksum" text)"#;

/// The health probe's write: one `gatehouse_meta` row holding the time of the last probe.
const PING_WRITE: &str = r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES ('health_probe', ?) ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value""#;

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
    access_ids: r#"(SELECT group_concat("id") FROM (SELECT a."id" FROM "directus_access" a WHERE a."user" = u."id" ORDER BY a."sort", a."id"))"#,
    show_ts: sqlite_ts,
};

#[derive(Clone)]
pub struct SqliteStore {
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

impl SqliteStore {
    /// `acquire_timeout` bounds how long a read waits for a free reader (503 after that).
    pub async fn connect(
        path: &Path,
        readers: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::Migration(format!("cannot create {}: {e}", dir.display()))
            })?;
        }
        let writer = Writer::open(path)?;
        let read = Readers::open(path, readers.max(2), acquire_timeout)?;
        Ok(Self { read, writer })
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

fn first_row(conn: &rusqlite::Connection, sql: &Sql) -> Result<Option<Vec<SqlValue>>, StoreError> {
    let mut stmt = conn.prepare_cached(&sql.text)?;
    let n = stmt.column_count();
    Ok(stmt
        .query_row(rusqlite::params_from_iter(sql.values.iter()), |row| {
            row_values(row, n)
        })
        .optional()?)
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// Directus on SQLite shows timestamps without milliseconds or zone (`2026-11-28T23:38:52`),
/// so gatehouse does too on this backend.
fn sqlite_ts(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

/// A unique violation from the writer, as `conflict_in` names it; a foreign-key violation
/// becomes `StoreError::ForeignKey`. SQLite does not say which column failed, so only the
/// collection is known (Directus, in `api/src/database/errors/dialects/sqlite.ts`, reports
/// none of the three).
fn writer_conflict(c: &Collection, e: StoreError, item: &Item) -> StoreError {
    use rusqlite::ffi::{
        SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE,
    };
    match &e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, Some(msg)))
            if [SQLITE_CONSTRAINT_UNIQUE, SQLITE_CONSTRAINT_PRIMARYKEY]
                .contains(&f.extended_code) =>
        {
            conflict_in(c, msg, item)
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

/// At most one `last_access` write per user per second (as the PostgreSQL backend).
const LAST_ACCESS_UPDATE: &str = r#"UPDATE "directus_users" SET "last_access" = ?1 WHERE "id" = ?2 AND ("last_access" IS NULL OR "last_access" < ?1 - 1000)"#;

/// The one text column `sql` selects for the row key `id`, on the writer.
fn texts(conn: &rusqlite::Connection, sql: &str, id: Uuid) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([id.to_string()], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Runs the statements in order on the writer; the job's savepoint undoes them all if one
/// fails. The writer serialises every write of this process and its transaction holds the
/// database's write lock, so the email check and the write cannot interleave with another.
fn apply(conn: &rusqlite::Connection, stmts: &[WriteSql]) -> Result<Vec<bool>, StoreError> {
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
            written.push(false);
            continue;
        };
        let mut stmt = conn.prepare_cached(&sql.text)?;
        let params = rusqlite::params_from_iter(sql.values.iter());
        let found = if s.counts {
            stmt.exists(params)?
        } else {
            stmt.execute(params)
                .map_err(|e| writer_conflict(s.c, e.into(), &s.item))?
                > 0
        };
        written.push(found);
    }
    Ok(written)
}

#[async_trait]
impl Store for SqliteStore {
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

    async fn ping(&self) -> Result<(), StoreError> {
        self.read
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await?;
        // A real write through the writer, answered after its commit: a `SELECT` succeeds on a
        // full disk or a read-only file while every login and refresh fails.
        let now = Utc::now().to_rfc3339();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(PING_WRITE)?.execute([&now])?;
                Ok(())
            })
            .await
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES (?, ?) ON CONFLICT ("key") DO NOTHING"#,
                )?
                .execute([&key, &value])?;
                Ok(conn
                    .prepare_cached(r#"SELECT "value" FROM "gatehouse_meta" WHERE "key" = ?"#)?
                    .query_row([&key], |row| row.get(0))?)
            })
            .await
    }

    async fn items_list(
        &self,
        c: &'static Collection,
        q: &ListQuery,
    ) -> Result<Vec<Item>, StoreError> {
        let Some(sql) = SQLITE.items_list(c, q)? else {
            return Ok(Vec::new());
        };
        let rows = self.read.read(|conn| rows(conn, &sql)).await?;
        rows.iter().map(|r| SQLITE.decode(c, r)).collect()
    }

    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError> {
        let sql = SQLITE.items_count(c);
        self.read
            .read(|conn| Ok(conn.prepare_cached(&sql)?.query_row([], |row| row.get(0))?))
            .await
    }

    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError> {
        let Some(sql) = SQLITE.item_get(c, id)? else {
            return Ok(None);
        };
        let row = self.read.read(|conn| first_row(conn, &sql)).await?;
        row.map(|r| SQLITE.decode(c, &r)).transpose()
    }

    async fn items_write(&self, ops: &[WriteOp]) -> Result<Vec<bool>, StoreError> {
        let stmts = ops
            .iter()
            .map(|op| SQLITE.write(op))
            .collect::<Result<Vec<_>, _>>()?;
        self.writer.write(move |conn| apply(conn, &stmts)).await
    }

    async fn items_write_if_no_users(&self, ops: &[WriteOp]) -> Result<bool, StoreError> {
        let stmts = ops
            .iter()
            .map(|op| SQLITE.write(op))
            .collect::<Result<Vec<_>, _>>()?;
        // The writer's transaction is BEGIN IMMEDIATE: the count and the inserts hold the
        // database's write lock, so another process bootstrapping the same file waits
        // (busy_timeout) and then finds the users.
        self.writer
            .write(move |conn| {
                let users: i64 = conn
                    .prepare_cached(r#"SELECT COUNT(*) FROM "directus_users""#)?
                    .query_row([], |row| row.get(0))?;
                if users > 0 {
                    return Ok(false);
                }
                apply(conn, &stmts)?;
                Ok(true)
            })
            .await
    }

    async fn user_by_static_token(&self, token: &str) -> Result<Option<Item>, StoreError> {
        let sql = SQLITE.user_by_static_token(token);
        let row = self.read.read(|conn| first_row(conn, &sql)).await?;
        row.map(|r| SQLITE.decode(&USERS, &r)).transpose()
    }

    async fn user_by_email(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let sql = SQLITE.user_by_email(key);
        let row = self.read.read(|conn| first_row(conn, &sql)).await?;
        row.map(|r| SQLITE.decode(&USERS, &r)).transpose()
    }

    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError> {
        let sql = SQLITE.user_with_access(id);
        let row = self.read.read(|conn| first_row(conn, &sql)).await?;
        row.map(|r| {
            let access = sql::opt_text_at(&r, USERS.fields.len(), "gh_access")?;
            Ok((
                SQLITE.decode(&USERS, &r)?,
                sql::access_ids(access.as_deref()),
            ))
        })
        .transpose()
    }

    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<Vec<(Item, Option<Uuid>)>, StoreError> {
        let sql = SQLITE.policies_for(roles, user);
        let rows = self.read.read(|conn| rows(conn, &sql)).await?;
        rows.iter()
            .map(|r| {
                let via = r
                    .get(POLICIES.fields.len())
                    .and_then(|v| v.as_uuid("").ok().flatten());
                Ok((SQLITE.decode(&POLICIES, r)?, via))
            })
            .collect()
    }

    async fn session_insert(&self, s: &Session, lineage: &Lineage) -> Result<(), StoreError> {
        let (s, lineage) = (s.clone(), lineage.clone());
        self.writer
            .write(move |conn| {
                insert_session(conn, &s)?;
                insert_lineage(conn, &lineage)
            })
            .await
    }

    async fn session_get(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let sql = SQLITE.session_get(token);
        let row = self.read.read(|conn| first_row(conn, &sql)).await?;
        row.map(|r| sql::session_from(&r, 0)).transpose()
    }

    async fn refresh_session(&self, r: &Rotation) -> Result<Refreshed, StoreError> {
        let r = r.clone();
        self.writer.write(move |conn| refresh(conn, &r)).await
    }

    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        let sql = r#"SELECT "token" FROM "directus_sessions" WHERE "user" = ?"#;
        self.writer.write(move |conn| texts(conn, sql, user)).await
    }

    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError> {
        let tokens = tokens.to_vec();
        self.writer
            .write(move |conn| {
                let mut stmt =
                    conn.prepare_cached(r#"DELETE FROM "directus_sessions" WHERE "token" = ?"#)?;
                let mut n = 0;
                for t in &tokens {
                    n += stmt.execute([t])? as u64;
                }
                Ok(n)
            })
            .await
    }

    async fn sessions_delete_user(
        &self,
        user: Uuid,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let keep = keep.map(str::to_string);
        self.writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        r#"DELETE FROM "directus_sessions" WHERE "user" = ? AND "token" IS NOT ?"#,
                    )?
                    .execute(params![user.to_string(), keep])? as u64)
            })
            .await
    }

    async fn sessions_purge_expired(
        &self,
        user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // In bounded chunks, each its own write: a purge after a busy hour (every refresh
        // leaves an old row behind) neither holds the writer nor balloons its page cache.
        const CHUNK: i64 = 1000;
        let user = user.map(|u| u.to_string());
        let statements = [
            r#"DELETE FROM "directus_sessions" WHERE "token" IN (SELECT "token" FROM "directus_sessions" WHERE "expires" < ?1 AND (?2 IS NULL OR "user" = ?2) LIMIT ?3)"#,
            r#"DELETE FROM "gatehouse_session_lineage" WHERE "token_hash" IN (SELECT "token_hash" FROM "gatehouse_session_lineage" WHERE "expires" < ?1 LIMIT ?3)"#,
        ];
        for sql in statements {
            loop {
                let user = user.clone();
                let deleted = self
                    .writer
                    .write(move |conn| {
                        // ?2 (the user) is unused by the second statement.
                        let n = conn
                            .prepare_cached(sql)?
                            .execute(params![ms(now), user, CHUNK])?;
                        Ok(n as i64)
                    })
                    .await?;
                if deleted < CHUNK {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn lineage_get(&self, token_hash: &str) -> Result<Option<Lineage>, StoreError> {
        let sql = SQLITE.lineage_get(token_hash);
        let row = self.read.read(|conn| first_row(conn, &sql)).await?;
        row.map(|r| sql::lineage_from(&r)).transpose()
    }

    async fn lineage_hashes(&self, family: Uuid) -> Result<Vec<String>, StoreError> {
        let sql = r#"SELECT "token_hash" FROM "gatehouse_session_lineage" WHERE "family" = ?"#;
        self.writer
            .write(move |conn| texts(conn, sql, family))
            .await
    }

    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached(LAST_ACCESS_UPDATE)?
                    .execute(params![ms(now), user.to_string()])?;
                Ok(())
            })
            .await
    }

    async fn login_failures(&self, user: Uuid) -> Result<i64, StoreError> {
        let n: Option<i64> = self
            .read
            .read(|conn| {
                Ok(conn
                    .prepare_cached(
                        r#"SELECT "attempts" FROM "gatehouse_login_attempts" WHERE "user" = ?"#,
                    )?
                    .query_row([user.to_string()], |row| row.get(0))
                    .optional()?)
            })
            .await?;
        Ok(n.unwrap_or(0))
    }

    async fn login_failure(&self, user: Uuid) -> Result<i64, StoreError> {
        self.writer
            .write(move |conn| {
                Ok(conn
                    .prepare_cached(
                        r#"INSERT INTO "gatehouse_login_attempts" ("user", "attempts") VALUES (?, 1)
                           ON CONFLICT ("user") DO UPDATE SET "attempts" = "gatehouse_login_attempts"."attempts" + 1 RETURNING "attempts""#,
                    )?
                    .query_row([user.to_string()], |row| row.get(0))?)
            })
            .await
    }

    async fn login_attempts_reset(&self, user: Uuid) -> Result<(), StoreError> {
        self.writer
            .write(move |conn| {
                conn.prepare_cached(r#"DELETE FROM "gatehouse_login_attempts" WHERE "user" = ?"#)?
                    .execute([user.to_string()])?;
                Ok(())
            })
            .await
    }

    async fn activity_insert(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), StoreError> {
        let a = a.clone();
        self.writer
            .write(move |conn| {
                conn.prepare_cached(
                    r#"INSERT INTO "directus_activity" ("action", "user", "timestamp", "ip", "user_agent", "collection", "item", "origin")
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?)"#,
                )?
                .execute(params![
                    a.action,
                    a.user.map(|u| u.to_string()),
                    ms(now),
                    a.ip,
                    a.user_agent,
                    a.collection,
                    a.item,
                    a.origin,
                ])?;
                Ok(())
            })
            .await
    }
}
