//! sea-orm entities, one module per table. The tables themselves come only from
//! [`crate::migration`]; these types must follow it, never the other way round.

pub mod admin_token;
pub mod audit_entry;
pub mod console_session;
pub mod delivery;
pub mod delivery_attempt;
pub mod event;
pub mod grant;
pub mod group;
pub mod group_member;
pub mod scim_token;
pub mod signing_key;
pub mod target;
pub mod target_group;
pub mod tenant;
pub mod user;
