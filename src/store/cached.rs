//! A read-through cache for the one hot read, `user_with_access` (`GET /users/me`), in front
//! of any backend. Entries live `GATEHOUSE_USER_CACHE_TTL` (1 s by default) and every write
//! through this node that touches users, roles, policies or access drops them at once, so a
//! node always reads its own writes; other nodes' writes show within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::*;

/// SECURITY: bounded; a full cache is emptied rather than grown.
const MAX_ENTRIES: usize = 10_000;

type Entry = (Instant, (Item, Vec<Uuid>));

pub struct CachedStore {
    inner: Arc<dyn Store>,
    ttl: Duration,
    users: Mutex<HashMap<Uuid, Entry>>,
}

impl CachedStore {
    pub fn new(inner: Arc<dyn Store>, ttl: Duration) -> Self {
        Self {
            inner,
            ttl,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<Uuid, Entry>) -> T) -> T {
        // A poisoned lock only means a panic elsewhere mid-update: the map is still a cache.
        let mut map = self.users.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    fn forget(&self, user: Option<Uuid>) {
        self.with(|m| match user {
            Some(u) => {
                m.remove(&u);
            }
            None => m.clear(),
        });
    }

    /// Drops what a write to `c` may have changed.
    fn written(&self, c: &Collection, id: Option<&Value>) {
        if c.name == USERS.name {
            // An id that is not a uuid cannot be cached either; forgetting all is the safe answer.
            self.forget(
                id.and_then(Value::as_str)
                    .and_then(|s| Uuid::parse_str(s).ok()),
            );
        } else if [ROLES.name, POLICIES.name, ACCESS.name].contains(&c.name) {
            self.forget(None);
        }
    }
}

#[async_trait]
impl Store for CachedStore {
    async fn user_with_access(&self, id: Uuid) -> Result<Option<(Item, Vec<Uuid>)>, StoreError> {
        let hit = self.with(|m| {
            m.get(&id)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, v)| v.clone())
        });
        if let Some(v) = hit {
            return Ok(Some(v));
        }
        let fresh = self.inner.user_with_access(id).await?;
        if let Some(v) = &fresh {
            self.with(|m| {
                if m.len() >= MAX_ENTRIES {
                    m.clear();
                }
                m.insert(id, (Instant::now(), v.clone()));
            });
        }
        Ok(fresh)
    }

    async fn item_insert(&self, c: &'static Collection, item: &Item) -> Result<(), StoreError> {
        let r = self.inner.item_insert(c, item).await;
        self.written(c, item.get(c.pk));
        r
    }

    async fn item_update(
        &self,
        c: &'static Collection,
        id: &Value,
        patch: &Item,
    ) -> Result<bool, StoreError> {
        let r = self.inner.item_update(c, id, patch).await;
        self.written(c, Some(id));
        r
    }

    async fn item_delete(&self, c: &'static Collection, id: &Value) -> Result<bool, StoreError> {
        let r = self.inner.item_delete(c, id).await;
        self.written(c, Some(id));
        r
    }

    async fn rotate_session(&self, r: &Rotation) -> Result<RotationOutcome, StoreError> {
        let out = self.inner.rotate_session(r).await;
        if let Some(user) = r.successor.user {
            self.forget(Some(user));
        }
        out
    }

    async fn touch_last_access(&self, user: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let r = self.inner.touch_last_access(user, now).await;
        self.forget(Some(user));
        r
    }

    // Everything else passes straight through.

    async fn migrate(&self) -> Result<(), StoreError> {
        self.inner.migrate().await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    async fn meta_get_or_insert(&self, key: &str, value: &str) -> Result<String, StoreError> {
        self.inner.meta_get_or_insert(key, value).await
    }
    async fn items_list(
        &self,
        c: &'static Collection,
        q: &ListQuery,
    ) -> Result<Vec<Item>, StoreError> {
        self.inner.items_list(c, q).await
    }
    async fn items_count(&self, c: &'static Collection) -> Result<i64, StoreError> {
        self.inner.items_count(c).await
    }
    async fn item_get(
        &self,
        c: &'static Collection,
        id: &Value,
    ) -> Result<Option<Item>, StoreError> {
        self.inner.item_get(c, id).await
    }
    async fn user_by_static_token(&self, token: &str) -> Result<Option<Item>, StoreError> {
        self.inner.user_by_static_token(token).await
    }
    async fn policies_for(
        &self,
        roles: &[Uuid],
        user: Option<Uuid>,
    ) -> Result<Vec<(Item, Option<Uuid>)>, StoreError> {
        self.inner.policies_for(roles, user).await
    }
    async fn session_insert(&self, s: &Session, lineage: &Lineage) -> Result<(), StoreError> {
        self.inner.session_insert(s, lineage).await
    }
    async fn session_get(&self, token: &str) -> Result<Option<Session>, StoreError> {
        self.inner.session_get(token).await
    }
    async fn session_tokens_of_user(&self, user: Uuid) -> Result<Vec<String>, StoreError> {
        self.inner.session_tokens_of_user(user).await
    }
    async fn sessions_delete(&self, tokens: &[String]) -> Result<u64, StoreError> {
        self.inner.sessions_delete(tokens).await
    }
    async fn sessions_delete_user(
        &self,
        user: Uuid,
        keep: Option<&str>,
    ) -> Result<u64, StoreError> {
        self.inner.sessions_delete_user(user, keep).await
    }
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
    async fn login_attempt(&self, user: Uuid) -> Result<i64, StoreError> {
        self.inner.login_attempt(user).await
    }
    async fn login_attempts_reset(&self, user: Uuid) -> Result<(), StoreError> {
        self.inner.login_attempts_reset(user).await
    }
    async fn activity_insert(&self, a: &Activity, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.inner.activity_insert(a, now).await
    }
}
