//! `TfaStore` over both SQL backends: each decision (a step used, a wrong code counted, a
//! recovery code spent) is one conditional statement, so the database settles every race.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{Driver, SqlStore};
use crate::store::sql::SqlValue;
use crate::store::{Kind, StoreError, TfaStore};

/// SECURITY: the step is recorded only when it is newer than the one on record; the row
/// count says whether this request is the one that used it. On PostgreSQL the `WHERE` of
/// `ON CONFLICT DO UPDATE` is evaluated on the locked, latest row, so of two concurrent uses of
/// one code exactly one changes a row.
const USE_STEP: &str = r#"INSERT INTO "gatehouse_tfa_state" ("user", "last_step", "failures") VALUES ($1, $2, 0)
    ON CONFLICT ("user") DO UPDATE SET "last_step" = excluded."last_step"
    WHERE "gatehouse_tfa_state"."last_step" IS NULL OR "gatehouse_tfa_state"."last_step" < excluded."last_step""#;
const LOCK: &str = r#"UPDATE "gatehouse_tfa_state" SET "locked_until" = $2
    WHERE "user" = $1 AND ("locked_until" IS NULL OR "locked_until" < $2)"#;
const RESET: &str = r#"UPDATE "gatehouse_tfa_state" SET "failures" = 0, "locked_until" = NULL
    WHERE "user" = $1 AND ("failures" <> 0 OR "locked_until" IS NOT NULL)"#;
const CODES_DELETE: &str = r#"DELETE FROM "gatehouse_recovery_codes" WHERE "user" = $1"#;
const CODE_INSERT: &str = r#"INSERT INTO "gatehouse_recovery_codes" ("user", "code_hash", "created_at") VALUES ($1, $2, $3)"#;
const CODE_USE: &str =
    r#"DELETE FROM "gatehouse_recovery_codes" WHERE "user" = $1 AND "code_hash" = $2"#;
const CODE_HASHES: &str =
    r#"SELECT "code_hash" FROM "gatehouse_recovery_codes" WHERE "user" = $1 ORDER BY "code_hash""#;
const STATE_DELETE: &str = r#"DELETE FROM "gatehouse_tfa_state" WHERE "user" = $1"#;

#[async_trait]
impl<D: Driver> TfaStore for SqlStore<D> {
    async fn tfa_use_step(&self, user: Uuid, step: i64) -> Result<bool, StoreError> {
        let sql = self.sql(USE_STEP, vec![SqlValue::Uuid(user), SqlValue::Int(step)]);
        Ok(self.driver.write(vec![sql]).await?.iter().sum::<u64>() > 0)
    }

    async fn tfa_locked_until(&self, user: Uuid) -> Result<Option<DateTime<Utc>>, StoreError> {
        let text = format!(
            r#"SELECT {} FROM "gatehouse_tfa_state" WHERE "user" = $1"#,
            (self.d().select)(Kind::Timestamp).replace("{c}", "\"locked_until\"")
        );
        let row = self
            .one(
                self.sql(&text, vec![SqlValue::Uuid(user)]),
                vec![Kind::Timestamp],
            )
            .await?;
        match row.as_ref().and_then(|r| r.first()) {
            Some(v) => v.as_ts("gatehouse_tfa_state.locked_until"),
            None => Ok(None),
        }
    }

    async fn tfa_failure(&self, user: Uuid) -> Result<i64, StoreError> {
        self.count_up("gatehouse_tfa_state", "failures", user).await
    }

    async fn tfa_lock(&self, user: Uuid, until: DateTime<Utc>) -> Result<(), StoreError> {
        let sql = self.sql(LOCK, vec![SqlValue::Uuid(user), SqlValue::Ts(until)]);
        self.driver.write(vec![sql]).await.map(|_| ())
    }

    async fn tfa_failures_reset(&self, user: Uuid) -> Result<(), StoreError> {
        let sql = self.sql(RESET, vec![SqlValue::Uuid(user)]);
        self.driver.write(vec![sql]).await.map(|_| ())
    }

    async fn recovery_codes_replace(
        &self,
        user: Uuid,
        hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut sqls = vec![self.sql(CODES_DELETE, vec![SqlValue::Uuid(user)])];
        sqls.extend(hashes.iter().map(|h| {
            self.sql(
                CODE_INSERT,
                vec![SqlValue::Uuid(user), SqlValue::text(h), SqlValue::Ts(now)],
            )
        }));
        self.driver.write(sqls).await.map(|_| ())
    }

    async fn recovery_code_use(&self, user: Uuid, hash: &str) -> Result<bool, StoreError> {
        let sql = self.sql(CODE_USE, vec![SqlValue::Uuid(user), SqlValue::text(hash)]);
        Ok(self.driver.write(vec![sql]).await?.iter().sum::<u64>() == 1)
    }

    async fn recovery_code_hashes(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        self.texts(self.sql(CODE_HASHES, vec![SqlValue::Uuid(user)]))
            .await
    }

    async fn tfa_forget(&self, user: Uuid) -> Result<(), StoreError> {
        let sqls = vec![
            self.sql(CODES_DELETE, vec![SqlValue::Uuid(user)]),
            self.sql(STATE_DELETE, vec![SqlValue::Uuid(user)]),
        ];
        self.driver.write(sqls).await.map(|_| ())
    }
}
