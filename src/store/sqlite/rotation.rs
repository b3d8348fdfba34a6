//! A refresh on the SQLite writer (see `Rotation`): check, rotate and report in the writer's
//! transaction, every statement prepared once and reused.

use std::sync::LazyLock;

use chrono::DateTime;
use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{ms, SQLITE};
use crate::store::sql::{parse_text_ts, Sql};
use crate::store::{Lineage, Refreshed, Rotation, Session, SessionUser, StoreError};

fn insert_session(conn: &Connection, s: &Session) -> Result<(), StoreError> {
    execute(conn, &SQLITE.insert_session(s))
}

fn insert_lineage(conn: &Connection, l: &Lineage) -> Result<(), StoreError> {
    execute(conn, &SQLITE.insert_lineage(l))
}

fn execute(conn: &Connection, sql: &Sql) -> Result<(), StoreError> {
    conn.prepare_cached(&sql.text)?
        .execute(rusqlite::params_from_iter(sql.values.iter()))?;
    Ok(())
}

/// A session's expiry in epoch milliseconds: gatehouse and Directus write integers, but a
/// hand-written ISO text value must not slip past the check.
fn expires_ms(alias: &str) -> String {
    format!(
        r#"(CASE WHEN typeof({alias}."expires") IN ('integer', 'real') THEN {alias}."expires" ELSE CAST(unixepoch({alias}."expires", 'subsec') * 1000 AS INTEGER) END)"#
    )
}

/// Marks the presented row as rotated if it may be (see `Rotation`); returns its user.
static MARK_ROTATED: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"UPDATE "directus_sessions" AS s SET "next_token" = ?1, "expires" = MIN(?2, {e})
           WHERE s."token" = ?3 AND s."next_token" IS NULL AND s."share" IS NULL AND {e} >= ?4
             AND EXISTS (SELECT 1 FROM "directus_users" u WHERE u."id" = s."user" AND u."status" = 'active')
           RETURNING "user""#,
        e = expires_ms("s")
    )
});

/// What a refresh found: the presented row, its user, its successor and its lineage.
static REFRESH_REPORT: LazyLock<String> = LazyLock::new(|| {
    format!(
        r#"SELECT s."token", s."user", CAST(s."expires" AS TEXT), s."ip", s."user_agent", s."origin", s."share", s."next_token",
             u."id", u."status", u."role", u."tfa_secret" IS NOT NULL,
             n."token" IS NOT NULL AND {n} >= ?3,
             l."family", l."user", l."rotated_at", l."expires"
           FROM (SELECT 1) AS one
           LEFT JOIN "directus_sessions" s ON s."token" = ?1
           LEFT JOIN "directus_users" u ON u."id" = s."user"
           LEFT JOIN "directus_sessions" n ON n."token" = s."next_token"
           LEFT JOIN "gatehouse_session_lineage" l ON l."token_hash" = ?2"#,
        n = expires_ms("n")
    )
});

fn parse_uuid(s: Option<String>, what: &str) -> Result<Option<Uuid>, StoreError> {
    s.map(|s| Uuid::parse_str(&s).map_err(|_| StoreError::Decode(what.into())))
        .transpose()
}

/// One refresh on the writer (see `Rotation`): every statement is prepared once and reused.
pub(super) fn refresh(conn: &Connection, r: &Rotation) -> Result<Refreshed, StoreError> {
    let marked: Option<Option<String>> = conn
        .prepare_cached(&MARK_ROTATED)?
        .query_row(
            params![
                r.successor.token,
                ms(r.grace_expires),
                r.old_token,
                ms(r.now)
            ],
            |row| row.get(0),
        )
        .optional()?;
    let won = marked.is_some();
    if let Some(user) = parse_uuid(marked.flatten(), "directus_sessions.user")? {
        insert_session(
            conn,
            &Session {
                user: Some(user),
                ..r.successor.clone()
            },
        )?;
        let family: Option<String> = conn
            .prepare_cached(
                r#"SELECT "family" FROM "gatehouse_session_lineage" WHERE "token_hash" = ?"#,
            )?
            .query_row([&r.old_hash], |row| row.get(0))
            .optional()?;
        let family = parse_uuid(family, "gatehouse_session_lineage.family")?;
        for (token_hash, rotated_at) in [(&r.old_hash, Some(r.now)), (&r.successor_hash, None)] {
            insert_lineage(
                conn,
                &Lineage {
                    token_hash: token_hash.clone(),
                    family: family.unwrap_or(r.new_family),
                    user: Some(user),
                    rotated_at,
                    expires: r.lineage_expires,
                },
            )?;
        }
        execute(conn, &SQLITE.touch_last_access(user, r.now))?;
    }

    let mut stmt = conn.prepare_cached(&REFRESH_REPORT)?;
    let mut rows = stmt.query(params![r.old_token, r.old_hash, ms(r.now)])?;
    let row = rows
        .next()?
        .ok_or_else(|| StoreError::Decode("refresh report".into()))?;
    let bad = |what: &str| StoreError::Decode(what.into());
    let session = match row.get::<_, Option<String>>(0)? {
        Some(token) => {
            let expires: String = row.get(2)?;
            Some(Session {
                token,
                user: parse_uuid(row.get(1)?, "directus_sessions.user")?,
                expires: parse_text_ts(&expires).ok_or_else(|| bad("directus_sessions.expires"))?,
                ip: row.get(3)?,
                user_agent: row.get(4)?,
                origin: row.get(5)?,
                share: parse_uuid(row.get(6)?, "directus_sessions.share")?,
                next_token: row.get(7)?,
            })
        }
        None => None,
    };
    let user = match parse_uuid(row.get(8)?, "directus_users.id")? {
        Some(id) => Some(SessionUser {
            id,
            status: row.get(9)?,
            role: parse_uuid(row.get(10)?, "directus_users.role")?,
            has_tfa_secret: row.get(11)?,
        }),
        None => None,
    };
    let lineage = match parse_uuid(row.get(13)?, "gatehouse_session_lineage.family")? {
        Some(family) => Some(Lineage {
            token_hash: r.old_hash.clone(),
            family,
            user: parse_uuid(row.get(14)?, "gatehouse_session_lineage.user")?,
            rotated_at: row
                .get::<_, Option<i64>>(15)?
                .and_then(DateTime::from_timestamp_millis),
            expires: DateTime::from_timestamp_millis(row.get(16)?)
                .ok_or_else(|| bad("gatehouse_session_lineage.expires"))?,
        }),
        None => None,
    };
    Ok(Refreshed {
        won,
        successor_alive: row.get::<_, Option<bool>>(12)?.unwrap_or(false),
        session,
        user,
        lineage,
    })
}
