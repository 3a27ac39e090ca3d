//! Group commit for SQLite.
//!
//! SQLite has no group commit: with `synchronous = FULL` every transaction pays its own
//! fsync, so durable writes can never outpace the disk's fsync rate. deprov therefore runs
//! SQLite's WAL with `synchronous = NORMAL` (commits are written to the WAL but not synced)
//! and makes each commit durable itself, before the caller answers: [`WalSync::barrier`]
//! waits for an fsync of the WAL file that *started after* the caller's commit returned.
//! Commits that finish while one fsync is running are all covered by the next one, so
//! concurrent writers share fsyncs.
//!
//! Why this is as durable as `FULL`: a committed transaction is a run of frames in the WAL
//! ending in a commit frame; once the WAL file's data is on disk, recovery replays it. The
//! fsync is taken on the file (any descriptor flushes the inode's pages), and the directory
//! is synced once so that the WAL file's own entry survives. Checkpoints with `NORMAL` still
//! sync the WAL before copying pages into the database and sync the database afterwards.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

pub(crate) type SyncFn = Arc<dyn Fn() -> io::Result<()> + Send + Sync>;

/// Shares fsyncs of one SQLite WAL between concurrent committers.
pub(crate) struct WalSync {
    state: Mutex<State>,
    done: Notify,
    sync: SyncFn,
    syncs: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Commits registered so far (a sequence number per barrier call).
    registered: u64,
    /// Every commit registered up to this number is on disk.
    synced: u64,
    syncing: bool,
}

impl std::fmt::Debug for WalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalSync")
            .field("syncs", &self.syncs.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl WalSync {
    /// For the database file at `db`: syncs `db-wal` (and the directory, once).
    pub(crate) fn for_database(db: &Path) -> Self {
        let mut wal = db.as_os_str().to_owned();
        wal.push("-wal");
        let wal = PathBuf::from(wal);
        let db = db.to_owned();
        let dir = db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let dir_synced = AtomicBool::new(false);
        Self::with_sync(Arc::new(move || {
            if !dir_synced.load(Ordering::Acquire) {
                std::fs::File::open(&dir)?.sync_all()?;
                dir_synced.store(true, Ordering::Release);
            }
            match std::fs::File::open(&wal) {
                Ok(file) => file.sync_data(),
                // No WAL (nothing written in WAL mode yet): the database file holds it all.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    std::fs::File::open(&db)?.sync_data()
                }
                Err(e) => Err(e),
            }
        }))
    }

    pub(crate) fn with_sync(sync: SyncFn) -> Self {
        Self {
            state: Mutex::default(),
            done: Notify::new(),
            sync,
            syncs: AtomicU64::new(0),
        }
    }

    /// Number of fsyncs performed, for tests and metrics.
    pub(crate) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Returns once everything committed before this call is on disk. Call it after a
    /// commit and before acknowledging the write.
    pub(crate) async fn barrier(&self) -> io::Result<()> {
        let mine = {
            let mut s = self.lock();
            s.registered += 1;
            s.registered
        };
        loop {
            // Registered before the state is read, so a sync ending in between still wakes us.
            let notified = self.done.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let covering = {
                let mut s = self.lock();
                if s.synced >= mine {
                    return Ok(());
                }
                if s.syncing {
                    None
                } else {
                    s.syncing = true;
                    Some(s.registered)
                }
            };
            let Some(covering) = covering else {
                notified.await;
                continue;
            };
            let sync = self.sync.clone();
            let result = tokio::task::spawn_blocking(move || sync())
                .await
                .unwrap_or_else(|e| Err(io::Error::other(e)));
            {
                let mut s = self.lock();
                s.syncing = false;
                if result.is_ok() {
                    s.synced = s.synced.max(covering);
                }
            }
            self.syncs.fetch_add(1, Ordering::Relaxed);
            self.done.notify_waiters();
            result?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_commits_share_fsyncs_and_each_waits_for_one() {
        let calls = Arc::new(AtomicU64::new(0));
        let counter = calls.clone();
        let sync = Arc::new(WalSync::with_sync(Arc::new(move || {
            std::thread::sleep(Duration::from_millis(30));
            counter.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })));
        let started = std::time::Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let sync = sync.clone();
            tasks.push(tokio::spawn(async move { sync.barrier().await }));
        }
        for t in tasks {
            assert!(matches!(t.await, Ok(Ok(()))));
        }
        let n = calls.load(Ordering::SeqCst);
        // The first barrier syncs alone; everyone who arrived meanwhile shares the next.
        assert!((1..=3).contains(&n), "{n} fsyncs for 20 concurrent commits");
        // And nobody returned without a sync: at least one full fsync elapsed.
        assert!(started.elapsed() >= Duration::from_millis(30));
        assert_eq!(sync.syncs(), n);
    }

    #[tokio::test]
    async fn a_failed_fsync_fails_the_barrier() {
        let sync = WalSync::with_sync(Arc::new(|| Err(io::Error::other("disk gone"))));
        assert!(sync.barrier().await.is_err());
    }
}
