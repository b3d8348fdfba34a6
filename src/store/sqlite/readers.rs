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
    /// One permit per connection that may be open at once.
    permits: Semaphore,
    idle: Mutex<Vec<Connection>>,
    acquire_timeout: Duration,
}

/// What a read that found every connection busy for `acquire_timeout` answers: SQLite's
/// "busy", which `ApiError` makes a 503.
fn timed_out() -> StoreError {
    StoreError::Sqlite(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
        Some("timed out waiting for a reading connection".into()),
    ))
}

impl Readers {
    /// Opens one connection now (so a missing or unreadable file fails the start); the
    /// others open when first needed, up to `max`.
    pub fn open(path: &Path, max: u32, acquire_timeout: Duration) -> Result<Self, StoreError> {
        let first = open(path)?;
        Ok(Self {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                permits: Semaphore::new(max.max(1) as usize),
                idle: Mutex::new(vec![first]),
                acquire_timeout,
            }),
        })
    }

    /// Runs `f` on a reading connection.
    pub async fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        let _permit = tokio::time::timeout(inner.acquire_timeout, inner.permits.acquire())
            .await
            .map_err(|_| timed_out())?
            .map_err(|_| timed_out())?;
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
