//! The revocation side of deprov: how applications and providers are told that a person
//! lost access. This crate owns the outbound policy (which URLs deprov may call at all),
//! the signing keys and their JWKS, the logout tokens, and the discovery document; the
//! fan-out worker builds on them.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod channels;
pub mod discovery;
pub mod keys;
pub mod logout_token;
pub mod outbound;
pub mod receiver;
pub mod worker;
