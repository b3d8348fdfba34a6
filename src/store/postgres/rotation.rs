//! A refresh on PostgreSQL (see `Rotation`): one statement checks, rotates and reports.

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};
use uuid::Uuid;

use super::session_at;
use crate::store::{Lineage, Refreshed, Rotation, SessionUser, StoreError};

/// A whole refresh (Directus: `api/src/services/authentication.ts` `refresh`, in gatehouse's every-mode form; see `Rotation`) as one
/// statement of data-modifying CTEs: mark the old row if it may rotate, insert the successor,
/// record both lineage rows, touch `last_access`, and report what was found. PostgreSQL runs
/// every data-modifying CTE once, so each part happens exactly when `won` has a row. The
/// report reads the statement's snapshot, patched with what `won` and `lineage` wrote.
const REFRESH: &str = r#"
WITH won AS (
  UPDATE "directus_sessions" s SET "next_token" = $1, "expires" = LEAST($2, s."expires")
  WHERE s."token" = $3 AND s."next_token" IS NULL AND s."share" IS NULL AND s."expires" >= $12
    AND EXISTS (SELECT 1 FROM "directus_users" u WHERE u."id" = s."user" AND u."status" = 'active')
  RETURNING s."user", s."next_token", s."expires"
), successor AS (
  INSERT INTO "directus_sessions" ("token", "user", "expires", "ip", "user_agent", "origin", "share", "next_token")
  SELECT $1, won."user", $4, $5, $6, $7, NULL, NULL FROM won
  RETURNING 1
), lineage AS (
  INSERT INTO "gatehouse_session_lineage" ("token_hash", "family", "user", "rotated_at", "expires")
  SELECT v.h, COALESCE((SELECT l."family" FROM "gatehouse_session_lineage" l WHERE l."token_hash" = $8), $10), won."user", v.r, $11
  FROM won, (VALUES ($8::varchar, $12::timestamptz), ($9::varchar, NULL::timestamptz)) AS v (h, r)
  ON CONFLICT ("token_hash") DO UPDATE SET "rotated_at" = excluded."rotated_at", "expires" = excluded."expires"
  RETURNING "token_hash", "family", "user", "rotated_at", "expires"
), seen AS (
  UPDATE "directus_users" SET "last_access" = $12
  WHERE "id" = (SELECT "user" FROM won)
    AND ("last_access" IS NULL OR "last_access" < $12 - interval '1 second')
  RETURNING 1
)
SELECT w."user" IS NOT NULL AS "won",
  s."token", s."user", COALESCE(w."expires", s."expires") AS "expires", s."ip", s."user_agent",
  s."origin", s."share", COALESCE(w."next_token", s."next_token") AS "next_token",
  u."id" AS "u_id", u."status" AS "u_status", u."role" AS "u_role",
  u."tfa_secret" IS NOT NULL AS "u_tfa", n."expires" >= $12 AS "next_alive",
  COALESCE(nl."family", l."family") AS "l_family",
  CASE WHEN nl."family" IS NULL THEN l."user" ELSE nl."user" END AS "l_user",
  CASE WHEN nl."family" IS NULL THEN l."rotated_at" ELSE nl."rotated_at" END AS "l_rotated_at",
  COALESCE(nl."expires", l."expires") AS "l_expires"
FROM (SELECT 1) AS one
LEFT JOIN won w ON true
LEFT JOIN lineage nl ON nl."token_hash" = $8
LEFT JOIN "directus_sessions" s ON s."token" = $3
LEFT JOIN "directus_users" u ON u."id" = s."user"
LEFT JOIN "directus_sessions" n ON n."token" = s."next_token"
LEFT JOIN "gatehouse_session_lineage" l ON l."token_hash" = $8"#;

fn refreshed_from(row: &PgRow, old_hash: &str) -> Result<Refreshed, StoreError> {
    let session = match row.try_get::<Option<String>, _>("token")? {
        Some(_) => Some(session_at(row, 1)?),
        None => None,
    };
    let user = match row.try_get::<Option<Uuid>, _>("u_id")? {
        Some(id) => Some(SessionUser {
            id,
            status: row.try_get("u_status")?,
            role: row.try_get("u_role")?,
            has_tfa_secret: row.try_get("u_tfa")?,
        }),
        None => None,
    };
    let lineage = match row.try_get::<Option<Uuid>, _>("l_family")? {
        Some(family) => Some(Lineage {
            token_hash: old_hash.to_string(),
            family,
            user: row.try_get("l_user")?,
            rotated_at: row.try_get("l_rotated_at")?,
            expires: row.try_get("l_expires")?,
        }),
        None => None,
    };
    let won: bool = row.try_get("won")?;
    Ok(Refreshed {
        won,
        // The successor this call inserted is in no snapshot the report reads.
        successor_alive: won
            || row
                .try_get::<Option<bool>, _>("next_alive")?
                .unwrap_or(false),
        session,
        user,
        lineage,
    })
}

pub(super) async fn refresh(pool: &PgPool, r: &Rotation) -> Result<Refreshed, StoreError> {
    // A refresh that lost to a concurrent one waited for its commit, but its report still
    // reads the older snapshot (no successor yet). Running it again, in a new snapshot,
    // shows the winner's successor; it is a no-op otherwise.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let row = sqlx::query(REFRESH)
            .bind(&r.successor.token) // $1
            .bind(r.grace_expires) // $2
            .bind(&r.old_token) // $3
            .bind(r.successor.expires) // $4
            .bind(&r.successor.ip) // $5
            .bind(&r.successor.user_agent) // $6
            .bind(&r.successor.origin) // $7
            .bind(&r.old_hash) // $8
            .bind(&r.successor_hash) // $9
            .bind(r.new_family) // $10
            .bind(r.lineage_expires) // $11
            .bind(r.now) // $12
            .fetch_one(pool)
            .await?;
        let state = refreshed_from(&row, &r.old_hash)?;
        let stale = !state.won
            && state.user.as_ref().is_some_and(|u| u.status == "active")
            && state
                .session
                .as_ref()
                .is_some_and(|s| s.next_token.is_none() && s.share.is_none() && s.expires >= r.now);
        if !stale || attempts == 3 {
            return Ok(state);
        }
    }
}
