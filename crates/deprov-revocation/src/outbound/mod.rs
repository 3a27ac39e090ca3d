//! Outbound safety: deprov calls only URLs an operator configured, and never the
//! addresses an attacker would aim a server-side request at.

pub mod http;
mod target_url;

pub use target_url::{
    AddressPolicy, RefusedAddress, TargetUrlError, check_ip, validate_target_url,
};
