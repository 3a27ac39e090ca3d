//! A short-lived memory of SCIM tokens that authenticated, so that a SCIM request costs one
//! database query (its own) rather than three.
//!
//! Only tokens that matched are kept, so wrong tokens cannot fill it, and only for
//! [`AUTH_CACHE_TTL`]. A token revoked through this process is forgotten at once; one
//! revoked through another replica (or the CLI, a process of its own) stops working here
//! within the TTL.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::tenants::Tenant;

/// How long a successful authentication is reused.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(2);

/// More entries than live tokens could ever be: past this, the memory starts over.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub(crate) struct AuthCache {
    /// Keyed by the token's SHA-256 digest, never by the token.
    entries: Mutex<HashMap<[u8; 32], (Tenant, Instant)>>,
}

impl AuthCache {
    /// The tenant of the token with this digest, if it authenticated within the TTL.
    pub(crate) fn get(&self, token_hash: &[u8; 32]) -> Option<Tenant> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (tenant, at) = entries.get(token_hash)?;
        (at.elapsed() < AUTH_CACHE_TTL).then(|| tenant.clone())
    }

    pub(crate) fn put(&self, token_hash: [u8; 32], tenant: Tenant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, (_, at)| at.elapsed() < AUTH_CACHE_TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(token_hash, (tenant, Instant::now()));
    }

    /// Forgets every token (after a revocation in this process).
    pub(crate) fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}
