//! The `deprov` binary's library half: configuration, CLI, wiring of the HTTP server and
//! the background work, health endpoints and ordered shutdown. Tests start the same
//! [`app::Running`] the binary does, on port 0.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub mod console;
pub mod delivery;
pub mod demo;
pub mod grants;
mod health;
pub mod metrics;
pub mod ops;
pub mod telemetry;
pub mod wellknown;
