//! deprov's storage: the schema (migrations), sea-orm entities, and the transactions the
//! rest of deprov performs, on SQLite (embedded, default) and PostgreSQL.
//!
//! Storage errors are translated here into what they mean ([`StoreError::Conflict`],
//! [`StoreError::NotFound`]); callers never match on database error codes.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// Unit tests fail by panicking; input paths never do.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod admin_tokens;
pub mod audit;
mod auth_cache;
mod checkpoint;
mod connect;
pub mod console;
mod decode;
pub mod entity;
mod error;
pub mod grants;
pub mod keys;
pub mod migration;
pub mod op_targets;
pub mod operations;
pub mod outbox;
pub mod planner_statistics;
mod postgres;
pub mod scim;
mod sqlite;
pub mod stats;
pub mod targets;
pub mod tenants;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod time;
mod wal_sync;
mod write_batch;

pub use auth_cache::AUTH_CACHE_TTL;
pub use connect::{Backend, DatabaseLocation, ReadTxn, Reader, SqliteWrites, Store};
pub use error::StoreError;
pub use time::now_millis;
pub use write_batch::WriteTxn;
