//! PostgreSQL backend (the production choice, shared by every node): one pool, Directus's
//! native column types (uuid, timestamptz, json), and cross-process safety from the database
//! itself (row locks for refresh rotation, an advisory lock for migrations).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, Executor, PgConnection, PgPool, Postgres, Row};
use uuid::Uuid;

use super::*;

mod rotation;

const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "directus_auth_tables",
        include_str!("../../migrations/postgres/0001_directus_auth_tables.sql"),
    ),
    (
        2,
        "gatehouse_tables",
        include_str!("../../migrations/postgres/0002_gatehouse_tables.sql"),
    ),
];

/// URL query parameter (tests only) naming a schema to create and put on `search_path`.
/// At most one `last_access` write per user per second: a burst of refreshes of one user
/// would otherwise queue on that user's row lock.
const LAST_ACCESS_UPDATE: &str = r#"UPDATE "directus_users" SET "last_access" = $1 WHERE "id" = $2 AND ("last_access" IS NULL OR "last_access" < $1 - interval '1 second')"#;

const SCHEMA_PARAM: &str = "gh_schema";

/// PostgreSQL's `statement_timeout` on gatehouse's connections: far above any query gatehouse
/// makes (migrations included), so it only ends statements that would otherwise hang.
const STATEMENT_TIMEOUT: &str = "60s";

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

type Q<'q> = Query<'q, Postgres, PgArguments>;

impl PostgresStore {
    /// `acquire_timeout` bounds how long a query waits for a connection, including opening
    /// one: when PostgreSQL is down or unreachable, requests fail with 503 after that long
    /// instead of queueing, and the pool reconnects by itself once it is back.
    pub async fn connect(
        url: &str,
        max_connections: u32,
        acquire_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let (url, schema) = split_schema_param(url)?;
        let mut opts = PgConnectOptions::from_str(&url)?;
        // sqlx has no per-query timeout: a query stuck in the server (a lock held by a hung
        // client, an overloaded server) is ended by the server after this long. A value in
        // the URL (`options[statement_timeout]=…`) wins.
        if !opts
            .get_options()
            .is_some_and(|o| o.contains("statement_timeout"))
        {
            opts = opts.options([("statement_timeout", STATEMENT_TIMEOUT)]);
        }
        if let Some(schema) = schema {
            let mut conn = PgConnection::connect_with(&opts).await?;
            // Through `Executor`, as in `migrate`, so this future stays `Send`.
            conn.execute(sqlx::raw_sql(&format!(
                "CREATE SCHEMA IF NOT EXISTS \"{schema}\""
            )))
            .await?;
            conn.close().await?;
            opts = opts.options([("search_path", schema)]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(acquire_timeout)
            .connect_with(opts)
            .await?;
        Ok(Self { pool })
    }
}

/// Removes `gh_schema=<name>` from the URL; the name must be a plain lower-case identifier.
fn split_schema_param(url: &str) -> Result<(String, Option<String>), StoreError> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_string(), None));
    };
    let mut schema = None;
    let mut kept = Vec::new();
    for pair in query.split('&') {
        match pair.split_once('=') {
            Some((SCHEMA_PARAM, name)) => schema = Some(name.to_string()),
            _ => kept.push(pair),
        }
    }
    if let Some(name) = &schema {
        let plain = name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && name.len() <= 63
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(StoreError::Database(sqlx::Error::Configuration(
                format!("{SCHEMA_PARAM} must be a lower-case identifier, got {name:?}").into(),
            )));
        }
    }
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok((url, schema))
}

/// A value bound with its column's type: PostgreSQL refuses an untyped NULL or text for a
/// uuid, timestamptz or json column, unlike SQLite.
enum Param {
    Text(Option<String>),
    Uuid(Option<Uuid>),
    /// JSON travels as text and is cast with `::json` in the statement.
    Json(Option<String>),
    Bool(Option<bool>),
    Int(Option<i64>),
    Ts(Option<DateTime<Utc>>),
}

impl Param {
    fn new(c: &Collection, field: &str, kind: Kind, v: &Value) -> Result<Param, StoreError> {
        let wrong = || StoreError::Decode(format!("{}.{field}", c.name));
        Ok(match (kind, v) {
            (Kind::Text, Value::Null) => Param::Text(None),
            (Kind::Uuid, Value::Null) => Param::Uuid(None),
            (Kind::Json, Value::Null) => Param::Json(None),
            (Kind::Bool, Value::Null) => Param::Bool(None),
            (Kind::Int, Value::Null) => Param::Int(None),
            (Kind::Timestamp, Value::Null) => Param::Ts(None),
            (Kind::Text, Value::String(s)) => Param::Text(Some(s.clone())),
            (Kind::Uuid, Value::String(s)) => {
                Param::Uuid(Some(Uuid::parse_str(s).map_err(|_| wrong())?))
            }
            (Kind::Json, v) => Param::Json(Some(v.to_string())),
            (Kind::Bool, Value::Bool(b)) => Param::Bool(Some(*b)),
            (Kind::Int, Value::Number(n)) => Param::Int(Some(n.as_i64().ok_or_else(wrong)?)),
            (Kind::Timestamp, v) => Param::Ts(Some(parse_ts(v).ok_or_else(wrong)?)),
            _ => return Err(wrong()),
        })
    }

    /// For a lookup (`col = value`): None when no row can match, as a malformed uuid never
    /// equals a stored one (SQLite simply finds nothing; PostgreSQL would reject the cast).
    fn lookup(
        c: &Collection,
        field: &str,
        kind: Kind,
        v: &Value,
    ) -> Result<Option<Param>, StoreError> {
        match (kind, v) {
            (Kind::Uuid, Value::String(s)) if Uuid::parse_str(s).is_err() => Ok(None),
            _ => Param::new(c, field, kind, v).map(Some),
        }
    }

    fn placeholder(&self, n: usize) -> String {
        match self {
            Param::Json(_) => format!("${n}::json"),
            _ => format!("${n}"),
        }
    }

    fn bind(self, q: Q<'_>) -> Q<'_> {
        match self {
            Param::Text(v) | Param::Json(v) => q.bind(v),
            Param::Uuid(v) => q.bind(v),
            Param::Bool(v) => q.bind(v),
            Param::Int(v) => q.bind(v),
            Param::Ts(v) => q.bind(v),
        }
    }
}

fn bind_all(mut q: Q<'_>, params: Vec<Param>) -> Q<'_> {
    for p in params {
        q = p.bind(q);
    }
    q
}

/// Columns as the decoder reads them: integers widened (Directus's are int4), json as text
/// (so json, jsonb and text columns all read the same way).
fn select_list(c: &Collection, prefix: &str) -> String {
    c.fields
        .iter()
        .map(|(f, k)| match k {
            Kind::Int => format!("{prefix}\"{f}\"::bigint AS \"{f}\""),
            Kind::Json => format!("{prefix}\"{f}\"::text AS \"{f}\""),
            _ => format!("{prefix}\"{f}\""),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn decode(c: &Collection, row: &PgRow) -> Result<Item, StoreError> {
    let mut item = Item::new();
    for (f, kind) in c.fields {
        let err = |_| StoreError::Decode(format!("{}.{f}", c.name));
        let v = match kind {
            Kind::Text => row
                .try_get::<Option<String>, _>(*f)
                .map_err(err)?
                .map(Value::String),
            Kind::Uuid => row
                .try_get::<Option<Uuid>, _>(*f)
                .map_err(err)?
                .map(|u| Value::String(u.to_string())),
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
                .try_get::<Option<DateTime<Utc>>, _>(*f)
                .map_err(err)?
                .map(format_ts),
        };
        item.insert(f.to_string(), v.unwrap_or(Value::Null));
    }
    Ok(item)
}

fn session_from(row: &PgRow) -> Result<Session, StoreError> {
    Ok(Session {
        token: row.try_get("token")?,
        user: row.try_get("user")?,
        expires: row.try_get("expires")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        origin: row.try_get("origin")?,
        share: row.try_get("share")?,
        next_token: row.try_get("next_token")?,
    })
}

const SESSION_COLUMNS: &str =
    r#""token", "user", "expires", "ip", "user_agent", "origin", "share", "next_token""#;

fn insert_session_query(s: &Session) -> Q<'_> {
    sqlx::query(
        r#"INSERT INTO "directus_sessions" ("token", "user", "expires", "ip", "user_agent", "origin", "share", "next_token")
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
    )
    .bind(&s.token)
    .bind(s.user)
    .bind(s.expires)
    .bind(&s.ip)
    .bind(&s.user_agent)
    .bind(&s.origin)
    .bind(s.share)
    .bind(&s.next_token)
}

fn insert_lineage_query(l: &Lineage) -> Q<'_> {
    sqlx::query(
        r#"INSERT INTO "gatehouse_session_lineage" ("token_hash", "family", "user", "rotated_at", "expires")
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT ("token_hash") DO UPDATE SET "rotated_at" = excluded."rotated_at", "expires" = excluded."expires""#,
    )
    .bind(&l.token_hash)
    .bind(l.family)
    .bind(l.user)
    .bind(l.rotated_at)
    .bind(l.expires)
}

/// A write's error: unique violations as `conflict` maps them, foreign-key violations (23503)
/// as Directus's `api/src/database/errors/dialects/postgres.ts` reads them: the table the
/// error names, the column in the detail's first parentheses
/// (`Key (parent)=(…) is not present in table "directus_roles".`), and the item's value for
/// it (else the detail's).
fn violation(c: &Collection, e: sqlx::Error, item: &Item) -> StoreError {
    if let Some(conflict) = conflict(c, &e, item) {
        return conflict;
    }
    let Some(db) = e
        .as_database_error()
        .filter(|db| db.is_foreign_key_violation())
    else {
        return e.into();
    };
    let pg = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>();
    let mut parens = pg
        .and_then(|pg| pg.detail())
        .unwrap_or_default()
        .split('(')
        .skip(1)
        .filter_map(|s| s.split_once(')').map(|(inner, _)| inner.to_string()));
    let field = parens.next();
    let value = field
        .as_ref()
        .and_then(|f| item.get(f))
        .filter(|v| !v.is_null())
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .or_else(|| parens.next());
    StoreError::ForeignKey {
        collection: Some(pg.and_then(|pg| pg.table()).unwrap_or(c.name).to_string()),
        field,
        value,
    }
}

/// Appends the WHERE clause; None when a filter can match no row.
fn where_clause(
    c: &Collection,
    q: &ListQuery,
    sql: &mut String,
) -> Result<Option<Vec<Param>>, StoreError> {
    let mut params = Vec::new();
    let mut parts = Vec::new();
    for f in &q.filters {
        let kind = c.kind(f.field).unwrap_or(Kind::Text);
        if f.value.is_null() {
            parts.push(format!("\"{}\" IS NULL", f.field));
        } else if kind == Kind::Json {
            // json has no equality operator; compare the stored text, as SQLite does.
            params.push(Param::Text(Some(f.value.to_string())));
            parts.push(format!("\"{}\"::text = ${}", f.field, params.len()));
        } else {
            let Some(p) = Param::lookup(c, f.field, kind, &f.value)? else {
                return Ok(None);
            };
            params.push(p);
            parts.push(format!(
                "\"{}\" = {}",
                f.field,
                params[params.len() - 1].placeholder(params.len())
            ));
        }
    }
    if let Some((field, v)) = &q.ci_filter {
        params.push(Param::Text(Some(v.clone())));
        parts.push(format!("LOWER(\"{field}\") = LOWER(${})", params.len()));
    }
    if !parts.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&parts.join(" AND "));
    }
    Ok(Some(params))
}

/// Held by `migrate` and bootstrap (per schema) until their transaction ends.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('gatehouse_migrations:' || coalesce(current_schema(), '')))";

/// Serialises the transactions that write a user's email: under READ COMMITTED two of them
/// would each check, find no other holder, and both write. Taken once, before any row lock.
const EMAIL_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('gatehouse:directus_users.email'))";

/// Another user holding this email, compared as `find_user_by_email` does.
/// $1 is the email's `crate::email::key`; lower() follows Unicode in a UTF-8 database and
/// normalize() composes, so case and composition do not matter (as `user_by_email`).
const EMAIL_TAKEN: &str = r#"SELECT EXISTS (SELECT 1 FROM "directus_users" WHERE normalize(lower("email"), NFC) = $1 AND ("id" IS DISTINCT FROM $2))"#;

/// Runs the ops in order in the caller's transaction (which rolls back unless committed).
async fn apply(conn: &mut PgConnection, ops: &[WriteOp]) -> Result<Vec<bool>, StoreError> {
    if ops.iter().any(|op| op.user_email().is_some()) {
        sqlx::query(EMAIL_LOCK).execute(&mut *conn).await?;
    }
    let mut written = Vec::with_capacity(ops.len());
    for op in ops {
        if let Some(email) = op.user_email() {
            let id = op
                .key()
                .and_then(|v| v.as_str())
                .and_then(|s| Uuid::parse_str(s).ok());
            let taken: bool = sqlx::query_scalar(EMAIL_TAKEN)
                .bind(crate::email::key(email))
                .bind(id)
                .fetch_one(&mut *conn)
                .await?;
            if taken {
                return Err(email_conflict(email));
            }
        }
        written.push(apply_one(conn, op).await?);
    }
    Ok(written)
}

/// One op: whether a row was written (an insert always is).
async fn apply_one(conn: &mut PgConnection, op: &WriteOp) -> Result<bool, StoreError> {
    let c = op.collection();
    let lookup = |id: &Value| Param::lookup(c, c.pk, c.kind(c.pk).unwrap_or(Kind::Text), id);
    let (sql, params) = match op {
        WriteOp::Insert { item, .. } => {
            let mut cols = Vec::new();
            let mut params = Vec::new();
            for (f, k) in c.fields.iter().filter(|(f, _)| item.contains_key(*f)) {
                cols.push(format!("\"{f}\""));
                params.push(Param::new(c, f, *k, &item[*f])?);
            }
            let sql = format!(
                "INSERT INTO \"{}\" ({}) VALUES ({})",
                c.name,
                cols.join(", "),
                params
                    .iter()
                    .enumerate()
                    .map(|(i, p)| p.placeholder(i + 1))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            (sql, params)
        }
        WriteOp::Update { id, patch, .. } => {
            let mut sets = Vec::new();
            let mut params = Vec::new();
            for (f, k) in c
                .fields
                .iter()
                .filter(|(f, _)| patch.contains_key(*f) && *f != c.pk)
            {
                let p = Param::new(c, f, *k, &patch[*f])?;
                sets.push(format!("\"{f}\" = {}", p.placeholder(params.len() + 1)));
                params.push(p);
            }
            let Some(key) = lookup(id)? else {
                return Ok(false);
            };
            let sql = if sets.is_empty() {
                // Nothing to set: only whether the row exists.
                format!(
                    "SELECT 1 FROM \"{}\" WHERE \"{}\" = {}",
                    c.name,
                    c.pk,
                    key.placeholder(1)
                )
            } else {
                format!(
                    "UPDATE \"{}\" SET {} WHERE \"{}\" = {}",
                    c.name,
                    sets.join(", "),
                    c.pk,
                    key.placeholder(params.len() + 1)
                )
            };
            params.push(key);
            (sql, params)
        }
        WriteOp::Delete { id, .. } => {
            let Some(key) = lookup(id)? else {
                return Ok(false);
            };
            let sql = format!(
                "DELETE FROM \"{}\" WHERE \"{}\" = {}",
                c.name,
                c.pk,
                key.placeholder(1)
            );
            (sql, vec![key])
        }
    };
    let res = bind_all(sqlx::query(&sql), params)
        .execute(&mut *conn)
        .await;
    let empty = Item::new();
    let item = op.columns().unwrap_or(&empty);
    let res = res.map_err(|e| violation(c, e, item))?;
    Ok(res.rows_affected() > 0)
}

#[async_trait]
impl Store for PostgresStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin().await?;
            // Nodes starting together queue here (per schema); the next one then finds the
            // version recorded. The lock ends with the transaction.
            sqlx::query(MIGRATION_LOCK).execute(&mut *tx).await?;
            let has_table: bool =
                sqlx::query_scalar("SELECT to_regclass('\"gatehouse_migrations\"') IS NOT NULL")
                    .fetch_one(&mut *tx)
                    .await?;
            if !has_table {
                sqlx::query(
                    r#"CREATE TABLE "gatehouse_migrations" ("version" bigint PRIMARY KEY NOT NULL, "name" text NOT NULL, "applied_at" timestamp with time zone NOT NULL)"#,
                )
                .execute(&mut *tx)
                .await?;
            }
            let done: Option<i64> = sqlx::query_scalar(
                r#"SELECT "version" FROM "gatehouse_migrations" WHERE "version" = $1"#,
            )
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_some() {
                tx.commit().await?;
                continue;
            }
            // One transaction (PostgreSQL's DDL is transactional): the migration and its
            // record land together; on error the transaction is dropped, so rolled back.
            let failed = |e: sqlx::Error| StoreError::Migration(format!("{version}_{name}: {e}"));
            // Called through `Executor` (not `RawSql::execute`) to keep the future `Send`.
            tx.execute(sqlx::raw_sql(sql)).await.map_err(failed)?;
            sqlx::query(r#"INSERT INTO "gatehouse_migrations" ("version", "name", "applied_at") VALUES ($1, $2, now())"#)
                .bind(version)
                .bind(name)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        // A real write (one statement, so its own transaction, answered after its commit):
        // a `SELECT` still succeeds on a full disk, a read-only standby after a failover, or
        // a database that refuses writes.
        sqlx::query(r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES ('health_probe', $1) ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value""#)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES ($1, $2) ON CONFLICT ("key") DO NOTHING"#)
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(
            sqlx::query_scalar(r#"SELECT "value" FROM "gatehouse_meta" WHERE "key" = $1"#)
                .bind(key)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn items_list(
        &self,
        c: &'static Collection,
        q: &ListQuery,
    ) -> Result<Vec<Item>, StoreError> {
        let mut sql = format!("SELECT {} FROM \"{}\"", select_list(c, ""), c.name);
        let Some(params) = where_clause(c, q, &mut sql)? else {
            return Ok(Vec::new());
        };
        // LIMIT NULL is no limit.
        sql.push_str(&format!(
            " ORDER BY \"{}\" LIMIT ${} OFFSET ${}",
            c.pk,
            params.len() + 1,
            params.len() + 2
        ));
        let query = bind_all(sqlx::query(&sql), params)
            .bind(q.limit)
            .bind(q.offset.unwrap_or(0));
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(|r| decode(c, r)).collect()
    }

    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{}\"", c.name))
                .fetch_one(&self.pool)
                .await?,
        )
    }

    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError> {
        let Some(key) = Param::lookup(c, c.pk, c.kind(c.pk).unwrap_or(Kind::Text), id)? else {
            return Ok(None);
        };
        let sql = format!(
            "SELECT {} FROM \"{}\" WHERE \"{}\" = {}",
            select_list(c, ""),
            c.name,
            c.pk,
            key.placeholder(1)
        );
        let row = key
            .bind(sqlx::query(&sql))
            .fetch_optional(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        let written = apply(&mut tx, ops).await?;
        tx.commit().await?;
        Ok(written)
    }

    async fn items_write_if_no_users(&self, ops: &[WriteOp]) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        // `migrate`'s lock: nodes bootstrapping together queue here, and each next one counts
        // the users the one before committed.
        sqlx::query(MIGRATION_LOCK).execute(&mut *tx).await?;
        let users: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "directus_users""#)
            .fetch_one(&mut *tx)
            .await?;
        if users > 0 {
            tx.commit().await?;
            return Ok(false);
        }
        apply(&mut tx, ops).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn user_by_static_token(&self, token: &str) -> Result<Option<Item>, StoreError> {
        let sql = format!(
            "SELECT {} FROM \"directus_users\" WHERE \"token\" = $1 AND \"status\" = 'active'",
            select_list(&USERS, "")
        );
        let row = sqlx::query(&sql)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&USERS, &r)).transpose()
    }

    async fn user_by_email(&self, key: &str) -> Result<Option<Item>, StoreError> {
        // PostgreSQL's lower() follows Unicode in a UTF-8 database, and normalize() composes,
        // so this matches `crate::email::key` for rows written in any form.
        let sql = format!(
            "SELECT {} FROM \"directus_users\" WHERE normalize(lower(\"email\"), NFC) = $1 ORDER BY \"id\" LIMIT 1",
            select_list(&USERS, "")
        );
        let row = sqlx::query(&sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| decode(&USERS, &r)).transpose()
    }

    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError> {
        let sql = format!(
            "SELECT {}, (SELECT string_agg(a.\"id\"::text, ',' ORDER BY a.\"sort\" NULLS FIRST, a.\"id\") FROM \"directus_access\" a WHERE a.\"user\" = u.\"id\") AS \"gh_access\" \
             FROM \"directus_users\" u WHERE u.\"id\" = $1",
            select_list(&USERS, "u.")
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok((
                decode(&USERS, &r)?,
                super::sqlite::access_ids(r.try_get("gh_access")?),
            ))
        })
        .transpose()
    }

    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<Vec<(Item, Option<Uuid>)>, StoreError> {
        // NULLS FIRST: SQLite's order for the unsorted rows.
        let sql = format!(
            "SELECT {}, a.\"role\" AS \"gh_via_role\" FROM \"directus_access\" a JOIN \"directus_policies\" p ON p.\"id\" = a.\"policy\" \
             WHERE a.\"role\" = ANY($1) OR (a.\"user\" IS NOT NULL AND a.\"user\" = $2) ORDER BY a.\"sort\" NULLS FIRST",
            select_list(&POLICIES, "p.")
        );
        let rows = sqlx::query(&sql)
            .bind(roles)
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    decode(&POLICIES, r)?,
                    r.try_get::<Option<Uuid>, _>("gh_via_role")?,
                ))
            })
            .collect()
    }

    async fn session_insert(&self, s: &Session, lineage: &Lineage) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_session_query(s).execute(&mut *tx).await?;
        insert_lineage_query(lineage).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn session_get(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let sql =
            format!("SELECT {SESSION_COLUMNS} FROM \"directus_sessions\" WHERE \"token\" = $1");
        let row = sqlx::query(&sql)
            .bind(token)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| session_from(&r)).transpose()
    }

    async fn refresh_session(&self, r: &Rotation) -> Result<Refreshed, StoreError> {
        rotation::refresh(&self.pool, r).await
    }

    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar(r#"SELECT "token" FROM "directus_sessions" WHERE "user" = $1"#)
                .bind(user)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError> {
        Ok(
            sqlx::query(r#"DELETE FROM "directus_sessions" WHERE "token" = ANY($1)"#)
                .bind(tokens)
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }

    async fn sessions_delete_user(
        &self,
        user: Uuid,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            r#"DELETE FROM "directus_sessions" WHERE "user" = $1 AND "token" IS DISTINCT FROM $2"#,
        )
        .bind(user)
        .bind(keep)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    async fn sessions_purge_expired(
        &self,
        user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        match user {
            Some(u) => sqlx::query(
                r#"DELETE FROM "directus_sessions" WHERE "expires" < $1 AND "user" = $2"#,
            )
            .bind(now)
            .bind(u),
            None => {
                sqlx::query(r#"DELETE FROM "directus_sessions" WHERE "expires" < $1"#).bind(now)
            }
        }
        .execute(&mut *tx)
        .await?;
        sqlx::query(r#"DELETE FROM "gatehouse_session_lineage" WHERE "expires" < $1"#)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn lineage_get(&self, token_hash: &str) -> Result<Option<Lineage>, StoreError> {
        let row = sqlx::query(
            r#"SELECT "token_hash", "family", "user", "rotated_at", "expires" FROM "gatehouse_session_lineage" WHERE "token_hash" = $1"#,
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(Lineage {
            token_hash: row.try_get("token_hash")?,
            family: row.try_get("family")?,
            user: row.try_get("user")?,
            rotated_at: row.try_get("rotated_at")?,
            expires: row.try_get("expires")?,
        }))
    }

    async fn lineage_hashes(&self, family: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            r#"SELECT "token_hash" FROM "gatehouse_session_lineage" WHERE "family" = $1"#,
        )
        .bind(family)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(LAST_ACCESS_UPDATE)
            .bind(now)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn login_failures(&self, user: Uuid) -> Result<i64, StoreError> {
        let n: Option<i64> = sqlx::query_scalar(
            r#"SELECT "attempts"::bigint FROM "gatehouse_login_attempts" WHERE "user" = $1"#,
        )
        .bind(user)
        .fetch_optional(&self.pool)
        .await?;
        Ok(n.unwrap_or(0))
    }

    async fn login_failure(&self, user: Uuid) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            r#"INSERT INTO "gatehouse_login_attempts" ("user", "attempts") VALUES ($1, 1)
               ON CONFLICT ("user") DO UPDATE SET "attempts" = "gatehouse_login_attempts"."attempts" + 1
               RETURNING "attempts"::bigint"#,
        )
        .bind(user)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn login_attempts_reset(&self, user: Uuid) -> Result<(), StoreError> {
        sqlx::query(r#"DELETE FROM "gatehouse_login_attempts" WHERE "user" = $1"#)
            .bind(user)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn activity_insert(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "directus_activity" ("action", "user", "timestamp", "ip", "user_agent", "collection", "item", "origin")
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#,
        )
        .bind(a.action)
        .bind(a.user)
        .bind(now)
        .bind(&a.ip)
        .bind(&a.user_agent)
        .bind(a.collection)
        .bind(&a.item)
        .bind(&a.origin)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_param_is_stripped() {
        let (url, schema) = split_schema_param(
            "postgres://u@h/db?sslmode=disable&gh_schema=gh_x1&application_name=a",
        )
        .expect("plain name");
        assert_eq!(url, "postgres://u@h/db?sslmode=disable&application_name=a");
        assert_eq!(schema.as_deref(), Some("gh_x1"));
        let (url, schema) =
            split_schema_param("postgres://u@h/db?gh_schema=s").expect("plain name");
        assert_eq!(
            (url.as_str(), schema.as_deref()),
            ("postgres://u@h/db", Some("s"))
        );
        assert_eq!(
            split_schema_param("postgres://u@h/db").expect("no query").1,
            None
        );
        assert!(split_schema_param("postgres://u@h/db?gh_schema=a\"b").is_err());
        assert!(split_schema_param("postgres://u@h/db?gh_schema=Upper").is_err());
    }
}
