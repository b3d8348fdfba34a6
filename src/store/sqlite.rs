//! SQLite backend (the embedded default): WAL, a pool of sqlx readers, and one writing
//! connection on a thread of its own (`writer`), where queued writes share a transaction.

mod rotation;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, OptionalExtension};
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool};
use uuid::Uuid;

use super::*;
use rotation::{insert_lineage, insert_session, refresh};
use writer::Writer;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "directus_auth_tables",
        include_str!("../../migrations/sqlite/0001_directus_auth_tables.sql"),
    ),
    (
        2,
        "gatehouse_tables",
        include_str!("../../migrations/sqlite/0002_gatehouse_tables.sql"),
    ),
];

/// The health probe's write: one `gatehouse_meta` row holding the time of the last probe.
const PING_WRITE: &str = r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES ('health_probe', ?) ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value""#;

#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    writer: Writer,
    /// A reading connection with gatehouse's SQL functions, for lookups SQLite's own functions
    /// cannot express (Unicode email comparison).
    lookup: Arc<Mutex<rusqlite::Connection>>,
}

/// Registers gatehouse's SQL functions on a rusqlite connection: `gh_email_key(text)` is
/// `crate::email::key` (SQLite's LOWER() only knows ASCII). They exist only in gatehouse's
/// connections and are used only in queries, never in the schema, so Directus is unaffected.
pub(super) fn register_functions(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
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

type Q<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

impl SqliteStore {
    /// `acquire_timeout` bounds how long a read waits for a free reader (503 after that).
    pub async fn connect(
        path: &Path,
        readers: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Database(sqlx::Error::Io(e)))?;
        }
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // Readers keep SQLite's default page cache (2 MB each): there are up to
            // DB_MAX_CONNECTIONS of them, and the operating system caches the file anyway.
            .pragma("temp_store", "memory");
        let writer = Writer::open(path)?;
        let lookup = rusqlite::Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        lookup.busy_timeout(Duration::from_secs(10))?;
        register_functions(&lookup)?;
        let read = SqlitePoolOptions::new()
            .max_connections(readers.max(2))
            .acquire_timeout(acquire_timeout)
            .connect_with(opts)
            .await?;
        Ok(Self {
            read,
            writer,
            lookup: Arc::new(Mutex::new(lookup)),
        })
    }
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn parse_text_ts(s: &str) -> Option<DateTime<Utc>> {
    match s.parse::<i64>() {
        Ok(n) => DateTime::from_timestamp_millis(n),
        Err(_) => parse_ts(&Value::String(s.to_string())),
    }
}

/// Directus on SQLite shows timestamps without milliseconds or zone (`2026-11-28T23:38:52`),
/// so gatehouse does too on this backend.
fn sqlite_ts(t: DateTime<Utc>) -> Value {
    Value::String(t.format("%Y-%m-%dT%H:%M:%S").to_string())
}

fn select_list(c: &Collection) -> String {
    c.fields
        .iter()
        .map(|(f, k)| match k {
            Kind::Timestamp => format!("CAST(\"{f}\" AS TEXT) AS \"{f}\""),
            _ => format!("\"{f}\""),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn bind<'q>(
    q: Q<'q>,
    c: &Collection,
    field: &str,
    kind: Kind,
    v: &Value,
) -> Result<Q<'q>, StoreError> {
    let wrong = || StoreError::Decode(format!("{}.{field}", c.name));
    Ok(match (kind, v) {
        (_, Value::Null) => q.bind(None::<String>),
        (Kind::Text | Kind::Uuid, Value::String(s)) => q.bind(s.clone()),
        (Kind::Json, v) => q.bind(v.to_string()),
        (Kind::Bool, Value::Bool(b)) => q.bind(*b),
        (Kind::Int, Value::Number(n)) => q.bind(n.as_i64().ok_or_else(wrong)?),
        (Kind::Timestamp, v) => q.bind(parse_ts(v).map(ms).ok_or_else(wrong)?),
        _ => return Err(wrong()),
    })
}

/// `bind`'s conversions, for the writer's statements.
fn value_of(
    c: &Collection,
    field: &str,
    kind: Kind,
    v: &Value,
) -> Result<rusqlite::types::Value, StoreError> {
    use rusqlite::types::Value as V;
    let wrong = || StoreError::Decode(format!("{}.{field}", c.name));
    Ok(match (kind, v) {
        (_, Value::Null) => V::Null,
        (Kind::Text | Kind::Uuid, Value::String(s)) => V::Text(s.clone()),
        (Kind::Json, v) => V::Text(v.to_string()),
        (Kind::Bool, Value::Bool(b)) => V::Integer(i64::from(*b)),
        (Kind::Int, Value::Number(n)) => V::Integer(n.as_i64().ok_or_else(wrong)?),
        (Kind::Timestamp, v) => V::Integer(parse_ts(v).map(ms).ok_or_else(wrong)?),
        _ => return Err(wrong()),
    })
}

/// A unique violation from the writer, as `conflict` maps sqlx's; a foreign-key violation
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

fn decode(c: &Collection, row: &SqliteRow) -> Result<Item, StoreError> {
    let mut item = Item::new();
    for (f, kind) in c.fields {
        let err = |_| StoreError::Decode(format!("{}.{f}", c.name));
        let v = match kind {
            Kind::Text | Kind::Uuid => row
                .try_get::<Option<String>, _>(*f)
                .map_err(err)?
                .map(Value::String),
            Kind::Json => row
                .try_get::<Option<String>, _>(*f)
                .map_err(err)?
                .map(|s| serde_json::from_str(&s).unwrap_or(Value::String(s))),
            Kind::Bool => row
                .try_get::<Option<bool>, _>(*f)
                .map_err(err)?
                .map(Value::Bool),
            Kind::Int => row
                .try_get::<Option<i64>, _>(*f)
                .map_err(err)?
                .map(Value::from),
            Kind::Timestamp => row
                .try_get::<Option<String>, _>(*f)
                .map_err(err)?
                .and_then(|s| parse_text_ts(&s))
                .map(sqlite_ts),
        };
        item.insert(f.to_string(), v.unwrap_or(Value::Null));
    }
    Ok(item)
}

/// Parses the comma-joined access ids of `user_with_access`.
pub(super) fn access_ids(joined: Option<String>) -> Vec<Uuid> {
    joined
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| Uuid::parse_str(s.trim()).ok())
        .collect()
}

fn session_from(row: &SqliteRow) -> Result<Session, StoreError> {
    let uuid = |name: &str| -> Result<Option<Uuid>, StoreError> {
        row.try_get::<Option<String>, _>(name)?
            .map(|s| {
                Uuid::parse_str(&s)
                    .map_err(|_| StoreError::Decode(format!("directus_sessions.{name}")))
            })
            .transpose()
    };
    let expires: String = row.try_get("expires")?;
    Ok(Session {
        token: row.try_get("token")?,
        user: uuid("user")?,
        expires: parse_text_ts(&expires)
            .ok_or_else(|| StoreError::Decode("directus_sessions.expires".into()))?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        origin: row.try_get("origin")?,
        share: uuid("share")?,
        next_token: row.try_get("next_token")?,
    })
}

/// At most one `last_access` write per user per second (as the PostgreSQL backend).
const LAST_ACCESS_UPDATE: &str = r#"UPDATE "directus_users" SET "last_access" = ?1 WHERE "id" = ?2 AND ("last_access" IS NULL OR "last_access" < ?1 - 1000)"#;

const SESSION_COLUMNS: &str = r#""token", "user", CAST("expires" AS TEXT) AS "expires", "ip", "user_agent", "origin", "share", "next_token""#;

/// The one text column `sql` selects for the row key `id`, on the writer.
fn texts(conn: &rusqlite::Connection, sql: &str, id: Uuid) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map([id.to_string()], |row| row.get(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn where_clause<'q>(
    c: &Collection,
    q: &'q ListQuery,
    sql: &mut String,
) -> Vec<(&'static str, Kind, &'q Value)> {
    let mut binds = Vec::new();
    let mut parts = Vec::new();
    for f in &q.filters {
        let kind = c.kind(f.field).unwrap_or(Kind::Text);
        if f.value.is_null() {
            parts.push(format!("\"{}\" IS NULL", f.field));
        } else {
            parts.push(format!("\"{}\" = ?", f.field));
            binds.push((f.field, kind, &f.value));
        }
    }
    if let Some((field, _)) = &q.ci_filter {
        parts.push(format!("LOWER(\"{field}\") = LOWER(?)"));
    }
    if !parts.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&parts.join(" AND "));
    }
    binds
}

/// A `WriteOp` as the writer runs it: its statement and values, built before the job is sent.
struct Stmt {
    c: &'static Collection,
    sql: String,
    values: Vec<rusqlite::types::Value>,
    /// An update with no columns: `sql` counts the rows with the key instead.
    counts: bool,
    /// The columns written, to name a unique violation.
    item: Item,
    /// A user's email and row key, checked case-insensitively before the write.
    email: Option<(String, rusqlite::types::Value)>,
}

fn key_of(c: &Collection, id: &Value) -> Result<rusqlite::types::Value, StoreError> {
    value_of(c, c.pk, c.kind(c.pk).unwrap_or(Kind::Text), id)
}

fn prepare(op: &WriteOp) -> Result<Stmt, StoreError> {
    let c = op.collection();
    let email = match (op.user_email(), op.key()) {
        (Some(email), Some(id)) => Some((email.to_string(), key_of(c, id)?)),
        (Some(email), None) => Some((email.to_string(), rusqlite::types::Value::Null)),
        _ => None,
    };
    let (sql, values, counts) = match op {
        WriteOp::Insert { item, .. } => {
            let cols: Vec<(&'static str, Kind)> = c
                .fields
                .iter()
                .filter(|(f, _)| item.contains_key(*f))
                .copied()
                .collect();
            let sql = format!(
                "INSERT INTO \"{}\" ({}) VALUES ({})",
                c.name,
                cols.iter()
                    .map(|(f, _)| format!("\"{f}\""))
                    .collect::<Vec<_>>()
                    .join(", "),
                vec!["?"; cols.len()].join(", ")
            );
            let values = cols
                .iter()
                .map(|(f, k)| value_of(c, f, *k, &item[*f]))
                .collect::<Result<Vec<_>, _>>()?;
            (sql, values, false)
        }
        WriteOp::Update { id, patch, .. } => {
            let cols: Vec<(&'static str, Kind)> = c
                .fields
                .iter()
                .filter(|(f, _)| patch.contains_key(*f) && *f != c.pk)
                .copied()
                .collect();
            if cols.is_empty() {
                let sql = format!("SELECT COUNT(*) FROM \"{}\" WHERE \"{}\" = ?", c.name, c.pk);
                (sql, vec![key_of(c, id)?], true)
            } else {
                let sql = format!(
                    "UPDATE \"{}\" SET {} WHERE \"{}\" = ?",
                    c.name,
                    cols.iter()
                        .map(|(f, _)| format!("\"{f}\" = ?"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    c.pk
                );
                let mut values = cols
                    .iter()
                    .map(|(f, k)| value_of(c, f, *k, &patch[*f]))
                    .collect::<Result<Vec<_>, _>>()?;
                values.push(key_of(c, id)?);
                (sql, values, false)
            }
        }
        WriteOp::Delete { id, .. } => {
            let sql = format!("DELETE FROM \"{}\" WHERE \"{}\" = ?", c.name, c.pk);
            (sql, vec![key_of(c, id)?], false)
        }
    };
    Ok(Stmt {
        c,
        sql,
        values,
        counts,
        item: op.columns().cloned().unwrap_or_default(),
        email,
    })
}

/// Another user holding this email, compared as `find_user_by_email` does.
/// ?1 is the email's `crate::email::key`: Unicode case and composition do not matter.
const EMAIL_TAKEN: &str = r#"SELECT EXISTS (SELECT 1 FROM "directus_users" WHERE gh_email_key("email") = ?1 AND ("id" IS NOT ?2))"#;

/// Runs the statements in order on the writer; the job's savepoint undoes them all if one
/// fails. The writer serialises every write of this process and its transaction holds the
/// database's write lock, so the email check and the write cannot interleave with another.
fn apply(conn: &rusqlite::Connection, stmts: &[Stmt]) -> Result<Vec<bool>, StoreError> {
    let mut written = Vec::with_capacity(stmts.len());
    for s in stmts {
        if let Some((email, id)) = &s.email {
            let taken: bool = conn
                .prepare_cached(EMAIL_TAKEN)?
                .query_row(params![crate::email::key(email), id], |row| row.get(0))?;
            if taken {
                return Err(email_conflict(email));
            }
        }
        let mut stmt = conn.prepare_cached(&s.sql)?;
        let params = rusqlite::params_from_iter(s.values.iter());
        let rows = if s.counts {
            stmt.query_row(params, |row| row.get::<_, i64>(0))? as usize
        } else {
            stmt.execute(params)
                .map_err(|e| writer_conflict(s.c, e.into(), &s.item))?
        };
        written.push(rows > 0);
    }
    Ok(written)
}

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        // Each migration is checked and applied in one write transaction: another process
        // migrating the same file waits for the write lock (busy_timeout), then finds the
        // version recorded. A failed migration is undone whole, with its record.
        for (version, name, sql) in MIGRATIONS {
            self.writer
                .write(move |conn| {
                    conn.execute_batch(
                        r#"CREATE TABLE IF NOT EXISTS "gatehouse_migrations" ("version" integer PRIMARY KEY NOT NULL, "name" text NOT NULL, "applied_at" integer NOT NULL)"#,
                    )?;
                    let done: Option<i64> = conn
                        .query_row(
                            r#"SELECT "version" FROM "gatehouse_migrations" WHERE "version" = ?"#,
                            [version],
                            |row| row.get(0),
                        )
                        .optional()?;
                    if done.is_some() {
                        return Ok(());
                    }
                    let failed = |e: rusqlite::Error| {
                        StoreError::Migration(format!("{version}_{name}: {e}"))
                    };
                    conn.execute_batch(sql).map_err(failed)?;
                    conn.execute(
                        r#"INSERT INTO "gatehouse_migrations" ("version", "name", "applied_at") VALUES (?, ?, ?)"#,
                        params![version, name, Utc::now().timestamp_millis()],
                    )
                    .map_err(failed)?;
                    Ok(())
                })
                .await?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
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
        let mut sql = format!("SELECT {} FROM \"{}\"", select_list(c), c.name);
        let binds = where_clause(c, q, &mut sql);
        sql.push_str(&format!(" ORDER BY \"{}\" LIMIT ? OFFSET ?", c.pk));
        let mut query = sqlx::query(&sql);
        for (field, kind, v) in binds {
            query = bind(query, c, field, kind, v)?;
        }
        if let Some((_, v)) = &q.ci_filter {
            query = query.bind(v.clone());
        }
        let rows = query
            .bind(q.limit.unwrap_or(-1))
            .bind(q.offset.unwrap_or(0))
            .fetch_all(&self.read)
            .await?;
        rows.iter().map(|r| decode(c, r)).collect()
    }

    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{}\"", c.name))
                .fetch_one(&self.read)
                .await?,
        )
    }

    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError> {
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE \"{}\" = ?",
            select_list(c),
            c.name,
            c.pk
        );
        let kind = c.kind(c.pk).unwrap_or(Kind::Text);
        let row = bind(sqlx::query(&sql), c, c.pk, kind, id)?
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| decode(c, &r)).transpose()
    }

    async fn item_insert(&self, c: &'static Collection, item: &Item) -> Result<(), StoreError> {
        let op = WriteOp::Insert {
            c,
            item: item.clone(),
        };
        self.items_write(&[op]).await.map(|_| ())
    }

    async fn item_update(
        &self,
        c: &'static Collection,
        id: &Value,
        patch: &Item,
    ) -> Result<bool, StoreError> {
        let op = WriteOp::Update {
            c,
            id: id.clone(),
            patch: patch.clone(),
        };
        Ok(self.items_write(&[op]).await?.first() == Some(&true))
    }

    async fn item_delete(&self, c: &'static Collection, id: &Value) -> Result<bool, StoreError> {
        let op = WriteOp::Delete { c, id: id.clone() };
        Ok(self.items_write(&[op]).await?.first() == Some(&true))
    }

    async fn items_write(&self, ops: &[WriteOp]) -> Result<Vec<bool>, StoreError> {
        let stmts = ops.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
        self.writer.write(move |conn| apply(conn, &stmts)).await
    }

    async fn items_write_if_no_users(&self, ops: &[WriteOp]) -> Result<bool, StoreError> {
        let stmts = ops.iter().map(prepare).collect::<Result<Vec<_>, _>>()?;
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
        let sql = format!(
            "SELECT {} FROM \"directus_users\" WHERE \"token\" = ? AND \"status\" = 'active'",
            select_list(&USERS)
        );
        let row = sqlx::query(&sql)
            .bind(token)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| decode(&USERS, &r)).transpose()
    }

    async fn user_by_email(&self, key: &str) -> Result<Option<Item>, StoreError> {
        let (lookup, key) = (self.lookup.clone(), key.to_string());
        let id: Option<String> = tokio::task::spawn_blocking(move || {
            // A poisoned lock only means a panic elsewhere mid-query; the connection is fine.
            let conn = lookup.lock().unwrap_or_else(|p| p.into_inner());
            let mut stmt = conn.prepare_cached(
                r#"SELECT "id" FROM "directus_users" WHERE gh_email_key("email") = ?1 ORDER BY "id" LIMIT 1"#,
            )?;
            stmt.query_row([key], |row| row.get(0)).optional()
        })
        .await
        .map_err(|e| StoreError::Writer(format!("email lookup: {e}")))??;
        match id {
            Some(id) => self.item_get(&USERS, &Value::from(id)).await,
            None => Ok(None),
        }
    }

    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError> {
        let sql = format!(
            "SELECT {}, (SELECT group_concat(\"id\") FROM (SELECT a.\"id\" FROM \"directus_access\" a WHERE a.\"user\" = u.\"id\" ORDER BY a.\"sort\", a.\"id\")) AS \"gh_access\" \
             FROM \"directus_users\" u WHERE u.\"id\" = ?",
            select_list(&USERS)
        );
        let row = sqlx::query(&sql)
            .bind(id.to_string())
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| Ok((decode(&USERS, &r)?, access_ids(r.try_get("gh_access")?))))
            .transpose()
    }

    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<Vec<(Item, Option<Uuid>)>, StoreError> {
        let cols = POLICIES
            .fields
            .iter()
            .map(|(f, _)| format!("p.\"{f}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let placeholders = vec!["?"; roles.len()].join(", ");
        let sql = format!(
            "SELECT {cols}, a.\"role\" AS \"gh_via_role\" FROM \"directus_access\" a JOIN \"directus_policies\" p ON p.\"id\" = a.\"policy\" \
             WHERE a.\"role\" IN ({}) OR (a.\"user\" IS NOT NULL AND a.\"user\" = ?) ORDER BY a.\"sort\"",
            if roles.is_empty() { "NULL".to_string() } else { placeholders }
        );
        let mut query = sqlx::query(&sql);
        for r in roles {
            query = query.bind(r.to_string());
        }
        let rows = query
            .bind(user.map(|u| u.to_string()))
            .fetch_all(&self.read)
            .await?;
        rows.iter()
            .map(|r| {
                let via: Option<String> = r.try_get("gh_via_role")?;
                Ok((
                    decode(&POLICIES, r)?,
                    via.and_then(|s| Uuid::parse_str(&s).ok()),
                ))
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
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM \"directus_sessions\" WHERE \"token\" = ?");
        let row = sqlx::query(&sql)
            .bind(token)
            .fetch_optional(&self.read)
            .await?;
        row.map(|r| session_from(&r)).transpose()
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
        let row = sqlx::query(
            r#"SELECT "token_hash", "family", "user", "rotated_at", "expires" FROM "gatehouse_session_lineage" WHERE "token_hash" = ?"#,
        )
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let bad = || StoreError::Decode("gatehouse_session_lineage".into());
        let family: String = row.try_get("family")?;
        let user: Option<String> = row.try_get("user")?;
        let rotated: Option<i64> = row.try_get("rotated_at")?;
        Ok(Some(Lineage {
            token_hash: row.try_get("token_hash")?,
            family: Uuid::parse_str(&family).map_err(|_| bad())?,
            user: user.and_then(|u| Uuid::parse_str(&u).ok()),
            rotated_at: rotated.and_then(DateTime::from_timestamp_millis),
            expires: DateTime::from_timestamp_millis(row.try_get("expires")?).ok_or_else(bad)?,
        }))
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
        let n: Option<i64> = sqlx::query_scalar(
            r#"SELECT "attempts" FROM "gatehouse_login_attempts" WHERE "user" = ?"#,
        )
        .bind(user.to_string())
        .fetch_optional(&self.read)
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
