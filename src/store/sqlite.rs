//! SQLite backend (the embedded default): WAL, one writer connection (writes queue in the
//! pool instead of spinning on SQLITE_BUSY) and a pool of readers.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, SqlitePool};
use uuid::Uuid;

use super::*;

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

#[derive(Clone)]
pub struct SqliteStore {
    read: SqlitePool,
    write: SqlitePool,
}

type Q<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

impl SqliteStore {
    pub async fn connect(path: &Path, readers: u32) -> Result<Self, StoreError> {
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
            // Checkpoint less often and keep more pages in memory: a refresh writes a handful
            // of pages, and each checkpoint (with its fsync) stalls the single writer.
            .pragma("wal_autocheckpoint", "10000")
            .pragma("cache_size", "-16384")
            .pragma("temp_store", "memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(readers.max(2))
            .connect_with(opts)
            .await?;
        Ok(Self { read, write })
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

fn insert_session_query(s: &Session) -> Q<'_> {
    sqlx::query(
        r#"INSERT INTO "directus_sessions" ("token", "user", "expires", "ip", "user_agent", "origin", "share", "next_token")
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)"#,
    )
    .bind(&s.token)
    .bind(s.user.map(|u| u.to_string()))
    .bind(ms(s.expires))
    .bind(&s.ip)
    .bind(&s.user_agent)
    .bind(&s.origin)
    .bind(s.share.map(|u| u.to_string()))
    .bind(&s.next_token)
}

fn insert_lineage_query(l: &Lineage) -> Q<'_> {
    sqlx::query(
        r#"INSERT INTO "gatehouse_session_lineage" ("token_hash", "family", "user", "rotated_at", "expires")
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT ("token_hash") DO UPDATE SET "rotated_at" = excluded."rotated_at", "expires" = excluded."expires""#,
    )
    .bind(&l.token_hash)
    .bind(l.family.to_string())
    .bind(l.user.map(|u| u.to_string()))
    .bind(l.rotated_at.map(ms))
    .bind(ms(l.expires))
}

/// An SQL literal: NULL or a single-quoted string with quotes doubled (SQLite's only escape).
fn lit(v: Option<&str>) -> String {
    match v {
        None => "NULL".into(),
        Some(s) => format!("'{}'", s.replace('\'', "''")),
    }
}

/// The statements of one rotation (see `rotate_session`). Values are inlined because a script
/// takes no parameters: tokens, hashes and ids come from gatehouse's own alphabets, times are
/// integers, and the request's ip, user agent and origin go through `lit`.
fn rotation_script(r: &Rotation) -> String {
    let s = &r.successor;
    let (new, old) = (lit(Some(&s.token)), lit(Some(&r.old_token)));
    let user = lit(s.user.map(|u| u.to_string()).as_deref());
    let ours =
        format!(r#"(SELECT "next_token" FROM "directus_sessions" WHERE "token" = {old}) = {new}"#);
    format!(
        r#"BEGIN IMMEDIATE;
UPDATE "directus_sessions" SET "next_token" = {new}, "expires" = {grace} WHERE "token" = {old} AND "next_token" IS NULL;
INSERT INTO "directus_sessions" ("token", "user", "expires", "ip", "user_agent", "origin", "share", "next_token")
  SELECT {new}, {user}, {expires}, {ip}, {ua}, {origin}, {share}, NULL WHERE {ours};
INSERT INTO "gatehouse_session_lineage" ("token_hash", "family", "user", "rotated_at", "expires")
  SELECT {old_hash}, {family}, {user}, {now}, {lexp} WHERE {ours}
  UNION ALL SELECT {new_hash}, {family}, {user}, NULL, {lexp} WHERE {ours}
  ON CONFLICT ("token_hash") DO UPDATE SET "rotated_at" = excluded."rotated_at", "expires" = excluded."expires";
UPDATE "directus_users" SET "last_access" = {now}
  WHERE "id" = {user} AND {ours} AND ("last_access" IS NULL OR "last_access" < {now} - 1000);
SELECT "next_token" FROM "directus_sessions" WHERE "token" = {old};
COMMIT;"#,
        grace = ms(r.grace_expires),
        expires = ms(s.expires),
        ip = lit(s.ip.as_deref()),
        ua = lit(s.user_agent.as_deref()),
        origin = lit(s.origin.as_deref()),
        share = lit(s.share.map(|u| u.to_string()).as_deref()),
        old_hash = lit(Some(&r.old_hash)),
        new_hash = lit(Some(&r.successor_hash)),
        family = lit(Some(&r.family.to_string())),
        now = ms(r.now),
        lexp = ms(r.lineage_expires),
    )
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

#[async_trait]
impl Store for SqliteStore {
    async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::raw_sql(
            r#"CREATE TABLE IF NOT EXISTS "gatehouse_migrations" ("version" integer PRIMARY KEY NOT NULL, "name" text NOT NULL, "applied_at" integer NOT NULL)"#,
        )
        .execute(&self.write)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            // IMMEDIATE takes the write lock before the check: another process migrating
            // the same file waits (busy_timeout), then finds the version recorded.
            let mut tx = self.write.begin_with("BEGIN IMMEDIATE").await?;
            let done: Option<i64> = sqlx::query_scalar(
                r#"SELECT "version" FROM "gatehouse_migrations" WHERE "version" = ?"#,
            )
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
            if done.is_some() {
                tx.commit().await?;
                continue;
            }
            // One transaction: the migration and its record land together (dropping `tx`
            // on error rolls back).
            let failed = |e: sqlx::Error| StoreError::Migration(format!("{version}_{name}: {e}"));
            let script = format!(
                "{sql}\nINSERT INTO \"gatehouse_migrations\" (\"version\", \"name\", \"applied_at\") VALUES ({version}, '{name}', {});",
                Utc::now().timestamp_millis()
            );
            sqlx::Executor::execute(&mut *tx, sqlx::raw_sql(&script))
                .await
                .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.read).await?;
        Ok(())
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        sqlx::query(r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES (?, ?) ON CONFLICT ("key") DO NOTHING"#)
            .bind(key)
            .bind(value)
            .execute(&self.write)
            .await?;
        Ok(
            sqlx::query_scalar(r#"SELECT "value" FROM "gatehouse_meta" WHERE "key" = ?"#)
                .bind(key)
                .fetch_one(&self.write)
                .await?,
        )
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
        let mut query = sqlx::query(&sql);
        for (f, k) in &cols {
            query = bind(query, c, f, *k, &item[*f])?;
        }
        query
            .execute(&self.write)
            .await
            .map_err(|e| conflict(c, &e, item).unwrap_or(e.into()))?;
        Ok(())
    }

    async fn item_update(
        &self,
        c: &'static Collection,
        id: &Value,
        patch: &Item,
    ) -> Result<bool, StoreError> {
        let cols: Vec<(&'static str, Kind)> = c
            .fields
            .iter()
            .filter(|(f, _)| patch.contains_key(*f) && *f != c.pk)
            .copied()
            .collect();
        if cols.is_empty() {
            return Ok(self.item_get(c, id).await?.is_some());
        }
        let sql = format!(
            "UPDATE \"{}\" SET {} WHERE \"{}\" = ?",
            c.name,
            cols.iter()
                .map(|(f, _)| format!("\"{f}\" = ?"))
                .collect::<Vec<_>>()
                .join(", "),
            c.pk
        );
        let mut query = sqlx::query(&sql);
        for (f, k) in &cols {
            query = bind(query, c, f, *k, &patch[*f])?;
        }
        query = bind(query, c, c.pk, c.kind(c.pk).unwrap_or(Kind::Text), id)?;
        let res = query
            .execute(&self.write)
            .await
            .map_err(|e| conflict(c, &e, patch).unwrap_or(e.into()))?;
        Ok(res.rows_affected() > 0)
    }

    async fn item_delete(&self, c: &'static Collection, id: &Value) -> Result<bool, StoreError> {
        let sql = format!("DELETE FROM \"{}\" WHERE \"{}\" = ?", c.name, c.pk);
        let res = bind(
            sqlx::query(&sql),
            c,
            c.pk,
            c.kind(c.pk).unwrap_or(Kind::Text),
            id,
        )?
        .execute(&self.write)
        .await?;
        Ok(res.rows_affected() > 0)
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
        let mut tx = self.write.begin().await?;
        insert_session_query(s).execute(&mut *tx).await?;
        insert_lineage_query(lineage).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
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

    async fn rotate_session(&self, r: &Rotation) -> Result<RotationOutcome, StoreError> {
        // One script, one trip to the writer's thread (each statement would be a trip of its
        // own). Every step after the UPDATE runs only if the old row now points at *our*
        // successor, which is fresh randomness: that is how the script knows it won.
        let script = rotation_script(r);
        let rows = match sqlx::raw_sql(&script).fetch_all(&self.write).await {
            Ok(rows) => rows,
            Err(e) => {
                // The write pool has one connection: this ROLLBACK reaches the same session.
                let _ = sqlx::raw_sql("ROLLBACK").execute(&self.write).await;
                return Err(e.into());
            }
        };
        let next: Option<String> = match rows.last() {
            Some(row) => row.try_get("next_token")?,
            None => None,
        };
        Ok(match next {
            Some(n) if n == r.successor.token => RotationOutcome::Won,
            other => RotationOutcome::Lost(other),
        })
    }

    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar(r#"SELECT "token" FROM "directus_sessions" WHERE "user" = ?"#)
                .bind(user.to_string())
                .fetch_all(&self.write)
                .await?,
        )
    }

    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError> {
        let mut n = 0;
        let mut tx = self.write.begin().await?;
        for t in tokens {
            n += sqlx::query(r#"DELETE FROM "directus_sessions" WHERE "token" = ?"#)
                .bind(t)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n)
    }

    async fn sessions_delete_user(
        &self,
        user: Uuid,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        Ok(
            sqlx::query(r#"DELETE FROM "directus_sessions" WHERE "user" = ? AND "token" IS NOT ?"#)
                .bind(user.to_string())
                .bind(keep)
                .execute(&self.write)
                .await?
                .rows_affected(),
        )
    }

    async fn sessions_purge_expired(
        &self,
        user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.write.begin().await?;
        match user {
            Some(u) => {
                sqlx::query(r#"DELETE FROM "directus_sessions" WHERE "user" = ? AND "expires" < ?"#)
                    .bind(u.to_string())
            }
            None => sqlx::query(r#"DELETE FROM "directus_sessions" WHERE "expires" < ?"#),
        }
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query(r#"DELETE FROM "gatehouse_session_lineage" WHERE "expires" < ?"#)
            .bind(ms(now))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
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
        Ok(sqlx::query_scalar(
            r#"SELECT "token_hash" FROM "gatehouse_session_lineage" WHERE "family" = ?"#,
        )
        .bind(family.to_string())
        .fetch_all(&self.write)
        .await?)
    }

    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(LAST_ACCESS_UPDATE)
            .bind(ms(now))
            .bind(user.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn login_attempt(&self, user: Uuid) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            r#"INSERT INTO "gatehouse_login_attempts" ("user", "attempts") VALUES (?, 1)
               ON CONFLICT ("user") DO UPDATE SET "attempts" = "gatehouse_login_attempts"."attempts" + 1 RETURNING "attempts""#,
        )
        .bind(user.to_string())
        .fetch_one(&self.write)
        .await?)
    }

    async fn login_attempts_reset(&self, user: Uuid) -> Result<(), StoreError> {
        sqlx::query(r#"DELETE FROM "gatehouse_login_attempts" WHERE "user" = ?"#)
            .bind(user.to_string())
            .execute(&self.write)
            .await?;
        Ok(())
    }

    async fn activity_insert(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), StoreError> {
        sqlx::query(
            r#"INSERT INTO "directus_activity" ("action", "user", "timestamp", "ip", "user_agent", "collection", "item", "origin")
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)"#,
        )
        .bind(a.action)
        .bind(a.user.map(|u| u.to_string()))
        .bind(ms(now))
        .bind(&a.ip)
        .bind(&a.user_agent)
        .bind(a.collection)
        .bind(&a.item)
        .bind(&a.origin)
        .execute(&self.write)
        .await?;
        Ok(())
    }
}
