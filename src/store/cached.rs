//! A read-through cache for the hot reads, in front of any backend's `ItemStore`,
//! `AccessStore` and `SessionStore` (the other capabilities never go through it, see
//! `Stores`): session rows and static tokens as every request checks them, a user's row
//! with its access ids (every authenticated request, `GET /users/me`), and the roles,
//! policies and permission rows that decide a user's access. Entries live
//! `GATEHOUSE_USER_CACHE_TTL` (1 s by default) and every item write through this node that
//! touches users, roles, policies, access or permissions drops them at once, so a node reads
//! its own writes; other nodes' writes show within the TTL. `last_access`, which logins and
//! refreshes touch outside the item layer, may show up to the TTL late.

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use serde_json::Value;
use uuid::Uuid;

use super::*;

/// SECURITY: bounded; past this, the least useful entries are evicted one by one (moka's
/// TinyLFU), so a large installation keeps its hot users cached instead of thrashing.
const MAX_ENTRIES: u64 = 10_000;

/// One bounded cache of entries that expire `ttl` after they were read from the database.
struct TtlMap<K, V> {
    map: moka::sync::Cache<K, V>,
    /// Bumped by every removal, so a read that overlapped a write is not kept.
    generation: AtomicU64,
    /// Held while a removal bumps the generation and drops entries, and while `put` checks
    /// the generation and inserts, so no insert slips in between a removal's two steps.
    writes: Mutex<()>,
}

impl<K, V> TtlMap<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn new(ttl: Duration) -> Self {
        Self::bounded(ttl, MAX_ENTRIES)
    }

    fn bounded(ttl: Duration, capacity: u64) -> Self {
        Self {
            map: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            generation: AtomicU64::new(0),
            writes: Mutex::new(()),
        }
    }

    fn write<T>(&self, f: impl FnOnce() -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update: the cache is still a cache.
        let _guard = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        f()
    }

    /// A fresh entry, or the generation to pass to `put` with the value read instead.
    fn get(&self, k: &K) -> Result<V, u64> {
        let generation = self.generation.load(Ordering::SeqCst);
        self.map.get(k).ok_or(generation)
    }

    /// Keeps a value read from the database, unless something was removed since `get`.
    fn put(&self, k: K, v: V, generation: u64) {
        self.write(|| {
            if self.generation.load(Ordering::SeqCst) == generation {
                self.map.insert(k, v);
            }
        });
    }

    /// The cached value, or `fetch`'s (kept when `keep` says so). `fetch` is only called on a
    /// miss: the backend's (boxed) future is not even built for a hit.
    async fn through<F>(
        &self,
        k: K,
        fetch: impl FnOnce() -> F,
        keep: impl FnOnce(&V) -> bool,
    ) -> Result<V, StoreError>
    where
        F: std::future::Future<Output = Result<V, StoreError>>,
    {
        let generation = match self.get(&k) {
            Ok(hit) => return Ok(hit),
            Err(generation) => generation,
        };
        let fresh = fetch().await?;
        if keep(&fresh) {
            self.put(k, fresh.clone(), generation);
        }
        Ok(fresh)
    }

    fn remove(&self, k: &K) {
        self.write(|| {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.map.invalidate(k);
        });
    }

    fn clear(&self) {
        self.write(|| {
            self.generation.fetch_add(1, Ordering::SeqCst);
            self.map.invalidate_all();
        });
    }
}

type PolicyKey = (Vec<Uuid>, Option<Uuid>);
type Policies = Vec<(Item, Option<Uuid>)>;

pub struct CachedStore {
    items: Arc<dyn ItemStore>,
    access: Arc<dyn AccessStore>,
    users: TtlMap<Uuid, Option<(Item, Vec<Uuid>)>>,
    principals: TtlMap<Uuid, Option<Principal>>,
    roles: TtlMap<String, Option<Item>>,
    /// Shared, not copied, on a hit: every authenticated request reads them.
    policies: TtlMap<PolicyKey, Arc<Policies>>,
    /// The public policies (key `()`) and each collection's permission rows.
    public: TtlMap<(), Vec<Item>>,
    permissions: TtlMap<String, Vec<Item>>,
    /// Users by static token (found ones only); any write to users drops them all.
    static_tokens: TtlMap<String, Option<Item>>,
}

impl CachedStore {
    pub fn new(items: Arc<dyn ItemStore>, access: Arc<dyn AccessStore>, ttl: Duration) -> Self {
        Self {
            items,
            access,
            users: TtlMap::new(ttl),
            principals: TtlMap::new(ttl),
            roles: TtlMap::new(ttl),
            policies: TtlMap::new(ttl),
            public: TtlMap::new(ttl),
            permissions: TtlMap::new(ttl),
            static_tokens: TtlMap::new(ttl),
        }
    }

    fn forget_user(&self, user: Option<Uuid>) {
        match user {
            Some(u) => {
                self.users.remove(&u);
                self.principals.remove(&u);
            }
            None => {
                self.users.clear();
                self.principals.clear();
            }
        }
    }

    /// Drops what a write to `c` may have changed.
    fn written(&self, c: &Collection, id: Option<&Value>) {
        if c.name == USERS.name {
            // An id that is not a uuid cannot be cached either; forgetting all is the safe answer.
            self.forget_user(
                id.and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok()),
            );
            // A user's direct policies go with it when it is deleted.
            self.policies.clear();
            // Which user holds which token is not known from the key: drop them all.
            self.static_tokens.clear();
        } else if [ROLES.name, POLICIES.name, ACCESS.name, PERMISSIONS.name].contains(&c.name) {
            // A permission write drops what a policy write drops: what a caller may do is
            // read from its policies and their permissions together.
            self.forget_user(None);
            self.roles.clear();
            self.policies.clear();
            self.public.clear();
            // Deleting a policy deletes its permissions (`ON DELETE CASCADE`).
            if [POLICIES.name, PERMISSIONS.name].contains(&c.name) {
                self.permissions.clear();
            }
        }
    }
}

#[async_trait]
impl AccessStore for CachedStore {
    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError> {
        self.users
            .through(id, || self.access.user_with_access(id), Option::is_some)
            .await
    }

    async fn principal(&self, id: Uuid) -> Result<Option<Principal>, StoreError> {
        self.principals
            .through(id, || self.access.principal(id), Option::is_some)
            .await
    }

    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<Arc<Policies>, StoreError> {
        self.policies
            .through(
                (roles.to_vec(), user),
                || self.access.policies_for(roles, user),
                |_| true,
            )
            .await
    }

    async fn public_policies(&self) -> Result<Vec<Item>, StoreError> {
        self.public
            .through((), || self.access.public_policies(), |_| true)
            .await
    }

    async fn collection_permissions(&self, collection: &str) -> Result<Vec<Item>, StoreError> {
        self.permissions
            .through(
                collection.to_string(),
                || self.access.collection_permissions(collection),
                |_| true,
            )
            .await
    }

    // Not cached: a login must see the row as it is.
    async fn user_by_email(&self, key: &str) -> Result<Option<Item>, StoreError> {
        self.access.user_by_email(key).await
    }

    /// A token that found no user is not kept: a changed token shows at once, and junk
    /// tokens cannot fill the cache.
    async fn user_by_static_token(&self, token: &str) -> Result<Option<Item>, StoreError> {
        self.static_tokens
            .through(
                token.to_string(),
                || self.access.user_by_static_token(token),
                Option::is_some,
            )
            .await
    }
}

#[async_trait]
impl ItemStore for CachedStore {
    /// Roles are cached (every request walks its caller's role tree); other items are not.
    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError> {
        match (c.name == ROLES.name, id.as_str()) {
            (true, Some(key)) => {
                self.roles
                    .through(key.to_string(), || self.items.item_get(c, id), |_| true)
                    .await
            }
            _ => self.items.item_get(c, id).await,
        }
    }

    /// Every write (`item_insert`, `item_update` and `item_delete` come here too) drops what
    /// it may have changed.
    async fn items_write(&self, ops: &[WriteOp]) -> Result<Vec<bool>, StoreError> {
        let r = self.items.items_write(ops).await;
        for op in ops {
            self.written(op.collection(), op.key());
        }
        r
    }

    async fn items_write_keys(&self, ops: &[WriteOp]) -> Result<Vec<Option<Value>>, StoreError> {
        let r = self.items.items_write_keys(ops).await;
        for op in ops {
            self.written(op.collection(), op.key());
        }
        r
    }

    async fn items_write_if_no_users(&self, ops: &[WriteOp]) -> Result<bool, StoreError> {
        let r = self.items.items_write_if_no_users(ops).await;
        for op in ops {
            self.written(op.collection(), op.key());
        }
        r
    }

    async fn items_list(
        &self,
        c: &'static Collection,
        q: &ListQuery,
    ) -> Result<Vec<Item>, StoreError> {
        self.items.items_list(c, q).await
    }

    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError> {
        self.items.items_count(c).await
    }
}

/// The session rows that every request with a session JWT checks (`session_get`), in front
/// of the backend's `SessionStore`. Every change through this node drops what it touched
/// (a logout, a rotation, the end of a user's sessions), so this node sees its own writes at
/// once; another node's logout shows within the TTL. Rows not found are not kept.
pub struct CachedSessions {
    inner: Arc<dyn SessionStore>,
    rows: TtlMap<String, Option<Session>>,
}

impl CachedSessions {
    pub fn new(inner: Arc<dyn SessionStore>, ttl: Duration) -> Self {
        Self {
            inner,
            rows: TtlMap::new(ttl),
        }
    }
}

#[async_trait]
impl SessionStore for CachedSessions {
    async fn session_insert(&self, s: &Session, lineage: &Lineage) -> Result<(), StoreError> {
        let r = self.inner.session_insert(s, lineage).await;
        self.rows.remove(&s.token);
        r
    }

    async fn session_get(&self, token: &str) -> Result<Option<Session>, StoreError> {
        self.rows
            .through(
                token.to_string(),
                || self.inner.session_get(token),
                Option::is_some,
            )
            .await
    }

    async fn refresh_session(&self, r: &Rotation) -> Result<Refreshed, StoreError> {
        let out = self.inner.refresh_session(r).await;
        self.rows.remove(&r.old_token);
        self.rows.remove(&r.successor.token);
        out
    }

    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        self.inner.session_tokens_of_user(user).await
    }

    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError> {
        let r = self.inner.sessions_delete(tokens).await;
        for t in tokens {
            self.rows.remove(t);
        }
        r
    }

    async fn sessions_delete_user(
        &self,
        user: Uuid,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        let r = self.inner.sessions_delete_user(user, keep).await;
        // Which tokens were the user's is not known here: drop them all.
        self.rows.clear();
        r
    }

    /// Expired rows are refused by their `expires` anyway.
    async fn sessions_purge_expired(
        &self,
        user: Option<Uuid>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.inner.sessions_purge_expired(user, now).await
    }

    async fn lineage_get(&self, token_hash: &str) -> Result<Option<Lineage>, StoreError> {
        self.inner.lineage_get(token_hash).await
    }

    async fn lineage_hashes(&self, family: Uuid) -> Result<Vec<String>, StoreError> {
        self.inner.lineage_hashes(family).await
    }

    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.touch_last_access(user, now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_overlapped_a_removal_is_not_kept() {
        let map: TtlMap<u32, &str> = TtlMap::new(Duration::from_secs(60));
        let generation = map.get(&1).expect_err("empty");
        map.remove(&1); // a write lands while the read is in flight
        map.put(1, "stale", generation);
        assert!(map.get(&1).is_err(), "the stale read was kept");

        let generation = map.get(&1).expect_err("still empty");
        map.put(1, "fresh", generation);
        assert_eq!(map.get(&1), Ok("fresh"));
        map.clear();
        assert!(map.get(&1).is_err());
    }

    #[test]
    fn entries_expire() {
        let map: TtlMap<u32, u32> = TtlMap::new(Duration::ZERO);
        let generation = map.get(&1).expect_err("empty");
        map.put(1, 7, generation);
        assert!(map.get(&1).is_err(), "a zero TTL keeps nothing usable");
    }

    #[test]
    fn a_full_cache_evicts_entries_not_everything() {
        let map: TtlMap<u32, u32> = TtlMap::bounded(Duration::from_secs(60), 100);
        for k in 0..250 {
            let generation = map.get(&k).expect_err("new key");
            map.put(k, k, generation);
            map.map.run_pending_tasks();
        }
        let kept = (0..250).filter(|k| map.get(k).is_ok()).count();
        assert!(kept <= 100, "bounded: {kept} kept");
        assert!(kept >= 90, "a full map was emptied: {kept} kept");
    }
}
