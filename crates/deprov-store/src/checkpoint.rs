//! WAL checkpoints for SQLite, off the writer's path.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that takes the WAL past 1,000
//! pages: that commit copies the WAL's pages into the database file and syncs both files
//! before it returns, on the thread that committed, while it holds the write connection.
//! Here that thread is one of the server's two workers, and every write queued behind the
//! batch waits with it: the slowest commits of a write benchmark were these.
//!
//! So the writer's automatic checkpoint is off and a thread of its own, with a connection of
//! its own, runs `PRAGMA wal_checkpoint(PASSIVE)` (<https://sqlite.org/wal.html#ckpt>)
//! after commits, at most every [`INTERVAL`]. A passive checkpoint takes no lock writers or
//! readers wait for; it copies what no reader still needs, and once it has copied the whole
//! WAL the next write transaction starts the WAL over from its beginning, so the file stays
//! bounded as before. Readers keep their read transactions open while nothing is committed
//! (sqlite/wal_index.rs), so before each checkpoint this thread ends those of idle readers,
//! and after it has them all begin anew, on what it copied. Should this thread fall behind (a reader
//! holding an old snapshot keeps any checkpoint from finishing), the writer's own
//! checkpoint at [`WRITER_FALLBACK_PAGES`] still bounds the WAL.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sea_orm::DbErr;

use crate::sqlite::ReaderPool;

/// The shortest time between two checkpoints while writes go on: each one syncs the WAL
/// and the database file, and copies a page written many times in between only once.
pub(crate) const INTERVAL: Duration = Duration::from_millis(250);

/// The WAL size, in pages, at which the writer checkpoints by itself (SQLite's
/// `wal_autocheckpoint`; its default is 1,000). Reached only when this thread falls behind.
pub(crate) const WRITER_FALLBACK_PAGES: u32 = 20_000;

#[derive(Debug, Default)]
struct State {
    /// Commits since the last checkpoint began.
    pending: bool,
    stop: bool,
    /// Checkpoints run, and the last one's `(busy, wal pages, pages checkpointed)`.
    runs: u64,
    last: Option<(i64, i64, i64)>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The checkpointing thread of one SQLite database; it stops when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Opens the thread's connection to the database at `path` (already in WAL mode).
    /// Before each checkpoint it ends the kept read transactions of idle `readers`.
    pub(crate) fn start(
        path: &Path,
        busy: Duration,
        readers: Option<Arc<ReaderPool>>,
    ) -> Result<Self, DbErr> {
        let conn = crate::sqlite::open(path, false, busy)?;
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("sqlite-checkpoint".to_owned())
            .spawn({
                let shared = shared.clone();
                move || run(&conn, &shared, readers.as_deref())
            })
            .map_err(|e| DbErr::Custom(format!("starting the SQLite checkpoint thread: {e}")))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Called after each commit of the writer.
    pub(crate) fn committed(&self) {
        let mut s = self.shared.lock();
        if !s.pending {
            s.pending = true;
            self.shared.wake.notify_one();
        }
    }

    /// Checkpoints run so far and the last one's result, for tests.
    #[cfg(test)]
    pub(crate) fn progress(&self) -> (u64, Option<(i64, i64, i64)>) {
        self.watch().progress()
    }

    /// A handle that reads [`Checkpointer::progress`] without the writer's lock.
    pub(crate) fn watch(&self) -> CheckpointWatch {
        CheckpointWatch(self.shared.clone())
    }
}

/// What the checkpoint thread has done, for metrics.
#[derive(Debug, Clone)]
pub(crate) struct CheckpointWatch(Arc<Shared>);

impl CheckpointWatch {
    /// Checkpoints run so far and the last one's `(busy, wal pages, pages checkpointed)`.
    pub(crate) fn progress(&self) -> (u64, Option<(i64, i64, i64)>) {
        let s = self.0.lock();
        (s.runs, s.last)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.shared.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: &Connection, shared: &Shared, readers: Option<&ReaderPool>) {
    let mut last_run: Option<Instant> = None;
    loop {
        let mut s = shared.lock();
        while !s.pending && !s.stop {
            s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        // Commits that arrive while we wait out the interval join this checkpoint.
        if let Some(due) = last_run.map(|t| t + INTERVAL) {
            while !s.stop {
                let now = Instant::now();
                if now >= due {
                    break;
                }
                s = shared
                    .wake
                    .wait_timeout(s, due - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        if s.stop {
            return;
        }
        s.pending = false;
        drop(s);
        last_run = Some(Instant::now());
        if let Some(readers) = readers {
            readers.release_idle();
        }
        let result = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        });
        if let Some(readers) = readers {
            readers.checkpointed();
        }
        let mut s = shared.lock();
        s.runs += 1;
        match result {
            Ok(progress) => {
                tracing::trace!(?progress, "SQLite WAL checkpoint (busy, pages, copied)");
                s.last = Some(progress);
            }
            Err(e) => {
                tracing::warn!(error = %e, "a SQLite WAL checkpoint failed; the next commit retries it")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_pages(path: &Path) -> u64 {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        std::fs::metadata(wal).map_or(0, |m| m.len()) / 4096
    }

    #[test]
    fn the_thread_checkpoints_what_the_writer_no_longer_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite");
        let writer = crate::sqlite::open(&path, false, Duration::from_secs(5)).unwrap();
        writer
            .execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
            .unwrap();
        // A row per page, a commit per row.
        let body = "x".repeat(3000);
        let write_round = |round: i64, checkpointer: Option<&Checkpointer>| {
            for i in 0..1500 {
                writer
                    .execute(
                        "INSERT INTO t (id, body) VALUES (?1, ?2)",
                        (round * 10_000 + i, &body),
                    )
                    .unwrap();
                if let Some(c) = checkpointer {
                    c.committed();
                }
            }
        };
        write_round(0, None);
        // Past SQLite's default of 1,000 pages, the writer did not checkpoint.
        let high_water = wal_pages(&path);
        assert!(high_water >= 1500, "{high_water} pages");

        let checkpointer = Checkpointer::start(&path, Duration::from_secs(5), None).unwrap();
        checkpointer.committed();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (runs, last) = checkpointer.progress();
            if runs > 0 && last.is_some_and(|(busy, pages, copied)| busy == 0 && pages == copied) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no complete checkpoint: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The WAL was copied whole: the next writes start it over instead of growing it.
        for round in 1..4 {
            write_round(round, Some(&checkpointer));
            std::thread::sleep(INTERVAL * 2);
        }
        assert!(
            wal_pages(&path) <= high_water + high_water / 10,
            "the WAL grew from {high_water} to {} pages",
            wal_pages(&path)
        );
        let rows: i64 = writer
            .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 6000);
        drop(checkpointer);
    }
}
