//! The `Store` contract: one suite over `Arc<dyn Store>`, run on SQLite always and on
//! PostgreSQL when `TEST_DATABASE_URL` is set (each test in a fresh schema, dropped when the
//! test passes). Both backends must give the same answers; SQLite is the reference.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use gatehouse::store::postgres::PostgresStore;
use gatehouse::store::sqlite::SqliteStore;
use gatehouse::store::{
    format_ts, Activity, Filter, Item, Lineage, ListQuery, Session, Store, StoreError, ACCESS,
    ACTIVITY, POLICIES, ROLES, SETTINGS, USERS,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sqlx::Connection;
use uuid::Uuid;

mod generated_keys;
mod items;
mod migrations;
mod refresh;
mod tfa;
mod writes;
use generated_keys::*;
use items::*;
use refresh::*;
use tfa::*;
use writes::*;

type R = Result<(), StoreError>;

/// A timestamp read back names the same instant, to the second: the SQLite backend shows
/// Directus's SQLite form (`2024-05-06T07:08:09`), PostgreSQL the full ISO form.
#[track_caller]
fn assert_same_instant(got: &Value, want: &Value) {
    let got_t = gatehouse::store::parse_ts(got).unwrap_or_else(|| panic!("not a timestamp: {got}"));
    let want_t = gatehouse::store::parse_ts(want).expect("expected timestamp");
    assert_eq!(got_t.timestamp(), want_t.timestamp(), "{got} vs {want}");
}

/// One fresh, empty database: a SQLite file, or a PostgreSQL schema of its own.
enum Database {
    Sqlite(tempfile::TempDir),
    Postgres { base: String, schema: String },
}

impl Database {
    fn sqlite() -> Database {
        Database::Sqlite(tempfile::tempdir().expect("temp dir"))
    }

    /// A fresh schema on `TEST_DATABASE_URL`. The PostgreSQL cases are `#[ignore]`d, so they
    /// run only when asked for (`-- --include-ignored`), and then the URL must be set: a
    /// case that cannot reach PostgreSQL fails rather than passing empty.
    fn postgres() -> Database {
        let Some(base) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            panic!(
                "this PostgreSQL case needs TEST_DATABASE_URL=postgres://… (for example \
                 TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/gatehouse_test \
                 cargo test --test store_contract -- --include-ignored)"
            );
        };
        let schema = format!("gh_{}", Uuid::new_v4().simple());
        Database::Postgres { base, schema }
    }

    /// A store on this database, not migrated; each call is a separate pool, as another
    /// node would have.
    async fn open(&self) -> Arc<dyn Store> {
        match self {
            Database::Sqlite(dir) => {
                let store =
                    SqliteStore::connect(&dir.path().join("gatehouse.db"), 4, ACQUIRE).await;
                Arc::new(store.expect("open SQLite"))
            }
            Database::Postgres { base, schema } => {
                let sep = if base.contains('?') { '&' } else { '?' };
                let store =
                    PostgresStore::connect(&format!("{base}{sep}gh_schema={schema}"), 8, ACQUIRE)
                        .await;
                Arc::new(store.expect("connect PostgreSQL"))
            }
        }
    }

    async fn migrated(&self) -> Arc<dyn Store> {
        let store = self.open().await;
        store.migrate().await.expect("migrate");
        store
    }

    /// Drops the PostgreSQL schema (the SQLite file goes with its temp dir). Only reached
    /// when the test passed, so a failure leaves its data to look at.
    async fn finish(self) {
        if let Database::Postgres { base, schema } = self {
            let mut conn = sqlx::PgConnection::connect(&base)
                .await
                .expect("connect PostgreSQL");
            let drop = format!("DROP SCHEMA \"{schema}\" CASCADE");
            sqlx::raw_sql(&drop)
                .execute(&mut conn)
                .await
                .expect("drop test schema");
        }
    }
}

/// Each case runs once per backend, on a fresh migrated database: `sqlite::<case>` and
/// `postgres::<case>`.
macro_rules! contract {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let db = super::Database::sqlite();
                    super::$case(db.migrated().await).await.expect("store call failed");
                    db.finish().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                #[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
                async fn $case() {
                    let db = super::Database::postgres();
                    super::$case(db.migrated().await).await.expect("store call failed");
                    db.finish().await;
                }
            )*
        }
    };
}

contract!(
    migrate_twice_is_a_no_op,
    items_insert_get_update_delete,
    items_list_filters,
    items_list_any_of_and_sort,
    unique_violations_name_the_column,
    values_round_trip,
    static_token_only_for_active_users,
    own_policy_flag,
    policies_via_roles_and_user,
    session_and_lineage_round_trip,
    refresh_rotates_once_then_shares,
    refresh_reports_what_it_refuses,
    refresh_keeps_or_starts_the_family,
    concurrent_refreshes_agree_on_one_successor,
    sessions_delete_user_keeps_one,
    purge_removes_only_expired,
    purge_removes_more_than_a_chunk,
    login_attempts_count_and_reset,
    meta_keeps_the_first_value,
    activity_rows_are_recorded,
    items_write_is_all_or_nothing,
    items_write_keeps_emails_unique_ignoring_case,
    items_write_if_no_users_applies_once,
    items_write_keys_returns_generated_keys,
    generated_key_inserts_are_all_or_nothing,
    deleting_a_policy_deletes_its_permissions,
    tfa_steps_only_move_forward,
    tfa_failures_count_lock_and_reset,
    recovery_codes_are_used_once,
);

/// Generous: the contract tests run many stores side by side on a shared machine.
const ACQUIRE: std::time::Duration = std::time::Duration::from_secs(30);

const PUBLIC_POLICY: &str = "abf8a154-5b1c-4a46-ac9c-7300570f4f17";

// ---------------------------------------------------------------------------------------
// Helpers

/// A fixed instant with milliseconds (both backends keep at least that precision).
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2031-05-06T07:08:09.123Z")
        .expect("valid timestamp")
        .with_timezone(&Utc)
}

fn item(v: Value) -> Item {
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn sha(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn add_user(s: &Arc<dyn Store>, email: &str, extra: Value) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let mut it = item(json!({ "id": id.to_string(), "email": email }));
    it.extend(item(extra));
    s.item_insert(&USERS, &it).await?;
    Ok(id)
}

async fn add_role(s: &Arc<dyn Store>, name: &str) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    s.item_insert(&ROLES, &item(json!({ "id": id.to_string(), "name": name })))
        .await?;
    Ok(id)
}

async fn add_policy(s: &Arc<dyn Store>, name: &str, extra: Value) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let mut it = item(json!({ "id": id.to_string(), "name": name }));
    it.extend(item(extra));
    s.item_insert(&POLICIES, &it).await?;
    Ok(id)
}

async fn add_access(
    s: &Arc<dyn Store>,
    role: Option<Uuid>,
    user: Option<Uuid>,
    policy: Uuid,
    sort: i64,
) -> Result<Uuid, StoreError> {
    let id = Uuid::new_v4();
    let it = json!({
        "id": id.to_string(),
        "role": role.map(|r| r.to_string()),
        "user": user.map(|u| u.to_string()),
        "policy": policy.to_string(),
        "sort": sort,
    });
    s.item_insert(&ACCESS, &item(it)).await?;
    Ok(id)
}

fn session(token: &str, user: Option<Uuid>, expires: DateTime<Utc>) -> Session {
    Session {
        token: token.to_string(),
        user,
        expires,
        ip: Some("203.0.113.7".into()),
        user_agent: Some("contract-test/1.0".into()),
        origin: Some("https://app.example".into()),
        share: None,
        next_token: None,
    }
}

fn lineage(token: &str, family: Uuid, user: Option<Uuid>, expires: DateTime<Utc>) -> Lineage {
    Lineage {
        token_hash: sha(token),
        family,
        user,
        rotated_at: None,
        expires,
    }
}

/// A logged-in session: the row and its lineage.
async fn login(
    s: &Arc<dyn Store>,
    token: &str,
    user: Uuid,
    expires: DateTime<Utc>,
) -> Result<Uuid, StoreError> {
    let family = Uuid::new_v4();
    s.session_insert(
        &session(token, Some(user), expires),
        &lineage(token, family, Some(user), expires),
    )
    .await?;
    Ok(family)
}

/// The (collection, field, value) of a `Conflict`; anything else fails the test.
fn conflict<T: std::fmt::Debug>(r: Result<T, StoreError>) -> (String, String, String) {
    match r {
        Err(StoreError::Conflict {
            collection,
            field,
            value,
        }) => (collection, field, value),
        other => panic!("expected a conflict, got {other:?}"),
    }
}

fn ids(items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

// ---------------------------------------------------------------------------------------
// Cases

async fn migrate_twice_is_a_no_op(s: Arc<dyn Store>) -> R {
    let role = add_role(&s, "Survivor").await?;
    s.migrate().await?;
    s.migrate().await?;
    s.ping().await?;

    assert!(
        s.item_get(&ROLES, &json!(role.to_string()))
            .await?
            .is_some(),
        "data survives a re-run"
    );
    // The public policy and its access row are seeded once.
    assert_eq!(s.items_count(&POLICIES).await?, 1);
    assert_eq!(s.items_count(&ACCESS).await?, 1);
    let policy = s
        .item_get(&POLICIES, &json!(PUBLIC_POLICY))
        .await?
        .expect("public policy seeded");
    assert_eq!(policy["name"], json!("$t:public_label"));
    assert_eq!(policy["icon"], json!("public"));
    assert_eq!(
        (
            &policy["admin_access"],
            &policy["app_access"],
            &policy["enforce_tfa"]
        ),
        (&json!(false), &json!(false), &json!(false))
    );
    let access = s.items_list(&ACCESS, &ListQuery::default()).await?;
    assert_eq!(access.len(), 1);
    assert_eq!(access[0]["policy"], json!(PUBLIC_POLICY));
    assert_eq!(
        (&access[0]["role"], &access[0]["user"], &access[0]["sort"]),
        (&Value::Null, &Value::Null, &json!(1))
    );
    Ok(())
}

async fn static_token_only_for_active_users(s: Arc<dyn Store>) -> R {
    let active = add_user(
        &s,
        "active@example.com",
        json!({ "token": "static-active" }),
    )
    .await?;
    let suspended = add_user(
        &s,
        "off@example.com",
        json!({ "token": "static-off", "status": "suspended" }),
    )
    .await?;

    let u = s
        .user_by_static_token("static-active")
        .await?
        .expect("active user found");
    assert_eq!(
        (&u["id"], &u["email"]),
        (&json!(active.to_string()), &json!("active@example.com"))
    );
    assert_eq!(s.user_by_static_token("static-off").await?, None);
    assert_eq!(s.user_by_static_token("static-missing").await?, None);
    assert_eq!(
        s.user_by_static_token("STATIC-ACTIVE").await?,
        None,
        "tokens compare exactly"
    );

    assert!(
        s.item_update(
            &USERS,
            &json!(suspended.to_string()),
            &item(json!({ "status": "active" }))
        )
        .await?
    );
    let u = s
        .user_by_static_token("static-off")
        .await?
        .expect("reactivated user found");
    assert_eq!(u["id"], json!(suspended.to_string()));
    Ok(())
}

async fn own_policy_flag(s: Arc<dyn Store>) -> R {
    let role = add_role(&s, "Staff").await?;
    let plain = add_user(&s, "plain@example.com", json!({ "role": role.to_string() })).await?;
    let owner = add_user(&s, "owner@example.com", json!({})).await?;
    let by_role = add_policy(&s, "Staff policy", json!({})).await?;
    add_access(&s, Some(role), None, by_role, 1).await?;

    let (u, own) = s.user_with_access(plain).await?.expect("user");
    assert_eq!(
        (u["id"].clone(), own),
        (json!(plain.to_string()), vec![]),
        "a role's policy is not the user's own"
    );
    let (u, own) = s.user_with_access(owner).await?.expect("user");
    assert_eq!(
        (u["email"].clone(), own),
        (json!("owner@example.com"), vec![])
    );

    let mine = add_policy(&s, "Owner policy", json!({})).await?;
    let second = add_policy(&s, "Second policy", json!({})).await?;
    let a2 = add_access(&s, None, Some(owner), second, 2).await?;
    let a1 = add_access(&s, None, Some(owner), mine, 1).await?;
    let (u, own) = s.user_with_access(owner).await?.expect("user");
    assert_eq!(
        (u["id"].clone(), own),
        (json!(owner.to_string()), vec![a1, a2]),
        "in sort order"
    );
    assert_eq!(u.len(), USERS.fields.len());
    assert_eq!(s.user_with_access(Uuid::new_v4()).await?, None);
    Ok(())
}

async fn policies_via_roles_and_user(s: Arc<dyn Store>) -> R {
    let role = add_role(&s, "Admins").await?;
    let other = add_role(&s, "Others").await?;
    let user = add_user(&s, "pol@example.com", json!({ "role": role.to_string() })).await?;
    let admin = add_policy(
        &s,
        "Admin",
        json!({ "admin_access": true, "app_access": true }),
    )
    .await?;
    let own = add_policy(
        &s,
        "Own",
        json!({ "enforce_tfa": true, "ip_access": "10.0.0.0/8" }),
    )
    .await?;
    let third = add_policy(&s, "Third", json!({})).await?;
    add_access(&s, Some(role), None, admin, 2).await?;
    add_access(&s, None, Some(user), own, 1).await?;
    add_access(&s, Some(other), None, third, 3).await?;
    let summary = |v: std::sync::Arc<Vec<(Item, Option<Uuid>)>>| -> Vec<(Value, Option<Uuid>)> {
        v.iter().map(|(p, r)| (p["id"].clone(), *r)).collect()
    };
    let id = |u: Uuid| json!(u.to_string());

    let got = s.policies_for(&[role], Some(user)).await?;
    let (p, _) = &got[0];
    assert_eq!(
        (&p["name"], &p["enforce_tfa"], &p["ip_access"]),
        (&json!("Own"), &json!(true), &json!("10.0.0.0/8"))
    );
    let (p, _) = &got[1];
    assert_eq!(
        (&p["admin_access"], &p["app_access"], &p["enforce_tfa"]),
        (&json!(true), &json!(true), &json!(false))
    );
    assert_eq!(
        summary(got),
        vec![(id(own), None), (id(admin), Some(role))],
        "ordered by sort, with the role"
    );

    assert_eq!(
        summary(s.policies_for(&[role], None).await?),
        vec![(id(admin), Some(role))]
    );
    assert_eq!(
        summary(s.policies_for(&[], Some(user)).await?),
        vec![(id(own), None)]
    );
    assert_eq!(
        summary(s.policies_for(&[role, other], None).await?),
        vec![(id(admin), Some(role)), (id(third), Some(other))]
    );
    // An access row without a sort comes first (SQLite's order for NULL).
    let unsorted = add_policy(&s, "Unsorted", json!({})).await?;
    let row = json!({ "id": Uuid::new_v4().to_string(), "role": other.to_string(), "policy": unsorted.to_string(), "sort": null });
    s.item_insert(&ACCESS, &item(row)).await?;
    assert_eq!(
        summary(s.policies_for(&[role, other], None).await?),
        vec![
            (id(unsorted), Some(other)),
            (id(admin), Some(role)),
            (id(third), Some(other))
        ]
    );
    assert!(
        s.policies_for(&[], None).await?.is_empty(),
        "the public row (role and user NULL) is never reached"
    );
    assert!(s
        .policies_for(&[Uuid::new_v4()], Some(Uuid::new_v4()))
        .await?
        .is_empty());
    Ok(())
}

async fn session_and_lineage_round_trip(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "sess@example.com", json!({})).await?;
    let family = Uuid::new_v4();
    let sess = Session {
        next_token: None,
        ..session("tok-a", Some(user), t0() + Duration::days(7))
    };
    let lin = Lineage {
        rotated_at: Some(t0()),
        ..lineage("tok-a", family, Some(user), t0() + Duration::days(8))
    };
    s.session_insert(&sess, &lin).await?;

    assert_eq!(s.session_get("tok-a").await?, Some(sess));
    assert_eq!(s.session_get("tok-b").await?, None);
    assert_eq!(s.lineage_get(&sha("tok-a")).await?, Some(lin));
    assert_eq!(s.lineage_get(&sha("tok-b")).await?, None);
    assert_eq!(s.lineage_hashes(family).await?, vec![sha("tok-a")]);
    assert!(s.lineage_hashes(Uuid::new_v4()).await?.is_empty());
    assert_eq!(
        s.session_tokens_of_user(user).await?,
        vec!["tok-a".to_string()]
    );

    // A share session: no user, a share id, sparse columns.
    let share = Session {
        share: Some(Uuid::new_v4()),
        ip: None,
        user_agent: None,
        origin: None,
        next_token: Some("tok-next".into()),
        ..session("tok-share", None, t0())
    };
    s.session_insert(&share, &lineage("tok-share", Uuid::new_v4(), None, t0()))
        .await?;
    assert_eq!(s.session_get("tok-share").await?, Some(share));
    let l = s.lineage_get(&sha("tok-share")).await?.expect("lineage");
    assert_eq!((l.user, l.rotated_at, l.expires), (None, None, t0()));

    // A duplicate token is refused and leaves no lineage row behind.
    let dup = s
        .session_insert(
            &session("tok-a", Some(user), t0()),
            &lineage("tok-dup", family, Some(user), t0()),
        )
        .await;
    assert!(dup.is_err(), "token is the primary key");
    assert_eq!(
        s.lineage_get(&sha("tok-dup")).await?,
        None,
        "session and lineage land together"
    );
    Ok(())
}

async fn sessions_delete_user_keeps_one(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "many@example.com", json!({})).await?;
    let other = add_user(&s, "other@example.com", json!({})).await?;
    for t in ["u-1", "u-2", "u-3"] {
        login(&s, t, user, t0()).await?;
    }
    login(&s, "v-1", other, t0()).await?;
    login(&s, "v-2", other, t0()).await?;

    assert_eq!(s.sessions_delete_user(user, Some("u-2")).await?, 2);
    assert_eq!(
        s.session_tokens_of_user(user).await?,
        vec!["u-2".to_string()]
    );
    assert_eq!(
        s.sessions_delete_user(user, Some("v-1")).await?,
        1,
        "keep names another user's session"
    );
    assert!(s.session_tokens_of_user(user).await?.is_empty());
    assert_eq!(
        sorted(s.session_tokens_of_user(other).await?),
        vec!["v-1".to_string(), "v-2".to_string()]
    );

    assert_eq!(s.sessions_delete_user(other, None).await?, 2);
    assert!(s.session_tokens_of_user(other).await?.is_empty());
    assert_eq!(s.sessions_delete_user(other, None).await?, 0);

    login(&s, "w-1", user, t0()).await?;
    login(&s, "w-2", user, t0()).await?;
    let tokens = vec!["w-1".to_string(), "missing".to_string()];
    assert_eq!(s.sessions_delete(&tokens).await?, 1);
    assert_eq!(s.sessions_delete(&[]).await?, 0);
    assert_eq!(
        s.session_tokens_of_user(user).await?,
        vec!["w-2".to_string()]
    );
    Ok(())
}

async fn purge_removes_only_expired(s: Arc<dyn Store>) -> R {
    let now = t0();
    let u = add_user(&s, "pu@example.com", json!({})).await?;
    let v = add_user(&s, "pv@example.com", json!({})).await?;
    let past = now - Duration::milliseconds(1);
    login(&s, "u-old", u, past).await?;
    login(&s, "u-edge", u, now).await?;
    login(&s, "u-new", u, now + Duration::hours(1)).await?;
    login(&s, "v-old", v, past).await?;
    login(&s, "v-new", v, now + Duration::hours(1)).await?;

    s.sessions_purge_expired(Some(u), now).await?;
    assert_eq!(
        sorted(s.session_tokens_of_user(u).await?),
        vec!["u-edge".to_string(), "u-new".to_string()]
    );
    assert_eq!(
        sorted(s.session_tokens_of_user(v).await?),
        vec!["v-new".to_string(), "v-old".to_string()]
    );
    // Lineage rows expire on their own clock, whoever the purge was for.
    assert_eq!(s.lineage_get(&sha("u-old")).await?, None);
    assert_eq!(s.lineage_get(&sha("v-old")).await?, None);
    assert!(s.lineage_get(&sha("u-edge")).await?.is_some());
    assert!(s.lineage_get(&sha("v-new")).await?.is_some());

    s.sessions_purge_expired(None, now).await?;
    assert_eq!(
        s.session_tokens_of_user(v).await?,
        vec!["v-new".to_string()]
    );
    assert_eq!(
        sorted(s.session_tokens_of_user(u).await?),
        vec!["u-edge".to_string(), "u-new".to_string()]
    );

    s.sessions_purge_expired(None, now + Duration::minutes(30))
        .await?;
    assert_eq!(
        s.session_tokens_of_user(u).await?,
        vec!["u-new".to_string()]
    );
    assert_eq!(s.lineage_get(&sha("u-edge")).await?, None);
    Ok(())
}

/// A purge after a busy hour removes more rows than one delete chunk (SQLite: 1000).
async fn purge_removes_more_than_a_chunk(s: Arc<dyn Store>) -> R {
    let now = t0();
    let u = add_user(&s, "busy@example.com", json!({})).await?;
    let expired: Vec<_> = (0..2500)
        .map(|i| {
            let s = s.clone();
            tokio::spawn(async move {
                login(&s, &format!("gone-{i}"), u, now - Duration::seconds(1)).await
            })
        })
        .collect();
    for t in futures::future::join_all(expired).await {
        t.expect("task panicked")?;
    }
    login(&s, "kept", u, now + Duration::hours(1)).await?;
    s.sessions_purge_expired(None, now).await?;
    assert_eq!(s.session_tokens_of_user(u).await?, vec!["kept".to_string()]);
    assert_eq!(s.lineage_get(&sha("gone-2499")).await?, None);
    assert!(s.lineage_get(&sha("kept")).await?.is_some());
    Ok(())
}

async fn login_attempts_count_and_reset(s: Arc<dyn Store>) -> R {
    let (u, v) = (Uuid::new_v4(), Uuid::new_v4());
    assert_eq!(s.login_failure(u).await?, 1);
    assert_eq!(s.login_failure(u).await?, 2);
    assert_eq!(s.login_failure(v).await?, 1, "counted per user");
    assert_eq!(s.login_failure(u).await?, 3);
    assert_eq!(s.login_failures(u).await?, 3, "reading does not count");
    assert_eq!(s.login_failures(u).await?, 3);
    s.login_attempts_reset(u).await?;
    assert_eq!(s.login_failures(u).await?, 0);
    assert_eq!(s.login_failure(u).await?, 1);
    assert_eq!(s.login_failure(v).await?, 2, "a reset touches one user");
    s.login_attempts_reset(Uuid::new_v4()).await?;

    // Concurrent failures are all counted.
    let w = Uuid::new_v4();
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            tokio::spawn({
                let s = s.clone();
                async move { s.login_failure(w).await }
            })
        })
        .collect();
    let mut counts = Vec::new();
    for t in futures::future::join_all(tasks).await {
        counts.push(t.expect("task panicked")?);
    }
    counts.sort();
    assert_eq!(counts, (1..=10).collect::<Vec<i64>>());
    Ok(())
}

async fn meta_keeps_the_first_value(s: Arc<dyn Store>) -> R {
    assert_eq!(s.meta_get_or_insert("secret", "first").await?, "first");
    assert_eq!(s.meta_get_or_insert("secret", "second").await?, "first");
    assert_eq!(s.meta_get_or_insert("other", "x").await?, "x");

    // Nodes starting together agree on one value.
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            tokio::spawn({
                let s = s.clone();
                async move { s.meta_get_or_insert("race", &format!("v{i}")).await }
            })
        })
        .collect();
    let mut seen = Vec::new();
    for t in futures::future::join_all(tasks).await {
        seen.push(t.expect("task panicked")?);
    }
    seen.dedup();
    assert_eq!(seen.len(), 1, "one value for everyone: {seen:?}");
    assert_eq!(s.meta_get_or_insert("race", "late").await?, seen[0]);
    Ok(())
}

async fn activity_rows_are_recorded(s: Arc<dyn Store>) -> R {
    let user = Uuid::new_v4();
    let login = Activity {
        action: "login",
        user: Some(user),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("contract-test/1.0".into()),
        origin: Some("https://app.example".into()),
        collection: "directus_users",
        item: user.to_string(),
    };
    s.activity_insert(&login, t0()).await?;
    let failed = Activity {
        action: "update",
        collection: "directus_users",
        item: "someone".into(),
        ..Activity::default()
    };
    s.activity_insert(&failed, t0() + Duration::seconds(1))
        .await?;

    let rows = s.items_list(&ACTIVITY, &ListQuery::default()).await?;
    assert_eq!(rows.len(), 2);
    assert!(
        rows[0]["id"].as_i64().is_some() && rows[0]["id"] != rows[1]["id"],
        "generated integer keys: {rows:?}"
    );
    let q = ListQuery {
        filters: vec![Filter {
            field: "user",
            value: json!(user.to_string()),
        }],
        ..ListQuery::default()
    };
    let mine = s.items_list(&ACTIVITY, &q).await?;
    assert_eq!(mine.len(), 1);
    let expected = json!({
        "id": mine[0]["id"],
        "action": "login",
        "user": user.to_string(),
        "timestamp": mine[0]["timestamp"],
        "ip": "203.0.113.7",
        "user_agent": "contract-test/1.0",
        "collection": "directus_users",
        "item": user.to_string(),
        "origin": "https://app.example",
    });
    assert_eq!(Value::Object(mine[0].clone()), expected);
    assert_same_instant(&mine[0]["timestamp"], &format_ts(t0()));
    let q = ListQuery {
        filters: vec![Filter {
            field: "user",
            value: Value::Null,
        }],
        ..ListQuery::default()
    };
    let anon = s.items_list(&ACTIVITY, &q).await?;
    assert_eq!(anon.len(), 1);
    assert_eq!(
        (&anon[0]["action"], &anon[0]["item"], &anon[0]["ip"]),
        (&json!("update"), &json!("someone"), &Value::Null)
    );
    assert_same_instant(
        &anon[0]["timestamp"],
        &format_ts(t0() + Duration::seconds(1)),
    );
    Ok(())
}

/// Nodes starting together on one fresh database: every `migrate` succeeds and the seed
/// lands once. Not in `contract!` because it needs several stores on one database.
async fn nodes_migrate_concurrently(db: Database) {
    let mut stores = Vec::new();
    for _ in 0..4 {
        stores.push(db.open().await);
    }
    let runs = stores.iter().map(|s| {
        let s = s.clone();
        tokio::spawn(async move { s.migrate().await })
    });
    for r in futures::future::join_all(runs).await {
        r.expect("task panicked").expect("concurrent migrate");
    }
    assert_eq!(stores[0].items_count(&POLICIES).await.expect("count"), 1);
    assert_eq!(stores[0].items_count(&ACCESS).await.expect("count"), 1);
    drop(stores);
    db.finish().await;
}

// SQLite checks the version before its transaction and takes the write lock only inside it,
// so a second process re-runs the migration and fails on the version record.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_nodes_migrate_concurrently() {
    nodes_migrate_concurrently(Database::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
async fn postgres_nodes_migrate_concurrently() {
    nodes_migrate_concurrently(Database::postgres()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_nodes_bootstrap_concurrently() {
    nodes_bootstrap_concurrently(Database::sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs TEST_DATABASE_URL (PostgreSQL)"]
async fn postgres_nodes_bootstrap_concurrently() {
    nodes_bootstrap_concurrently(Database::postgres()).await;
}
