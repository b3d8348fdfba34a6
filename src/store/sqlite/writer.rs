//! The one writing connection of the SQLite backend, on a thread of its own.
//!
//! SQLite lets one connection write at a time, so every write of this process has one owner:
//! a dedicated thread holding a rusqlite connection with cached prepared statements. A write
//! is a closure sent to that thread. The thread runs whatever is queued in one transaction,
//! each closure inside a savepoint of its own (a failing closure undoes only its own work),
//! and commits once: under load, many refreshes share one WAL commit, and no statement is
//! parsed twice. Each answer is sent after the commit, so no caller ever sees a write that
//! could still be lost.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::store::StoreError;

/// The most closures in one transaction: bounds what a batch adds to its first caller's wait.
const MAX_BATCH: usize = 64;

/// Sends a closure's answer, given the commit's error if the commit failed.
type Reply = Box<dyn FnOnce(Option<&str>) + Send>;
/// Runs a closure on the connection (or learns that the transaction could not begin).
type Job = Box<dyn FnOnce(Result<&Connection, &str>) -> Reply + Send>;

/// How often the checkpoint thread moves committed pages from the WAL into the database.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// Under constant writes the WAL never finds a moment to start over, so past this many pages
/// (64 MiB) the writer makes one between two batches: a RESTART checkpoint copies what the last
/// PASSIVE one left (~200 ms of writes) and lets the next commit write from the WAL's start.
const WAL_RESTART_PAGES: i64 = 16_384;
/// The writer's own checkpoint, a backstop should the checkpoint thread fall behind.
const WRITER_CHECKPOINT_PAGES: i64 = 4 * WAL_RESTART_PAGES;

#[derive(Clone)]
pub(super) struct Writer {
    jobs: mpsc::Sender<Job>,
    /// Dropped with the last clone, which ends the checkpoint thread.
    _checkpoints: Arc<mpsc::Sender<()>>,
}

fn stopped() -> StoreError {
    StoreError::Writer("the SQLite writer thread has stopped".into())
}

impl Writer {
    /// Opens the database file for writing (the pragmas match the reading pool's) and starts
    /// the thread; it ends when the last `Writer` clone is dropped.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        // The writer leaves checkpoints to the checkpoint thread: once the WAL is past its
        // auto-checkpoint size and never restarts, SQLite would checkpoint (and fsync) after
        // every commit, stalling every caller. It keeps the hot index pages of sessions and
        // lineage in memory (8 MiB).
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;
             PRAGMA wal_autocheckpoint = {WRITER_CHECKPOINT_PAGES}; PRAGMA cache_size = -8192;
             PRAGMA temp_store = MEMORY;"
        ))?;
        conn.set_prepared_statement_cache_capacity(128);
        super::register_functions(&conn)?;
        let (jobs, queue) = mpsc::channel::<Job>();
        // The WAL's length in pages, as the checkpoint thread last saw it.
        let wal_pages = Arc::new(AtomicI64::new(0));
        let seen = wal_pages.clone();
        spawn("sqlite-writer", move || serve(conn, queue, &seen))?;
        let checkpointer = Connection::open(path)?;
        checkpointer.busy_timeout(Duration::from_secs(1))?;
        let (checkpoints, stop) = mpsc::channel::<()>();
        spawn("sqlite-checkpoint", move || {
            while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
                match checkpoint(&checkpointer, "PASSIVE") {
                    Ok(pages) => wal_pages.store(pages, Ordering::Relaxed),
                    Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
                }
            }
        })?;
        Ok(Self {
            jobs,
            _checkpoints: Arc::new(checkpoints),
        })
    }

    /// Runs `f` on the writing connection, inside a transaction, and answers once committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = match conn {
                Ok(conn) => in_savepoint(conn, f),
                Err(e) => Err(StoreError::Writer(e.to_string())),
            };
            Box::new(move |commit_failed: Option<&str>| {
                let result = match (result, commit_failed) {
                    (Ok(_), Some(e)) => Err(StoreError::Writer(format!("commit failed: {e}"))),
                    (result, _) => result,
                };
                // The caller may have gone (its request was cancelled); the write stands.
                let _ = answer.send(result);
            })
        });
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

/// Runs a checkpoint (`PASSIVE` never blocks the writer) and returns the WAL's length in pages.
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<i64> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        row.get::<_, i64>(1)
    })
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|e| StoreError::Writer(format!("cannot start thread {name}: {e}")))
}

/// `f` inside `SAVEPOINT job`: kept on success, undone on an error or a panic.
fn in_savepoint<T>(
    conn: &Connection,
    f: impl FnOnce(&Connection) -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    conn.prepare_cached("SAVEPOINT job")?.execute([])?;
    let out = catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(StoreError::Writer("a write panicked".into())));
    if out.is_err() {
        conn.prepare_cached("ROLLBACK TO job")?.execute([])?;
    }
    conn.prepare_cached("RELEASE job")?.execute([])?;
    out
}

/// The thread: one transaction per batch of queued closures.
fn serve(conn: Connection, queue: mpsc::Receiver<Job>, wal_pages: &AtomicI64) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let begun = conn
            .prepare_cached("BEGIN IMMEDIATE")
            .and_then(|mut s| s.execute([]))
            .map_err(|e| e.to_string());
        let replies: Vec<Reply> = batch
            .into_iter()
            .map(|job| job(begun.as_ref().map(|_| &conn).map_err(String::as_str)))
            .collect();
        let commit_failed = match begun {
            Ok(_) => match conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => None,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    tracing::error!(error = %e, "SQLite commit failed; the batch was rolled back");
                    Some(e.to_string())
                }
            },
            // Each closure already answered with the error.
            Err(_) => None,
        };
        for reply in replies {
            reply(commit_failed.as_deref());
        }
        if wal_pages.load(Ordering::Relaxed) >= WAL_RESTART_PAGES {
            wal_pages.store(0, Ordering::Relaxed);
            if let Err(e) = checkpoint(&conn, "RESTART") {
                tracing::warn!(error = %e, "SQLite WAL restart failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn writer() -> (tempfile::TempDir, Writer) {
        let dir = tempfile::tempdir().unwrap();
        let w = Writer::open(&dir.path().join("w.db")).unwrap();
        w.write(|c| Ok(c.execute_batch("CREATE TABLE t (n integer PRIMARY KEY)")?))
            .await
            .unwrap();
        (dir, w)
    }

    async fn count(w: &Writer) -> i64 {
        w.write(|c| Ok(c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))?))
            .await
            .unwrap()
    }

    /// Concurrent writes share transactions; a failing or panicking one undoes only itself.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_failing_write_undoes_only_itself() {
        let (_dir, w) = writer().await;
        let tasks: Vec<_> = (0..200i64)
            .map(|n| {
                let w = w.clone();
                tokio::spawn(async move {
                    w.write(move |c| {
                        c.execute("INSERT INTO t (n) VALUES (?)", [n])?;
                        match n % 4 {
                            1 => Err(StoreError::Writer("refused".into())),
                            2 => panic!("a bug in a write"),
                            _ => Ok(n),
                        }
                    })
                    .await
                })
            })
            .collect();
        let mut ok = 0;
        for t in tasks {
            if t.await.unwrap().is_ok() {
                ok += 1;
            }
        }
        assert_eq!(ok, 100);
        assert_eq!(
            count(&w).await,
            100,
            "only the writes that succeeded landed"
        );
        let odd: i64 = w
            .write(|c| {
                Ok(
                    c.query_row("SELECT count(*) FROM t WHERE n % 4 IN (1, 2)", [], |r| {
                        r.get(0)
                    })?,
                )
            })
            .await
            .unwrap();
        assert_eq!(odd, 0);
    }

    /// A write that breaks a constraint fails alone, with the database's error.
    #[tokio::test]
    async fn constraint_errors_reach_the_caller() {
        let (_dir, w) = writer().await;
        w.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?))
            .await
            .unwrap();
        let err = w
            .write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Sqlite(_)), "{err:?}");
        assert_eq!(count(&w).await, 1);
    }
}
