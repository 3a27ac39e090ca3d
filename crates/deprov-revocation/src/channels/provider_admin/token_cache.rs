//! Admin access tokens obtained by the OAuth 2.0 client credentials grant (RFC 6749 §4.4),
//! cached per target until shortly before they expire.
//!
//! Concurrency: each cache key (one target, at one version of its settings) has its own
//! async mutex around its cached token. A delivery that finds no valid token fetches one
//! *while holding that mutex*, so deliveries arriving meanwhile wait and then reuse the
//! token just fetched: a burst of de-provisionings costs one token request (single flight).
//! A failed fetch is remembered for [`FAILURE_TTL`]: the deliveries that were waiting get
//! the same outcome at once instead of each trying again in turn (64 waiters behind a
//! token endpoint that times out would otherwise wait 64 timeouts, far past their lease).
//! After that the next delivery asks again, so a recovered endpoint is noticed quickly.
//!
//! A token refused by the API (401) is dropped only if it is still the cached one, so a
//! delivery holding an old token cannot throw away the new token another just fetched.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use zeroize::Zeroizing;

use crate::worker::Performed;

/// Renew this long before `expires_in` runs out (or after half the lifetime, if shorter),
/// so a token is never sent in its last seconds.
const REFRESH_MARGIN: Duration = Duration::from_secs(60);

/// The lifetime assumed when the token endpoint does not say (`expires_in` is only
/// RECOMMENDED, RFC 6749 §5.1).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// A token as the token endpoint issued it.
pub(crate) struct Fresh {
    pub token: Zeroizing<String>,
    pub expires_in: Option<Duration>,
}

/// How long a failed token request answers for the deliveries waiting on it (shorter in
/// tests, which check that the next delivery after it asks again).
const FAILURE_TTL: Duration = if cfg!(test) {
    Duration::from_millis(300)
} else {
    Duration::from_secs(5)
};

struct Cached {
    token: Arc<Zeroizing<String>>,
    refresh_at: Instant,
}

#[derive(Default)]
struct Entry {
    token: Option<Cached>,
    failure: Option<(Performed, Instant)>,
}

type Slot = Arc<tokio::sync::Mutex<Entry>>;

#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Slot>>,
}

impl std::fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.slots.lock().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("TokenCache").field("keys", &n).finish()
    }
}

impl TokenCache {
    fn slot(&self, key: &str) -> Slot {
        let mut slots = self
            .slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// The cached token for `key`, or a fresh one from `fetch` (one fetch at a time per key).
    pub(crate) async fn get<F, Fut>(
        &self,
        key: &str,
        fetch: F,
    ) -> Result<Arc<Zeroizing<String>>, Performed>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fresh, Performed>>,
    {
        let slot = self.slot(key);
        let mut entry = slot.lock().await;
        let now = Instant::now();
        if let Some(c) = entry.token.as_ref()
            && now < c.refresh_at
        {
            return Ok(c.token.clone());
        }
        if let Some((failed, at)) = entry.failure.as_ref()
            && now < *at + FAILURE_TTL
        {
            return Err(failed.clone());
        }
        entry.token = None;
        entry.failure = None;
        let fresh = match fetch().await {
            Ok(fresh) => fresh,
            Err(failed) => {
                entry.failure = Some((failed.clone(), Instant::now()));
                return Err(failed);
            }
        };
        let lifetime = fresh.expires_in.unwrap_or(DEFAULT_LIFETIME);
        let margin = (lifetime / 2).min(REFRESH_MARGIN);
        let token = Arc::new(fresh.token);
        entry.token = Some(Cached {
            token: token.clone(),
            refresh_at: Instant::now() + (lifetime - margin),
        });
        Ok(token)
    }

    /// Forgets `stale` if it is still the token cached for `key`.
    pub(crate) async fn invalidate(&self, key: &str, stale: &str) {
        let slot = self.slot(key);
        let mut entry = slot.lock().await;
        if entry
            .token
            .as_ref()
            .is_some_and(|c| c.token.as_str() == stale)
        {
            entry.token = None;
        }
    }
}
