//! Channels: the ways a target is told. Each turns a claimed delivery into one attempt.

pub mod backchannel_logout;
pub mod client_auth;
pub mod global_token_revocation;
pub mod oauth_revocation;
pub mod op_metadata;
pub mod provider_admin;
