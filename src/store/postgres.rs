//! PostgreSQL backend (the production choice, shared by every node): one pool, Directus's
//! native column types (uuid, timestamptz, json), and cross-process safety from the database
//! itself (row locks for refresh rotation, an advisory lock for migrations).

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Connection, Executor, PgConnection, PgPool, Postgres, Row};
use uuid::Uuid;

use super::migrations;
use super::sql::store::{Driver, SqlStore};
use super::sql::{self, Dialect, Sql, SqlValue, WriteSql, Wrote};
use super::*;

mod rotation;

/// URL query parameter (tests only) naming a schema to create and put on `search_path`.
const SCHEMA_PARAM: &str = "gh_schema";

/// PostgreSQL's `statement_timeout` on gatehouse's connections: far above any query gatehouse
/// makes (migrations included), so it only ends statements that would otherwise hang.
const STATEMENT_TIMEOUT: &str = "60s";

/// The PostgreSQL store: the shared SQL layer over this module's driver.
pub type PostgresStore = SqlStore<Pg>;

/// The PostgreSQL driver: one pool.
#[derive(Clone)]
pub struct Pg {
    pool: PgPool,
}

type Q<'q> = Query<'q, Postgres, PgArguments>;

impl SqlStore<Pg> {
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
        Ok(SqlStore {
            driver: Pg { pool },
        })
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

/// PostgreSQL's SQL: Directus's native column types (uuid, timestamptz, json), integers
/// widened (Directus's are int4) and json read as text, so json, jsonb and text columns all
/// read the same way.
static POSTGRES: Dialect = Dialect {
    param: '$',
    typed_uuid: true,
    json_param: "::json",
    select: |kind| match kind {
        Kind::Int => "{c}::bigint",
        Kind::Json => "{c}::text",
        _ => "{c}",
    },
    json_text: "{c}::text",
    is_distinct: "IS DISTINCT FROM",
    // lower() follows Unicode in a UTF-8 database and normalize() composes, so this matches
    // `crate::email::key` for rows written in any form.
    email_key: r#"normalize(lower("email"), NFC)"#,
    second_before: "{t} - interval '1 second'",
    access_ids: r#"(SELECT string_agg(a."id"::text, ',' ORDER BY a."sort" NULLS LAST, a."id") FROM "directus_access" a WHERE a."user" = u."id")"#,
    show_ts: format_ts,
};

/// Binds a neutral value with its column's type: PostgreSQL refuses an untyped NULL or
/// text for a uuid, timestamptz or json column, unlike SQLite.
fn bind<'q>(q: Q<'q>, v: &SqlValue) -> Q<'q> {
    match v.clone() {
        SqlValue::Null(Kind::Text | Kind::Json) => q.bind(None::<String>),
        SqlValue::Null(Kind::Uuid) => q.bind(None::<Uuid>),
        SqlValue::Null(Kind::Bool) => q.bind(None::<bool>),
        SqlValue::Null(Kind::Int) => q.bind(None::<i64>),
        SqlValue::Null(Kind::Timestamp) => q.bind(None::<DateTime<Utc>>),
        SqlValue::Text(s) | SqlValue::Json(s) => q.bind(s),
        SqlValue::Int(n) => q.bind(n),
        SqlValue::Bool(b) => q.bind(b),
        SqlValue::Uuid(u) => q.bind(u),
        SqlValue::Ts(t) => q.bind(t),
    }
}

fn query(sql: &Sql) -> Q<'_> {
    sql.values
        .iter()
        .fold(sqlx::query(&sql.text), |q, v| bind(q, v))
}

/// The row's values from column `from` on, read as the type each kind is selected as.
fn row_values(row: &PgRow, from: usize, kinds: &[Kind]) -> Result<Vec<SqlValue>, StoreError> {
    let mut out = Vec::with_capacity(kinds.len());
    for (i, kind) in kinds.iter().enumerate() {
        let i = from + i;
        let v = match kind {
            Kind::Text | Kind::Json => row.try_get::<Option<String>, _>(i)?.map(SqlValue::Text),
            Kind::Uuid => row.try_get::<Option<Uuid>, _>(i)?.map(SqlValue::Uuid),
            Kind::Bool => row.try_get::<Option<bool>, _>(i)?.map(SqlValue::Bool),
            Kind::Int => row.try_get::<Option<i64>, _>(i)?.map(SqlValue::Int),
            Kind::Timestamp => row
                .try_get::<Option<DateTime<Utc>>, _>(i)?
                .map(SqlValue::Ts),
        };
        out.push(v.unwrap_or(SqlValue::Null(*kind)));
    }
    Ok(out)
}

/// The session whose columns (`sql::SESSION_KINDS`) start at `from`.
fn session_at(row: &PgRow, from: usize) -> Result<Session, StoreError> {
    sql::session_from(&row_values(row, from, sql::SESSION_KINDS)?, 0)
}

/// Maps a unique violation to the column it hit, read from the database's message.
fn conflict(c: &Collection, err: &sqlx::Error, item: &Item) -> Option<StoreError> {
    let db = err.as_database_error()?;
    if !db.is_unique_violation() {
        return None;
    }
    Some(conflict_in(c, db.message(), item))
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
    // 23502: a NOT NULL column written as null, with the table and column Directus reports.
    if let Some(pg) = e
        .as_database_error()
        .and_then(|db| db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
        .filter(|pg| pg.code() == "23502")
    {
        return StoreError::NotNull {
            collection: Some(pg.table().unwrap_or(c.name).to_string()),
            field: pg.column().map(str::to_string),
        };
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

/// Held by `migrate` and bootstrap (per schema) until their transaction ends.
const MIGRATION_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('gatehouse_migrations:' || coalesce(current_schema(), '')))";

/// Serialises the transactions that write a user's email: under READ COMMITTED two of them
/// would each check, find no other holder, and both write. Taken once, before any row lock.
const EMAIL_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtext('gatehouse:directus_users.email'))";

/// Runs the ops in order in the caller's transaction (which rolls back unless committed).
async fn apply(conn: &mut PgConnection, stmts: &[WriteSql]) -> Result<Vec<Wrote>, StoreError> {
    if stmts.iter().any(|s| s.email_taken.is_some()) {
        sqlx::query(EMAIL_LOCK).execute(&mut *conn).await?;
    }
    let mut written = Vec::with_capacity(stmts.len());
    for s in stmts {
        if let Some((email, check)) = &s.email_taken {
            let taken: bool = query(check).fetch_one(&mut *conn).await?.try_get(0)?;
            if taken {
                return Err(email_conflict(email));
            }
        }
        let Some(sql) = &s.sql else {
            written.push(Wrote::Nothing);
            continue;
        };
        if s.returns_key {
            let row = query(sql)
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| violation(s.c, e, &s.item))?;
            written.push(Wrote::Generated(row.try_get::<i64, _>(0)?));
            continue;
        }
        let res = query(sql)
            .execute(&mut *conn)
            .await
            .map_err(|e| violation(s.c, e, &s.item))?;
        written.push(Wrote::found(res.rows_affected() > 0));
    }
    Ok(written)
}

#[async_trait]
impl Driver for Pg {
    const DIALECT: &'static Dialect = &POSTGRES;

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            open: u64::from(self.pool.size()),
            idle: self.pool.num_idle() as u64,
            max: u64::from(self.pool.options().get_max_connections()),
        }
    }

    async fn fetch(&self, sql: Sql, kinds: Vec<Kind>) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        let rows = query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| row_values(r, 0, &kinds)).collect()
    }

    async fn write(&self, sqls: Vec<Sql>) -> Result<Vec<u64>, StoreError> {
        if let [sql] = sqls.as_slice() {
            // One statement is its own transaction.
            let done = query(sql).execute(&self.pool).await?;
            return Ok(vec![done.rows_affected()]);
        }
        let mut tx = self.pool.begin().await?;
        let mut changed = Vec::with_capacity(sqls.len());
        for sql in &sqls {
            changed.push(query(sql).execute(&mut *tx).await?.rows_affected());
        }
        tx.commit().await?;
        Ok(changed)
    }

    async fn write_returning(
        &self,
        sql: Sql,
        kinds: Vec<Kind>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError> {
        self.fetch(sql, kinds).await
    }

    async fn apply(
        &self,
        stmts: Vec<WriteSql>,
        if_no_users: bool,
    ) -> Result<Option<Vec<Wrote>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        if if_no_users {
            // `migrate`'s lock: nodes bootstrapping together queue here, and each next one
            // counts the users the one before committed.
            sqlx::query(MIGRATION_LOCK).execute(&mut *tx).await?;
            let users: i64 = sqlx::query_scalar(r#"SELECT COUNT(*) FROM "directus_users""#)
                .fetch_one(&mut *tx)
                .await?;
            if users > 0 {
                tx.commit().await?;
                return Ok(None);
            }
        }
        let written = apply(&mut tx, &stmts).await?;
        tx.commit().await?;
        Ok(Some(written))
    }

    async fn refresh(&self, r: &Rotation) -> Result<Refreshed, StoreError> {
        rotation::refresh(&self.pool, r).await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        for m in migrations::POSTGRES {
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
                    r#"CREATE TABLE "gatehouse_migrations" ("version" bigint PRIMARY KEY NOT NULL, "name" text NOT NULL, "applied_at" timestamp with time zone NOT NULL, "checksum" text)"#,
                )
                .execute(&mut *tx)
                .await?;
            }
            // Tables created before gatehouse kept checksums gain the column.
            let has_checksum: bool = sqlx::query_scalar(
                r#"SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass('"gatehouse_migrations"') AND attname = 'checksum' AND NOT attisdropped)"#,
            )
            .fetch_one(&mut *tx)
            .await?;
            if !has_checksum {
                sqlx::query(r#"ALTER TABLE "gatehouse_migrations" ADD COLUMN "checksum" text"#)
                    .execute(&mut *tx)
                    .await?;
            }
            let recorded: Option<Option<String>> = sqlx::query_scalar(
                r#"SELECT "checksum" FROM "gatehouse_migrations" WHERE "version" = $1"#,
            )
            .bind(m.version)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(recorded) = recorded {
                if m.check_applied(recorded.as_deref())? {
                    sqlx::query(
                        r#"UPDATE "gatehouse_migrations" SET "checksum" = $1 WHERE "version" = $2"#,
                    )
                    .bind(m.checksum())
                    .bind(m.version)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                continue;
            }
            // One transaction (PostgreSQL's DDL is transactional): the migration and its
            // record land together; on error the transaction is dropped, so rolled back.
            // Called through `Executor` (not `RawSql::execute`) to keep the future `Send`.
            tx.execute(sqlx::raw_sql(m.sql))
                .await
                .map_err(|e| m.failed(e))?;
            sqlx::query(r#"INSERT INTO "gatehouse_migrations" ("version", "name", "applied_at", "checksum") VALUES ($1, $2, now(), $3)"#)
                .bind(m.version)
                .bind(m.name)
                .bind(m.checksum())
                .execute(&mut *tx)
                .await
                .map_err(|e| m.failed(e))?;
            tx.commit().await.map_err(|e| m.failed(e))?;
        }
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
