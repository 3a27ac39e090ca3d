//! Channels: the ways a target is told. Each turns a claimed delivery into one attempt.

pub mod backchannel_logout;
pub mod provider_admin;
