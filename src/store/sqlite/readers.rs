//! The reading connections of the SQLite backend: a small pool of read-only rusqlite
//! connections (WAL lets them read while the writer writes), each with gatehouse's SQL
//! functions and its own cache of prepared statements.
//!
//! A read runs on the calling task's thread: gatehouse's reads are single-row or short
//! lookups on indexed columns that SQLite answers from its page cache in microseconds, less
//! than a hand-over to another thread and back would cost (sqlx ran each on a worker thread
//! of its own). In WAL mode a reader never waits for the writer.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::Semaphore;

use crate::store::StoreError;

#[derive(Clone)]
pub(super) struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    max: usize,
    /// One permit per connection that may be open at once.
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
    acquire_timeout: Duration,
}

impl Readers {
    /// Opens one connection now (so a missing or unreadable file fails the start); the
    /// others open when first needed, up to `max`.
    pub fn open(path: &Path, max: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let first = open(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                max: max.max(1) as usize,
                permits: Semaphore::new(max.max(1) as usize),
                idle: Mutex::new(vec![first]),
                acquire_timeout,
            }),
        })
    }

    /// (in use, idle, most that may be open) reading connections, for `/metrics`.
    pub fn stats(&self) -> (usize, usize, usize) {
        let inner = &self.inner;
        let in_use = inner.max.saturating_sub(inner.permits.available_permits());
        let idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).len();
        (in_use, idle, inner.max)
    }

    /// Runs `f` on a reading connection.
    pub async fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        let _permit = tokio::time::timeout(inner.acquire_timeout, inner.permits.acquire())
            .await
            .map_err(|_| StoreError::PoolTimedOut)?
            .map_err(|_| StoreError::PoolTimedOut)?;
        // A poisoned lock only means a panic elsewhere while pushing or popping.
        let idle = inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open(&inner.path)?,
        };
        let out = f(&conn);
        inner
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        out
    }
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(10))?;
    // Readers keep SQLite's default page cache (2 MB each): the operating system caches
    // the file anyway.
    conn.execute_batch("PRAGMA temp_store = MEMORY;")?;
    conn.set_prepared_statement_cache_capacity(64);
    super::register_functions(&conn)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read that finds every connection busy for the acquire timeout fails with
    /// `PoolTimedOut` (a 503), and the pool serves again once a connection is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_pool_times_out_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        rusqlite::Connection::open(&path).unwrap();
        let readers = Readers::open(&path, 1, Duration::from_millis(200)).unwrap();
        let (inside, entered) = tokio::sync::oneshot::channel::<()>();
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let holder = readers.clone();
        let held = tokio::spawn(async move {
            holder
                .read(move |conn| {
                    let _ = inside.send(());
                    let _ = wait.recv();
                    Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?)
                })
                .await
        });
        entered.await.unwrap();
        let err = readers.read(|_| Ok(())).await.unwrap_err();
        assert!(matches!(err, StoreError::PoolTimedOut), "{err:?}");
        let api = crate::error::ApiError::from(err);
        assert_eq!((api.status(), api.code()), (503, "SERVICE_UNAVAILABLE"));
        release.send(()).unwrap();
        assert_eq!(held.await.unwrap().unwrap(), 1);
        let one = readers
            .read(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
            .await
            .unwrap();
        assert_eq!(one, 1);
    }
}
