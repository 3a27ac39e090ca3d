//! The pure domain of deprov: names, tokens and the rules about them.
//!
//! Nothing here performs I/O; storage, HTTP and the process live in the crates around it.
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod fanout;
pub mod scim;
pub mod secret;
pub mod signing;
pub mod subject;
pub mod tenant;
pub mod token;

pub use secret::Secret;
pub use signing::SigningAlgorithm;
pub use subject::SubjectMapping;
pub use tenant::{TenantName, TenantNameError};
pub use token::{IssuedToken, TokenHash, TokenKind};
