//! The revocation side of deprov: how applications and providers are told that a person
//! lost access. This crate owns the outbound policy (which URLs deprov may call at all);
//! the fan-out worker, logout tokens and signing keys build on it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod outbound;
