//! `kill -9` right after a committed write loses nothing.
//!
//! The test re-runs its own binary as a child process (the `child_writer` test, which does
//! nothing unless `DEPROV_DURABILITY_CHILD_URL` is set). The child commits tenants one by
//! from sixteen tasks at once and reports each commit on stdout only after `commit()`
//! returned; the parent kills it with SIGKILL mid-stream, reopens the database and checks
//! that every reported commit is there. On SQLite this exercises batched transactions
//! (write_batch.rs) and group fsync of the WAL (wal_sync.rs); on PostgreSQL, its commit.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use deprov_core::TenantName;
use deprov_store::testing::{Backend, TestDb};
use deprov_store::{DatabaseLocation, Store};

const CHILD_ENV: &str = "DEPROV_DURABILITY_CHILD_URL";

/// The writer half; inert when run as an ordinary test.
#[tokio::test]
async fn child_writer() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(CHILD_ENV) else {
        return Ok(());
    };
    let store = Store::open(&DatabaseLocation::parse(&url)?).await?;
    // Sixteen writers at once, so that on SQLite the kill lands among batched commits.
    let mut writers = tokio::task::JoinSet::new();
    for w in 0..16 {
        let store = store.clone();
        writers.spawn(async move {
            for i in 0..100_000 {
                let name = TenantName::parse(&format!("w{w}-t{i}"))?;
                store.create_tenant(&name, "durability-test").await?;
                println!("committed {name}");
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = writers.join_next().await {
        done??;
    }
    Ok(())
}

async fn killed_writer_loses_no_commit(backend: Backend) -> anyhow::Result<()> {
    let Some(db) = TestDb::new(backend).await? else {
        return Ok(());
    };
    // Schema first, so the child starts writing at once.
    db.open().await?.close().await?;

    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "durability::child_writer",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &db.url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut reported = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(name) = line.strip_prefix("committed ") {
            reported.push(name.to_owned());
            if reported.len() == 400 {
                // SIGKILL: no destructor, no flush, no orderly close.
                child.kill()?;
                break;
            }
        }
    }
    child.wait()?;
    anyhow::ensure!(
        reported.len() == 400,
        "child stopped early after {} commits",
        reported.len()
    );

    let store = db.open().await?;
    let names: std::collections::HashSet<String> = store
        .list_tenants()
        .await?
        .into_iter()
        .map(|t| t.name)
        .collect();
    for name in &reported {
        anyhow::ensure!(names.contains(name), "committed tenant {name} was lost");
    }
    store.close().await?;
    db.drop_async().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_no_commit_sqlite() -> anyhow::Result<()> {
    killed_writer_loses_no_commit(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_loses_no_commit_postgres() -> anyhow::Result<()> {
    killed_writer_loses_no_commit(Backend::Postgres).await
}
