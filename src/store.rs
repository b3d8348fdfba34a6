//! Persistence: one `Store` trait, one implementation per backend (`sqlite`, `postgres`).
//!
//! Directus's tables are read and written through a small item layer: each collection lists
//! the columns gatehouse knows with their kinds, items travel as JSON maps, and each backend
//! decodes and binds by kind. The SQL is written once (`sql`, over a small dialect seam);
//! each backend binds its values and reads its rows with one driver (rusqlite for SQLite,
//! sqlx for PostgreSQL). Only these modules name a driver; callers never branch on the
//! backend. Columns that a Directus database has beyond these lists are left untouched.

pub mod cached;
pub mod migrations;
pub mod postgres;
pub mod sql;
pub mod sqlite;

use std::sync::Arc;

pub use crate::metrics::PoolStats;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

pub type Item = Map<String, Value>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique column already holds this value.
    #[error("value for {collection}.{field} is not unique")]
    Conflict {
        collection: String,
        field: String,
        value: String,
    },
    /// A foreign key names no row, or a row still referenced was deleted. SQLite's error does
    /// not say which column, so `field` and `value` are then unknown.
    #[error("foreign key violation in {collection:?}.{field:?}")]
    ForeignKey {
        collection: Option<String>,
        field: Option<String>,
        value: Option<String>,
    },
    /// A NOT NULL column written as null (Directus: `NOT_NULL_VIOLATION`).
    #[error("null written to {collection:?}.{field:?}")]
    NotNull {
        collection: Option<String>,
        field: Option<String>,
    },
    #[error("stored value of {0} cannot be read")]
    Decode(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Writer(String),
    /// Every connection of a pool stayed busy for the acquire timeout (SQLite's readers;
    /// PostgreSQL's pool reports `sqlx::Error::PoolTimedOut`).
    #[error("timed out waiting for a database connection")]
    PoolTimedOut,
    #[error("migration failed: {0}")]
    Migration(String),
}

/// How a column is stored and shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    Uuid,
    Json,
    Bool,
    Int,
    /// SQLite: milliseconds since the epoch (as knex writes JS dates); PostgreSQL: timestamptz.
    Timestamp,
}

#[derive(Debug)]
pub struct Collection {
    pub name: &'static str,
    /// Primary key column; always the first of `fields`.
    pub pk: &'static str,
    pub fields: &'static [(&'static str, Kind)],
    /// Columns with a unique constraint (for `RECORD_NOT_UNIQUE`).
    pub unique: &'static [&'static str],
}

impl Collection {
    pub fn kind(&self, field: &str) -> Option<Kind> {
        self.fields
            .iter()
            .find(|(f, _)| *f == field)
            .map(|(_, k)| *k)
    }

    /// The database assigns the key of a row inserted without one: an integer key is
    /// autoincrement in Directus's tables (`directus_permissions`, `directus_settings`).
    pub fn generated_key(&self) -> bool {
        self.kind(self.pk) == Some(Kind::Int)
    }
}

pub static USERS: Collection = Collection {
    name: "directus_users",
    pk: "id",
    fields: &[
        ("id", Kind::Uuid),
        ("first_name", Kind::Text),
        ("last_name", Kind::Text),
        ("email", Kind::Text),
        ("password", Kind::Text),
        ("location", Kind::Text),
        ("title", Kind::Text),
        ("description", Kind::Text),
        ("tags", Kind::Json),
        ("avatar", Kind::Uuid),
        ("language", Kind::Text),
        ("tfa_secret", Kind::Text),
        ("status", Kind::Text),
        ("role", Kind::Uuid),
        ("token", Kind::Text),
        ("last_access", Kind::Timestamp),
        ("last_page", Kind::Text),
        ("provider", Kind::Text),
        ("external_identifier", Kind::Text),
        ("auth_data", Kind::Json),
        ("email_notifications", Kind::Bool),
        ("appearance", Kind::Text),
        ("theme_dark", Kind::Text),
        ("theme_light", Kind::Text),
        ("theme_light_overrides", Kind::Json),
        ("theme_dark_overrides", Kind::Json),
        ("text_direction", Kind::Text),
    ],
    unique: &["email", "token", "external_identifier"],
};

pub static ROLES: Collection = Collection {
    name: "directus_roles",
    pk: "id",
    fields: &[
        ("id", Kind::Uuid),
        ("name", Kind::Text),
        ("icon", Kind::Text),
        ("description", Kind::Text),
        ("parent", Kind::Uuid),
    ],
    unique: &[],
};

pub static POLICIES: Collection = Collection {
    name: "directus_policies",
    pk: "id",
    fields: &[
        ("id", Kind::Uuid),
        ("name", Kind::Text),
        ("icon", Kind::Text),
        ("description", Kind::Text),
        ("ip_access", Kind::Text),
        ("enforce_tfa", Kind::Bool),
        ("admin_access", Kind::Bool),
        ("app_access", Kind::Bool),
    ],
    unique: &[],
};

pub static ACCESS: Collection = Collection {
    name: "directus_access",
    pk: "id",
    fields: &[
        ("id", Kind::Uuid),
        ("role", Kind::Uuid),
        ("user", Kind::Uuid),
        ("policy", Kind::Uuid),
        ("sort", Kind::Int),
    ],
    unique: &[],
};

/// `directus_permissions`: one row per policy, collection and action (Directus:
/// `api/src/services/permissions.ts`). `fields` is a comma-separated list.
pub static PERMISSIONS: Collection = Collection {
    name: "directus_permissions",
    pk: "id",
    fields: &[
        ("id", Kind::Int),
        ("collection", Kind::Text),
        ("action", Kind::Text),
        ("permissions", Kind::Json),
        ("validation", Kind::Json),
        ("presets", Kind::Json),
        ("fields", Kind::Text),
        ("policy", Kind::Uuid),
    ],
    unique: &[],
};

pub static SETTINGS: Collection = Collection {
    name: "directus_settings",
    pk: "id",
    fields: &[
        ("id", Kind::Int),
        ("project_name", Kind::Text),
        ("project_url", Kind::Text),
        ("project_color", Kind::Text),
        ("project_logo", Kind::Uuid),
        ("auth_login_attempts", Kind::Int),
        ("auth_password_policy", Kind::Text),
        ("public_registration", Kind::Bool),
        ("public_registration_verify_email", Kind::Bool),
        ("public_registration_role", Kind::Uuid),
        ("public_registration_email_filter", Kind::Json),
    ],
    unique: &[],
};

/// `directus_activity`, written through `Store::activity_insert`; listed through the item
/// layer only to be read.
pub static ACTIVITY: Collection = Collection {
    name: "directus_activity",
    pk: "id",
    fields: &[
        ("id", Kind::Int),
        ("action", Kind::Text),
        ("user", Kind::Uuid),
        ("timestamp", Kind::Timestamp),
        ("ip", Kind::Text),
        ("user_agent", Kind::Text),
        ("collection", Kind::Text),
        ("item", Kind::Text),
        ("origin", Kind::Text),
    ],
    unique: &[],
};

/// A filter on one column: equality, `IS NULL` when the value is JSON null, or `IN` when it
/// is an array (of a column that is not JSON; an empty array matches no row).
#[derive(Debug, Clone)]
pub struct Filter {
    pub field: &'static str,
    pub value: Value,
}

#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub filters: Vec<Filter>,
    /// Case-insensitive equality on one text column (`LOWER(col) = LOWER(?)`).
    pub ci_filter: Option<(&'static str, String)>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    /// Rows in this column's order first (ascending, nulls where the database puts them:
    /// first on SQLite, last on PostgreSQL), then by key; None: by key.
    pub sort: Option<&'static str>,
}

/// A `directus_sessions` row.
#[derive(Debug, Clone, PartialEq)]
pub struct Session {
    pub token: String,
    pub user: Option<Uuid>,
    pub expires: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
    pub share: Option<Uuid>,
    pub next_token: Option<String>,
}

/// A `gatehouse_session_lineage` row: which login a refresh token descends from.
/// Tokens are kept only as SHA-256 hashes, so rotated tokens are never stored in clear.
#[derive(Debug, Clone, PartialEq)]
pub struct Lineage {
    pub token_hash: String,
    pub family: Uuid,
    pub user: Option<Uuid>,
    pub rotated_at: Option<DateTime<Utc>>,
    pub expires: DateTime<Utc>,
}

/// One refresh, decided and applied in one transaction by `Store::refresh_session`.
///
/// The presented token is rotated only if its session exists, has not expired, belongs to a
/// user (not a share), has no successor yet, and its user is `active`. Rotating sets the old
/// row's `next_token` to `successor.token` and its expiry to `grace_expires` (never past its
/// own), inserts the successor row for the session's user, records both tokens' lineage and
/// touches `last_access` (at most once a second).
#[derive(Debug, Clone)]
pub struct Rotation {
    pub old_token: String,
    pub old_hash: String,
    /// The old row stays valid until then, pointing at its successor.
    pub grace_expires: DateTime<Utc>,
    /// The successor row; its `user` is taken from the old row.
    pub successor: Session,
    pub successor_hash: String,
    /// The family for a token that has no lineage row (a session Directus created).
    pub new_family: Uuid,
    pub lineage_expires: DateTime<Utc>,
    pub now: DateTime<Utc>,
}

/// The parts of a session's user that a refresh checks.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionUser {
    pub id: Uuid,
    pub status: String,
    pub role: Option<Uuid>,
    pub has_tfa_secret: bool,
}

/// What `Store::refresh_session` saw and did, read in the transaction that decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Refreshed {
    /// This call rotated the token: `session.next_token` is `Rotation::successor`.
    pub won: bool,
    /// The presented token's session row, after the call.
    pub session: Option<Session>,
    /// That session's user.
    pub user: Option<SessionUser>,
    /// Whether the row `session.next_token` names exists and has not expired.
    pub successor_alive: bool,
    /// The presented token's lineage row, after the call.
    pub lineage: Option<Lineage>,
}

/// One row written by `Store::items_write`.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// The item must hold the primary key, unless the database assigns it
    /// (`Collection::generated_key`; `ItemStore::items_write_keys` returns it).
    Insert {
        c: &'static Collection,
        item: Item,
    },
    /// Sets the given columns (never the key) of the row with this key.
    Update {
        c: &'static Collection,
        id: Value,
        patch: Item,
    },
    Delete {
        c: &'static Collection,
        id: Value,
    },
}

impl WriteOp {
    pub fn collection(&self) -> &'static Collection {
        match self {
            WriteOp::Insert { c, .. } | WriteOp::Update { c, .. } | WriteOp::Delete { c, .. } => c,
        }
    }

    /// An insert whose key the database assigns: the collection's key is generated and the
    /// item holds none (or null).
    pub fn generates_key(&self) -> bool {
        match self {
            WriteOp::Insert { c, item } => {
                c.generated_key() && item.get(c.pk).is_none_or(Value::is_null)
            }
            _ => false,
        }
    }

    /// The key of the row written (None for an insert whose key the database assigns).
    pub fn key(&self) -> Option<&Value> {
        match self {
            WriteOp::Insert { c, item } => item.get(c.pk),
            WriteOp::Update { id, .. } | WriteOp::Delete { id, .. } => Some(id),
        }
    }

    /// The columns written (empty for a delete).
    pub fn columns(&self) -> Option<&Item> {
        match self {
            WriteOp::Insert { item, .. } => Some(item),
            WriteOp::Update { patch, .. } => Some(patch),
            WriteOp::Delete { .. } => None,
        }
    }

    /// The email a `directus_users` write sets, which must be unique case-insensitively:
    /// Directus's API checks `email` that way (`api/src/services/users.ts`,
    /// `checkUniqueEmails`), while the column's own constraint is case-sensitive.
    pub fn user_email(&self) -> Option<&str> {
        if self.collection().name != USERS.name {
            return None;
        }
        self.columns()?.get("email")?.as_str()
    }
}

/// The conflict `Store::items_write` reports for an email another user holds.
impl StoreError {
    /// The database cannot be reached or is overloaded for now (not a wrong query or data).
    pub fn is_unreachable(&self) -> bool {
        crate::error::store_unavailable(self)
    }
}

pub(crate) fn email_conflict(email: &str) -> StoreError {
    StoreError::Conflict {
        collection: USERS.name.to_string(),
        field: "email".to_string(),
        value: email.to_string(),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Activity {
    pub action: &'static str,
    pub user: Option<Uuid>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
    pub collection: &'static str,
    pub item: String,
}

/// Migrations, health, shared facts and the activity log.
#[async_trait]
pub trait MetaStore: Send + Sync {
    /// Creates what is missing (never alters Directus's columns).
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn ping(&self) -> Result<(), StoreError>;
    /// The connection pool now (`/metrics`); none for a store without one.
    fn pool_stats(&self) -> PoolStats {
        PoolStats::default()
    }
    /// Returns the stored value for `key`, inserting `value` first if none exists (race-safe).
    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError>;
    async fn activity_insert(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Directus's tables as items (`Collection`s): reads and all-or-nothing writes.
#[async_trait]
pub trait ItemStore: Send + Sync {
    async fn items_list(
        &self,
        c: &'static Collection,
        q: &ListQuery,
    ) -> Result<Vec<Item>, StoreError>;
    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError>;
    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError>;
    /// Inserts an item; the map must hold the primary key.
    async fn item_insert(&self, c: &'static Collection, item: &Item) -> Result<(), StoreError> {
        let item = item.clone();
        self.items_write(&[WriteOp::Insert { c, item }])
            .await
            .map(|_| ())
    }
    /// Updates the given columns; false when no row has this key.
    async fn item_update(
        &self,
        c: &'static Collection,
        id: &Value,
        patch: &Item,
    ) -> Result<bool, StoreError> {
        let (id, patch) = (id.clone(), patch.clone());
        let written = self
            .items_write(&[WriteOp::Update { c, id, patch }])
            .await?;
        Ok(written.first() == Some(&true))
    }
    async fn item_delete(&self, c: &'static Collection, id: &Value) -> Result<bool, StoreError> {
        let id = id.clone();
        let written = self.items_write(&[WriteOp::Delete { c, id }]).await?;
        Ok(written.first() == Some(&true))
    }
    /// Applies every op in one transaction, all or nothing; for each op, whether a row was
    /// written (Insert: true; Update/Delete: whether a row had that key). User rows carrying
    /// an email are checked for case-insensitive uniqueness inside the transaction
    /// (`StoreError::Conflict` on `directus_users.email`). `item_insert`, `item_update` and
    /// `item_delete` are this with one op.
    async fn items_write(&self, ops: &[WriteOp]) -> Result<Vec<bool>, StoreError>;
    /// `items_write`, answering each op's key instead: the key the database assigned to an
    /// insert that left it out (`WriteOp::generates_key`), else the op's own key; None for an
    /// update or delete that found no row. Several such inserts (`POST /permissions` with
    /// an array) are all or nothing like any other ops.
    async fn items_write_keys(&self, ops: &[WriteOp]) -> Result<Vec<Option<Value>>, StoreError>;
    /// Bootstrap: under the migration lock, applies `ops` (as `items_write`) only if
    /// `directus_users` is empty; true if applied. Nodes starting together on an empty
    /// database apply exactly one bootstrap.
    async fn items_write_if_no_users(&self, ops: &[WriteOp]) -> Result<bool, StoreError>;
}

/// The reads that decide who a caller is and what it may do.
#[async_trait]
pub trait AccessStore: Send + Sync {
    /// The user whose email has this comparison key (`crate::email::key`): Unicode lower case
    /// of the NFC form, whatever form and case the row holds. The lowest id wins if several do.
    async fn user_by_email(&self, key: &str) -> Result<Option<Item>, StoreError>;
    /// The active user holding this static token.
    async fn user_by_static_token(&self, token: &str) -> Result<Option<Item>, StoreError>;
    /// The user for `/users/me` plus the ids of the `directus_access` rows attached to the
    /// user directly (Directus's `policies` alias), in `sort` order.
    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError>;
    /// What every authenticated request checks of its user: status and role (a small value,
    /// so the cache can answer it without copying the whole row).
    async fn principal(&self, id: Uuid) -> Result<Option<Principal>, StoreError> {
        Ok(self
            .user_with_access(id)
            .await?
            .map(|(user, _)| Principal::of(&user)))
    }
    /// Policies reaching a user through these roles or directly, with the role they came through.
    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<Arc<Vec<(Item, Option<Uuid>)>>, StoreError>;
    /// The public policies: attached by `directus_access` rows with neither role nor user
    /// (the permissions of anonymous callers and of users without a role), in `sort` order.
    async fn public_policies(&self) -> Result<Vec<Item>, StoreError>;
    /// Every `directus_permissions` row of one collection, by id.
    async fn collection_permissions(&self, collection: &str) -> Result<Vec<Item>, StoreError>;
}

/// A user's status, role and email, as `AccessStore::principal` reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub status: String,
    pub role: Option<Uuid>,
    /// For forward-auth's identity headers (src/http/forward_auth.rs).
    pub email: Option<String>,
}

impl Principal {
    /// The status, role and email columns of a `directus_users` row.
    pub fn of(user: &Item) -> Principal {
        Principal {
            email: user
                .get("email")
                .and_then(Value::as_str)
                .map(str::to_string),
            status: user
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            role: user
                .get("role")
                .and_then(Value::as_str)
                .and_then(|s| Uuid::parse_str(s).ok()),
        }
    }
}

/// Sessions, refresh rotation and session lineage.
#[async_trait]
pub trait SessionStore: Send + Sync {
    async fn session_insert(&self, s: &Session, lineage: &Lineage) -> Result<(), StoreError>;
    async fn session_get(&self, token: &str) -> Result<Option<Session>, StoreError>;
    /// Checks and rotates a refresh token atomically (see `Rotation`).
    async fn refresh_session(&self, r: &Rotation) -> Result<Refreshed, StoreError>;
    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError>;
    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError>;
    /// Deletes every session of a user except `keep`.
    async fn sessions_delete_user(&self, user: Uuid, keep: Option<&str>)
        -> Result<u64, StoreError>;
    /// Deletes expired sessions (of one user, or all) and expired lineage rows.
    async fn sessions_purge_expired(
        &self,
        user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    async fn lineage_get(&self, token_hash: &str) -> Result<Option<Lineage>, StoreError>;
    async fn lineage_hashes(&self, family: Uuid) -> Result<Vec<String>, StoreError>;
    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError>;
}

/// Per-user counters kept in the database, so every node counts the same.
#[async_trait]
pub trait CounterStore: Send + Sync {
    /// Records one failed login (one atomic increment) and returns the count since the last reset.
    async fn login_failure(&self, user: Uuid) -> Result<i64, StoreError>;
    /// Failed logins since the last reset.
    async fn login_failures(&self, user: Uuid) -> Result<i64, StoreError>;
    async fn login_attempts_reset(&self, user: Uuid) -> Result<(), StoreError>;
}

/// Two-factor state of gatehouse's own (`gatehouse_tfa_state`, `gatehouse_recovery_codes`):
/// which TOTP step was used last, the run of wrong codes, and the recovery codes by hash.
/// Every decision is one conditional statement, so concurrent requests on any node agree.
#[async_trait]
pub trait TfaStore: Send + Sync {
    /// Records `step` as the user's last used TOTP step if it is newer than the one recorded;
    /// false when it is not (the code, or a newer one, was already used).
    async fn tfa_use_step(&self, user: Uuid, step: i64) -> Result<bool, StoreError>;
    /// Until when the user's codes are refused, if a lock was ever set.
    async fn tfa_locked_until(&self, user: Uuid) -> Result<Option<DateTime<Utc>>, StoreError>;
    /// Records one wrong code (one atomic increment); returns the run of wrong codes.
    async fn tfa_failure(&self, user: Uuid) -> Result<i64, StoreError>;
    /// Refuses the user's codes until `until` (never shortens a later lock).
    async fn tfa_lock(&self, user: Uuid, until: DateTime<Utc>) -> Result<(), StoreError>;
    /// A right code: the run of wrong codes and the lock end.
    async fn tfa_failures_reset(&self, user: Uuid) -> Result<(), StoreError>;
    /// Replaces the user's recovery codes with these hashes, in one transaction.
    async fn recovery_codes_replace(
        &self,
        user: Uuid,
        hashes: &[String],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Uses up a recovery code: true when it existed (and is now gone), once however many
    /// requests race for it.
    async fn recovery_code_use(&self, user: Uuid, hash: &str) -> Result<bool, StoreError>;
    /// The hashes of the user's unused recovery codes.
    async fn recovery_code_hashes(&self, user: Uuid) -> Result<Vec<String>, StoreError>;
    /// TFA was turned off: the recovery codes and the failure state go.
    async fn tfa_forget(&self, user: Uuid) -> Result<(), StoreError>;
}

/// Every capability of one backend. The server holds them as `Stores`, one handle per
/// capability, so the cache wraps only the ones it caches.
pub trait Store:
    MetaStore + ItemStore + AccessStore + SessionStore + CounterStore + TfaStore + 'static
{
}

impl<T: MetaStore + ItemStore + AccessStore + SessionStore + CounterStore + TfaStore + 'static>
    Store for T
{
}

/// The store as the use cases see it: one handle per capability. `items`, `access` and
/// `sessions` may go through the per-node cache (`cached`); the others always reach the
/// database.
#[derive(Clone)]
pub struct Stores {
    pub meta: Arc<dyn MetaStore>,
    pub items: Arc<dyn ItemStore>,
    pub access: Arc<dyn AccessStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub counters: Arc<dyn CounterStore>,
    pub tfa: Arc<dyn TfaStore>,
}

impl Stores {
    /// Every capability straight from the backend.
    pub fn direct(base: Arc<dyn Store>) -> Stores {
        Stores {
            meta: base.clone(),
            items: base.clone(),
            access: base.clone(),
            sessions: base.clone(),
            counters: base.clone(),
            tfa: base,
        }
    }

    /// Items and access through a cache of `ttl`; the rest straight from the backend.
    pub fn cached(base: Arc<dyn Store>, ttl: std::time::Duration) -> Stores {
        let cache = Arc::new(cached::CachedStore::new(base.clone(), base.clone(), ttl));
        Stores {
            items: cache.clone(),
            access: cache,
            sessions: Arc::new(cached::CachedSessions::new(base.clone(), ttl)),
            ..Stores::direct(base)
        }
    }
}

/// Formats a timestamp the way Directus's API shows one.
pub fn format_ts(t: DateTime<Utc>) -> Value {
    Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// Reads a timestamp written by gatehouse or Directus (ISO string or epoch milliseconds).
pub fn parse_ts(v: &Value) -> Option<DateTime<Utc>> {
    match v {
        Value::String(s) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .ok()
            .or_else(|| {
                ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
                    .iter()
                    .find_map(|f| chrono::NaiveDateTime::parse_from_str(s, f).ok())
                    .map(|n| n.and_utc())
            }),
        Value::Number(n) => n.as_i64().and_then(DateTime::from_timestamp_millis),
        _ => None,
    }
}

/// The column a unique-violation message names, with the item's value for it.
pub(crate) fn conflict_in(c: &Collection, msg: &str, item: &Item) -> StoreError {
    let field = c
        .unique
        .iter()
        .find(|f| {
            msg.contains(&format!(".{f}"))
                || msg.contains(&format!("_{f}_"))
                || msg.contains(&format!("({f})"))
        })
        .or_else(|| {
            // The primary key (SQLite: "directus_users.id", PostgreSQL: "directus_users_pkey")
            // before guessing from the item, which would blame a unique column it also holds.
            let pk = msg.contains(&format!("{}.{}", c.name, c.pk))
                || msg.contains(&format!("{}_pkey", c.name));
            pk.then_some(&c.pk)
        })
        .or_else(|| c.unique.iter().find(|f| item.contains_key(**f)))
        .copied()
        .unwrap_or(c.pk);
    let value = item
        .get(field)
        .map(|v| {
            v.as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string())
        })
        .unwrap_or_default();
    StoreError::Conflict {
        collection: c.name.to_string(),
        field: field.to_string(),
        value,
    }
}
