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
type Reply = Box<dyn FnOnce(Option<&Failed>) + Send>;
/// Runs a closure on the connection (or learns that the transaction could not begin or was
/// lost); also says whether SQLite rolled the whole transaction back during the closure.
type Job = Box<dyn FnOnce(Result<&Connection, &Failed>) -> (Reply, Option<Failed>) + Send>;

/// A `BEGIN` or `COMMIT` that failed, shared by every closure of the batch. It keeps SQLite's
/// result code, so a full disk or a lock held elsewhere reaches `ApiError` as 503, not 500.
struct Failed {
    what: &'static str,
    error: rusqlite::ffi::Error,
    message: String,
}

impl Failed {
    fn new(what: &'static str, e: &rusqlite::Error) -> Self {
        let error = match e {
            rusqlite::Error::SqliteFailure(f, _) => *f,
            _ => rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
        };
        Self {
            what,
            error,
            message: e.to_string(),
        }
    }

    /// SQLite rolled the whole transaction back while a closure ran (it does so on a full
    /// disk, an I/O error or running out of memory); `e` is that closure's error.
    fn lost(e: Option<&StoreError>) -> Self {
        match e {
            Some(StoreError::Sqlite(e)) => Self::new("transaction", e),
            _ => Self {
                what: "transaction",
                error: rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                message: "rolled back by SQLite".into(),
            },
        }
    }

    fn to_error(&self) -> StoreError {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(
            self.error,
            Some(format!("{} failed: {}", self.what, self.message)),
        ))
    }
}

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
            let (result, lost) = match conn {
                Ok(conn) => {
                    let result = in_savepoint(conn, f);
                    let lost = conn
                        .is_autocommit()
                        .then(|| Failed::lost(result.as_ref().err()));
                    (result, lost)
                }
                Err(e) => (Err(e.to_error()), None),
            };
            let reply: Reply = Box::new(move |commit_failed: Option<&Failed>| {
                let result = match (result, commit_failed) {
                    (Ok(_), Some(e)) => Err(e.to_error()),
                    (result, _) => result,
                };
                // The caller may have gone (its request was cancelled); the write stands.
                let _ = answer.send(result);
            });
            (reply, lost)
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
        if conn.is_autocommit() {
            // SQLite already rolled back the whole transaction, savepoint included: keep the
            // closure's error (a full disk, say), which `serve` passes to the whole batch.
            return out;
        }
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
            .map_err(|e| Failed::new("BEGIN", &e));
        // Once SQLite has rolled the transaction back, the rest of the batch does not run:
        // outside a transaction each closure would commit on its own.
        let mut lost: Option<Failed> = None;
        let mut replies: Vec<Reply> = Vec::with_capacity(batch.len());
        for job in batch {
            let on = match (&begun, &lost) {
                (Err(e), _) | (Ok(_), Some(e)) => Err(e),
                (Ok(_), None) => Ok(&conn),
            };
            let (reply, lost_now) = job(on);
            replies.push(reply);
            if lost.is_none() {
                lost = lost_now;
            }
        }
        let commit_failed = match (begun, lost) {
            // The closures that had succeeded learn that their work was undone.
            (Ok(_), Some(lost)) => {
                tracing::error!(error = %lost.message, "SQLite rolled back a batch of writes");
                Some(lost)
            }
            (Ok(_), None) => match conn
                .prepare_cached("COMMIT")
                .and_then(|mut s| s.execute([]))
            {
                Ok(_) => None,
                Err(e) => {
                    let _ = conn.execute_batch("ROLLBACK");
                    tracing::error!(error = %e, "SQLite commit failed; the batch was rolled back");
                    Some(Failed::new("commit", &e))
                }
            },
            // Each closure already answered with the error.
            (Err(_), _) => None,
        };
        for reply in replies {
            reply(commit_failed.as_ref());
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

    /// A full database reaches the callers with SQLite's result code, which makes it a 503.
    /// SQLite then rolls back the whole batch: the writes before the failing one are undone
    /// and told so, and the writes after it do not run (outside the transaction each would
    /// commit alone while its caller heard of a failure).
    #[tokio::test]
    async fn a_full_database_fails_the_whole_batch_as_unavailable() {
        let (_dir, w) = writer().await;
        let (go, wait) = mpsc::channel::<()>();
        let (running, started) = oneshot::channel::<()>();
        // Holds the writer thread, so the three writes below queue and share the next batch.
        let w1 = w.clone();
        let first = tokio::spawn(async move {
            w1.write(move |c| {
                c.execute_batch("CREATE TABLE b (x blob)")?;
                let pages: i64 = c.query_row("PRAGMA page_count", [], |r| r.get(0))?;
                // Caps the file near its current size (a limit of this connection only).
                c.query_row(
                    &format!("PRAGMA max_page_count = {}", pages + 2),
                    [],
                    |_| Ok(()),
                )?;
                let _ = running.send(());
                let _ = wait.recv();
                Ok(())
            })
            .await
        });
        started.await.unwrap();
        // Polled once each, in order: that queues the write (the answer is awaited below).
        let mut writes = Vec::new();
        for sql in [
            "INSERT INTO t (n) VALUES (1)",
            "INSERT INTO b VALUES (zeroblob(1000000))",
            "INSERT INTO t (n) VALUES (3)",
        ] {
            let mut write = Box::pin(w.write(move |c| Ok(c.execute(sql, [])?)));
            assert!(futures::poll!(write.as_mut()).is_pending());
            writes.push(write);
        }
        go.send(()).unwrap();
        first.await.unwrap().unwrap();
        for write in writes {
            let api = crate::error::ApiError::from(write.await.unwrap_err());
            assert_eq!((api.status(), api.code()), (503, "SERVICE_UNAVAILABLE"));
        }
        assert_eq!(count(&w).await, 0, "no write of the failed batch landed");
    }

    /// A batch that cannot begin (another process holds the write lock past the busy
    /// timeout) answers with SQLite's code too: 503, and the next batch works again.
    #[tokio::test]
    async fn a_lock_held_elsewhere_is_unavailable_not_internal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let w = Writer::open(&path).unwrap();
        w.write(|c| Ok(c.execute_batch("CREATE TABLE t (n integer PRIMARY KEY)")?))
            .await
            .unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let err = w
            .write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?))
            .await
            .unwrap_err();
        let api = crate::error::ApiError::from(err);
        assert_eq!((api.status(), api.code()), (503, "SERVICE_UNAVAILABLE"));
        other.execute_batch("ROLLBACK").unwrap();
        w.write(|c| Ok(c.execute("INSERT INTO t (n) VALUES (1)", [])?))
            .await
            .unwrap();
        assert_eq!(count(&w).await, 1);
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
