//! The `Store` both SQL backends are: every method written once over a `Driver`, the few
//! things a backend does its own way (run a read, run writes in one transaction, migrate,
//! rotate a refresh token).

mod tfa;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::{access_ids, lineage_from, session_from, Dialect, Sql, SqlValue, WriteSql, Wrote};
use super::{LINEAGE_KINDS, SESSION_KINDS};
use crate::store::PoolStats;
use crate::store::{
    AccessStore, Activity, Collection, CounterStore, Filter, Item, ItemStore, Kind, Lineage,
    ListQuery, MetaStore, Refreshed, Rotation, Session, SessionStore, StoreError, WriteOp, ACCESS,
    PERMISSIONS, POLICIES, USERS,
};

/// What a backend provides: its dialect and a way to run statements on its driver.
#[async_trait]
pub trait Driver: Send + Sync + 'static {
    const DIALECT: &'static Dialect;
    /// The connection pool as `/metrics` shows it.
    fn pool_stats(&self) -> PoolStats;
    /// The rows of a read; `kinds` are the kinds of its columns, in order.
    async fn fetch(&self, sql: Sql, kinds: Vec<Kind>) -> Result<Vec<Vec<SqlValue>>, StoreError>;
    /// Runs the statements in one transaction; the rows each one changed.
    async fn write(&self, sqls: Vec<Sql>) -> Result<Vec<u64>, StoreError>;
    /// Runs one writing statement with `RETURNING`, in a transaction of its own.
    async fn write_returning(
        &self,
        sql: Sql,
        kinds: Vec<Kind>,
    ) -> Result<Vec<Vec<SqlValue>>, StoreError>;
    /// `Store::items_write`'s transaction (each op's email check first, see `WriteSql`);
    /// with `if_no_users`, under the migration lock and only if `directus_users` is empty
    /// (None when it is not).
    async fn apply(
        &self,
        ops: Vec<WriteSql>,
        if_no_users: bool,
    ) -> Result<Option<Vec<Wrote>>, StoreError>;
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn refresh(&self, r: &Rotation) -> Result<Refreshed, StoreError>;
}

/// A `Store` on a SQL database.
#[derive(Clone)]
pub struct SqlStore<D> {
    pub(crate) driver: D,
}

impl<D: Driver> SqlStore<D> {
    fn d(&self) -> &'static Dialect {
        D::DIALECT
    }

    async fn one(&self, sql: Sql, kinds: Vec<Kind>) -> Result<Option<Vec<SqlValue>>, StoreError> {
        Ok(self.driver.fetch(sql, kinds).await?.into_iter().next())
    }

    async fn item(&self, c: &Collection, sql: Sql) -> Result<Option<Item>, StoreError> {
        let row = self.one(sql, Dialect::kinds(c, &[])).await?;
        row.map(|r| self.d().decode(c, &r)).transpose()
    }

    /// The first column of each row, as text.
    async fn texts(&self, sql: Sql) -> Result<Vec<String>, StoreError> {
        let rows = self.driver.fetch(sql, vec![Kind::Text]).await?;
        Ok(rows
            .iter()
            .filter_map(|r| r.first().and_then(|v| v.as_text()).map(str::to_string))
            .collect())
    }

    /// A shared statement (`$n` placeholders) with its values.
    fn sql(&self, template: &str, values: Vec<SqlValue>) -> Sql {
        Sql {
            text: self.d().sql(template).into_owned(),
            values,
        }
    }

    fn ops(&self, ops: &[WriteOp]) -> Result<Vec<WriteSql>, StoreError> {
        ops.iter().map(|op| self.d().write(op)).collect()
    }
}

/// Chunks of a purge, each its own transaction: a purge after a busy hour (every refresh
/// leaves an old row behind) neither holds the database nor balloons a cache.
const PURGE_CHUNK: i64 = 1000;

#[async_trait]
impl<D: Driver> MetaStore for SqlStore<D> {
    async fn migrate(&self) -> Result<(), StoreError> {
        self.driver.migrate().await
    }

    fn pool_stats(&self) -> PoolStats {
        self.driver.pool_stats()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.driver
            .fetch(self.sql("SELECT 1", vec![]), vec![])
            .await?;
        // A real write, answered after its commit: a `SELECT` still succeeds on a full disk,
        // a read-only file or standby, or a database that refuses writes.
        let now = SqlValue::Text(Utc::now().to_rfc3339());
        self.driver
            .write(vec![self.sql(PING_WRITE, vec![now])])
            .await?;
        Ok(())
    }

    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        let insert = self.sql(
            META_INSERT,
            vec![SqlValue::text(key), SqlValue::text(value)],
        );
        self.driver.write(vec![insert]).await?;
        let get = self.sql(META_GET, vec![SqlValue::text(key)]);
        self.texts(get)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Decode("gatehouse_meta.value".into()))
    }

    async fn activity_insert(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), StoreError> {
        let values = vec![
            SqlValue::text(a.action),
            SqlValue::opt_uuid(a.user),
            SqlValue::Ts(now),
            SqlValue::opt_text(&a.ip),
            SqlValue::opt_text(&a.user_agent),
            SqlValue::text(a.collection),
            SqlValue::text(&a.item),
            SqlValue::opt_text(&a.origin),
        ];
        let sql = self.sql(ACTIVITY_INSERT, values);
        self.driver.write(vec![sql]).await.map(|_| ())
    }
}

#[async_trait]
impl<D: Driver> ItemStore for SqlStore<D> {
    async fn items_list(
        &self,
        c: &'static Collection,
        q: &ListQuery,
    ) -> Result<Vec<Item>, StoreError> {
        let Some(sql) = self.d().items_list(c, q)? else {
            return Ok(Vec::new());
        };
        let rows = self.driver.fetch(sql, Dialect::kinds(c, &[])).await?;
        rows.iter().map(|r| self.d().decode(c, r)).collect()
    }

    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError> {
        let sql = self.sql(&self.d().items_count(c), vec![]);
        let row = self.one(sql, vec![Kind::Int]).await?;
        Ok(row
            .and_then(|r| r.first()?.as_int("count").ok()?)
            .unwrap_or(0))
    }

    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError> {
        match self.d().item_get(c, id)? {
            Some(sql) => self.item(c, sql).await,
            None => Ok(None),
        }
    }

    async fn items_write(&self, ops: &[WriteOp]) -> Result<Vec<bool>, StoreError> {
        let written = self.driver.apply(self.ops(ops)?, false).await?;
        Ok(written
            .unwrap_or_default()
            .into_iter()
            .map(|w| w != Wrote::Nothing)
            .collect())
    }

    async fn items_write_keys(&self, ops: &[WriteOp]) -> Result<Vec<Option<Value>>, StoreError> {
        let written = self.driver.apply(self.ops(ops)?, false).await?;
        Ok(written
            .unwrap_or_default()
            .into_iter()
            .zip(ops)
            .map(|(w, op)| match w {
                Wrote::Nothing => None,
                Wrote::Row => Some(op.key().cloned().unwrap_or(Value::Null)),
                Wrote::Generated(key) => Some(Value::from(key)),
            })
            .collect())
    }

    async fn items_write_if_no_users(&self, ops: &[WriteOp]) -> Result<bool, StoreError> {
        Ok(self.driver.apply(self.ops(ops)?, true).await?.is_some())
    }
}

#[async_trait]
impl<D: Driver> AccessStore for SqlStore<D> {
    async fn user_by_email(&self, key: &str) -> Result<Option<Item>, StoreError> {
        self.item(&USERS, self.d().user_by_email(key)).await
    }

    async fn user_by_static_token(&self, token: &str) -> Result<Option<Item>, StoreError> {
        self.item(&USERS, self.d().user_by_static_token(token))
            .await
    }

    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError> {
        let kinds = Dialect::kinds(&USERS, &[Kind::Text]);
        let row = self.one(self.d().user_with_access(id), kinds).await?;
        row.map(|r| {
            let access = r.get(USERS.fields.len()).and_then(SqlValue::as_text);
            Ok((self.d().decode(&USERS, &r)?, access_ids(access)))
        })
        .transpose()
    }

    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<std::sync::Arc<Vec<(Item, Option<Uuid>)>>, StoreError> {
        let kinds = Dialect::kinds(&POLICIES, &[Kind::Uuid]);
        let rows = self
            .driver
            .fetch(self.d().policies_for(roles, user), kinds)
            .await?;
        rows.iter()
            .map(|r| {
                let via = r.get(POLICIES.fields.len());
                let via = via.and_then(|v| v.as_uuid("gh_via_role").ok().flatten());
                Ok((self.d().decode(&POLICIES, r)?, via))
            })
            .collect::<Result<Vec<_>, StoreError>>()
            .map(std::sync::Arc::new)
    }

    async fn public_policies(&self) -> Result<Vec<Item>, StoreError> {
        let q = ListQuery {
            filters: vec![
                Filter {
                    field: "role",
                    value: Value::Null,
                },
                Filter {
                    field: "user",
                    value: Value::Null,
                },
            ],
            ..Default::default()
        };
        let mut rows = self.items_list(&ACCESS, &q).await?;
        // `sort` order, unsorted rows first (as `policies_for` orders them).
        rows.sort_by_key(|r| r.get("sort").and_then(Value::as_i64));
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(policy) = row.get("policy").filter(|p| p.is_string()) {
                if let Some(p) = self.item_get(&POLICIES, policy).await? {
                    out.push(p);
                }
            }
        }
        Ok(out)
    }

    async fn collection_permissions(&self, collection: &str) -> Result<Vec<Item>, StoreError> {
        let q = ListQuery {
            filters: vec![Filter {
                field: "collection",
                value: Value::from(collection),
            }],
            ..Default::default()
        };
        self.items_list(&PERMISSIONS, &q).await
    }
}

#[async_trait]
impl<D: Driver> SessionStore for SqlStore<D> {
    async fn session_insert(&self, s: &Session, lineage: &Lineage) -> Result<(), StoreError> {
        let sqls = vec![self.d().insert_session(s), self.d().insert_lineage(lineage)];
        self.driver.write(sqls).await.map(|_| ())
    }

    async fn session_get(&self, token: &str) -> Result<Option<Session>, StoreError> {
        let row = self
            .one(self.d().session_get(token), SESSION_KINDS.to_vec())
            .await?;
        row.map(|r| session_from(&r, 0)).transpose()
    }

    async fn refresh_session(&self, r: &Rotation) -> Result<Refreshed, StoreError> {
        self.driver.refresh(r).await
    }

    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        self.texts(self.sql(TOKENS_OF_USER, vec![SqlValue::Uuid(user)]))
            .await
    }

    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError> {
        let sqls = tokens
            .iter()
            .map(|t| self.sql(SESSION_DELETE, vec![SqlValue::text(t)]))
            .collect();
        Ok(self.driver.write(sqls).await?.iter().sum())
    }

    async fn sessions_delete_user(
        &self,
        user: Uuid,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let text = format!(
            r#"DELETE FROM "directus_sessions" WHERE "user" = $1 AND "token" {} $2"#,
            self.d().is_distinct
        );
        let keep = keep.map_or(SqlValue::Null(Kind::Text), SqlValue::text);
        let sql = self.sql(&text, vec![SqlValue::Uuid(user), keep]);
        Ok(self.driver.write(vec![sql]).await?.iter().sum())
    }

    async fn sessions_purge_expired(
        &self,
        user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let user = SqlValue::opt_uuid(user);
        let statements = [
            (
                PURGE_SESSIONS,
                vec![SqlValue::Ts(now), user, SqlValue::Int(PURGE_CHUNK)],
            ),
            (
                PURGE_LINEAGE,
                vec![SqlValue::Ts(now), SqlValue::Int(PURGE_CHUNK)],
            ),
        ];
        for (template, values) in statements {
            loop {
                let sql = self.sql(template, values.clone());
                let deleted = self.driver.write(vec![sql]).await?;
                if deleted.iter().sum::<u64>() < PURGE_CHUNK as u64 {
                    break;
                }
            }
        }
        Ok(())
    }

    async fn lineage_get(&self, token_hash: &str) -> Result<Option<Lineage>, StoreError> {
        let sql = self.d().lineage_get(token_hash);
        let row = self.one(sql, LINEAGE_KINDS.to_vec()).await?;
        row.map(|r| lineage_from(&r)).transpose()
    }

    async fn lineage_hashes(&self, family: Uuid) -> Result<Vec<String>, StoreError> {
        self.texts(self.sql(LINEAGE_HASHES, vec![SqlValue::Uuid(family)]))
            .await
    }

    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let sql = self.d().touch_last_access(user, now);
        self.driver.write(vec![sql]).await.map(|_| ())
    }
}

impl<D: Driver> SqlStore<D> {
    /// Adds one to `table.column` for `user` (a row at 1 when there is none) in one atomic
    /// statement, and returns the new count. The per-user counters: failed logins, wrong
    /// second-factor codes.
    pub(super) async fn count_up(
        &self,
        table: &str,
        column: &str,
        user: Uuid,
    ) -> Result<i64, StoreError> {
        let text = format!(
            r#"INSERT INTO "{table}" ("user", "{column}") VALUES ($1, 1)
               ON CONFLICT ("user") DO UPDATE SET "{column}" = "{table}"."{column}" + 1
               RETURNING {}"#,
            (self.d().select)(Kind::Int).replace("{c}", &format!("\"{column}\""))
        );
        let sql = self.sql(&text, vec![SqlValue::Uuid(user)]);
        let rows = self.driver.write_returning(sql, vec![Kind::Int]).await?;
        let n = rows.first().and_then(|r| r.first());
        n.and_then(|v| v.as_int(column).ok().flatten())
            .ok_or_else(|| StoreError::Decode(format!("{table}.{column}")))
    }
}

#[async_trait]
impl<D: Driver> CounterStore for SqlStore<D> {
    async fn login_failure(&self, user: Uuid) -> Result<i64, StoreError> {
        self.count_up("gatehouse_login_attempts", "attempts", user)
            .await
    }

    async fn login_failures(&self, user: Uuid) -> Result<i64, StoreError> {
        let text = format!(
            r#"SELECT {} FROM "gatehouse_login_attempts" WHERE "user" = $1"#,
            (self.d().select)(Kind::Int).replace("{c}", "\"attempts\"")
        );
        let row = self
            .one(self.sql(&text, vec![SqlValue::Uuid(user)]), vec![Kind::Int])
            .await?;
        Ok(row
            .and_then(|r| r.first()?.as_int("attempts").ok()?)
            .unwrap_or(0))
    }

    async fn login_attempts_reset(&self, user: Uuid) -> Result<(), StoreError> {
        let sql = self.sql(ATTEMPTS_RESET, vec![SqlValue::Uuid(user)]);
        self.driver.write(vec![sql]).await.map(|_| ())
    }
}

/// The health probe's write: one `gatehouse_meta` row holding the time of the last probe.
const PING_WRITE: &str = r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES ('health_probe', $1) ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value""#;
const META_INSERT: &str = r#"INSERT INTO "gatehouse_meta" ("key", "value") VALUES ($1, $2) ON CONFLICT ("key") DO NOTHING"#;
const META_GET: &str = r#"SELECT "value" FROM "gatehouse_meta" WHERE "key" = $1"#;
const TOKENS_OF_USER: &str = r#"SELECT "token" FROM "directus_sessions" WHERE "user" = $1"#;
const SESSION_DELETE: &str = r#"DELETE FROM "directus_sessions" WHERE "token" = $1"#;
const PURGE_SESSIONS: &str = r#"DELETE FROM "directus_sessions" WHERE "token" IN (SELECT "token" FROM "directus_sessions" WHERE "expires" < $1 AND ($2 IS NULL OR "user" = $2) LIMIT $3)"#;
const PURGE_LINEAGE: &str = r#"DELETE FROM "gatehouse_session_lineage" WHERE "token_hash" IN (SELECT "token_hash" FROM "gatehouse_session_lineage" WHERE "expires" < $1 LIMIT $2)"#;
const LINEAGE_HASHES: &str =
    r#"SELECT "token_hash" FROM "gatehouse_session_lineage" WHERE "family" = $1"#;
const ATTEMPTS_RESET: &str = r#"DELETE FROM "gatehouse_login_attempts" WHERE "user" = $1"#;
const ACTIVITY_INSERT: &str = r#"INSERT INTO "directus_activity" ("action", "user", "timestamp", "ip", "user_agent", "collection", "item", "origin")
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"#;
