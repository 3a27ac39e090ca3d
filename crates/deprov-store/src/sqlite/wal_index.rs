//! Whether a WAL database changed since a read transaction began, without beginning another.
//!
//! Each read transaction on a WAL database takes a lock on a read mark in the shared-memory
//! file (<https://sqlite.org/walformat.html#locks>), and gives it back at its end: two
//! `fcntl` calls under a process-wide mutex whenever no other connection of the process
//! holds that mark at that moment. On a read load on two cores that was a tenth of deprov's
//! CPU, half of it in the calls and half in threads queuing for the mutex.
//!
//! So a reader keeps its read transaction open between statements for as long as nothing
//! was committed since it began. The WAL-index header
//! (<https://sqlite.org/walformat.html#the_wal_index_header>) tells: every commit, by any
//! connection of any process, changes it (the change counter, the last valid frame, and
//! the checksums, and a WAL restart also the salts). The reader copies the header just
//! before it begins a transaction and compares it before each later use. Equal: nothing
//! was committed since the copy, so the snapshot the transaction holds, taken after the
//! copy, is the current state. Different, or copied while a writer was changing it: the
//! reader ends the transaction and begins another, as it did for every statement before.
//!
//! The header is read from SQLite's own mapping of the shared memory, which SQLite's VFS
//! hands out (`xShmMap`); its layout is a file format, the same for every SQLite version
//! sharing one database.

use std::ffi::{c_int, c_void};
use std::ptr::{NonNull, null_mut};
use std::sync::atomic::{AtomicU32, Ordering};

use rusqlite::{Connection, ffi};

/// The WAL-index header's first copy: 48 bytes (walformat.html §2.1).
pub(crate) type Header = [u32; 12];

/// The size of a shared-memory region SQLite maps (walformat.html §2.1: 32 KiB pages).
const REGION_BYTES: c_int = 32 * 1024;

/// The first region of a connection's WAL index, as SQLite maps it.
pub(crate) struct WalIndex(NonNull<AtomicU32>);

// SAFETY: the pointer is into a shared mapping that SQLite keeps for as long as the
// connection that owns this `WalIndex` (beside it, in the same `Inner`) has its WAL open,
// which is until the connection closes; it is only ever read, with atomic loads.
#[allow(unsafe_code)]
unsafe impl Send for WalIndex {}

impl std::fmt::Debug for WalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("WalIndex").finish_non_exhaustive()
    }
}

impl WalIndex {
    /// The WAL index of a connection to a database in WAL mode, after it has read from it
    /// (so its WAL and shared memory are open); `None` otherwise.
    pub(crate) fn of(conn: &Connection) -> Option<Self> {
        // A read opens the WAL and maps the shared memory; the mode is known after it.
        conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .ok()?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let mut region: *mut c_void = null_mut();
        // SAFETY: the handle is the open connection's, used on this thread alone (the
        // caller holds it). SQLITE_FCNTL_FILE_POINTER writes the main database's
        // `sqlite3_file` into `file`, which lives as long as the connection. Its methods are
        // the VFS's; `xShmMap` exists from version 2 of them, and with `bExtend` 0 returns
        // the region already mapped (the read above mapped it) without creating anything.
        #[allow(unsafe_code)]
        let rc = unsafe {
            let mut file: *mut ffi::sqlite3_file = null_mut();
            let rc = ffi::sqlite3_file_control(
                conn.handle(),
                c"main".as_ptr(),
                ffi::SQLITE_FCNTL_FILE_POINTER,
                (&raw mut file).cast(),
            );
            if rc != ffi::SQLITE_OK || file.is_null() || (*file).pMethods.is_null() {
                return None;
            }
            let methods = &*(*file).pMethods;
            let map = methods.xShmMap.filter(|_| methods.iVersion >= 2)?;
            map(file, 0, REGION_BYTES, 0, &raw mut region)
        };
        if rc != ffi::SQLITE_OK {
            return None;
        }
        NonNull::new(region.cast::<AtomicU32>()).map(Self)
    }

    /// The header as it is now. Read while a writer changes it, the copy matches no header
    /// ever written, so it compares unequal to any: the caller begins a new transaction.
    pub(crate) fn header(&self) -> Header {
        let words = self.0.as_ptr();
        std::array::from_fn(|i| {
            // SAFETY: the region is at least 32 KiB, page-aligned, and mapped while the
            // connection is open (see `Send` above); 12 words are within it.
            #[allow(unsafe_code)]
            unsafe {
                (*words.add(i)).load(Ordering::Acquire)
            }
        })
    }
}
