//! What an attempt's result means for its delivery (DESIGN.md, "Delivery semantics").

use std::time::Duration;

use rand::Rng as _;

/// How a target answered, in the terms that decide the delivery's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx: done. (Back-Channel Logout 1.0 §2.8: 200 OK, or 204.)
    Delivered,
    /// 408, 429, 5xx, timeouts and connection errors: the target may accept it later.
    Retryable,
    /// Other 4xx (and 3xx, since redirects are not followed): the target refused this very
    /// request and will refuse it again. Dead-lettered with the response kept.
    Permanent,
}

/// Classifies an HTTP status, or its absence (a transport failure).
pub fn classify(status: Option<u16>) -> Verdict {
    match status {
        None => Verdict::Retryable,
        Some(200..=299) => Verdict::Delivered,
        Some(408 | 429) => Verdict::Retryable,
        Some(500..=599) => Verdict::Retryable,
        Some(_) => Verdict::Permanent,
    }
}

/// Exponential backoff with full jitter, a cap, `Retry-After`, and a maximum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry waits up to this long.
    pub base: Duration,
    /// No single wait exceeds this (unless the target's `Retry-After` asks for longer,
    /// which is honoured up to `max_retry_after`).
    pub max_backoff: Duration,
    /// The longest `Retry-After` honoured; a target asking for more is retried after this.
    pub max_retry_after: Duration,
    /// A delivery older than this (since it was created or last re-driven) is dead-lettered
    /// instead of retried.
    pub max_age: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max_backoff: Duration::from_secs(15 * 60),
            max_retry_after: Duration::from_secs(6 * 3600),
            max_age: Duration::from_secs(72 * 3600),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt number `attempts + 1`, given `attempts` failures so far.
    /// Full jitter (a uniform wait in `[base·2ⁿ/2, base·2ⁿ]`) spreads a burst of failures over
    /// time so that a recovering target is not hit by all of them at once.
    pub fn backoff(&self, attempts: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self
            .base
            .saturating_mul(2u32.saturating_pow(attempts.min(30)))
            .min(self.max_backoff);
        let low = exp / 2;
        let jittered = if exp > low {
            low + Duration::from_millis(
                rand::rng()
                    .random_range(0..=u64::try_from((exp - low).as_millis()).unwrap_or(u64::MAX)),
            )
        } else {
            exp
        };
        match retry_after {
            Some(asked) => jittered.max(asked.min(self.max_retry_after)),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_follow_the_delivery_semantics() {
        assert_eq!(classify(Some(200)), Verdict::Delivered);
        assert_eq!(classify(Some(204)), Verdict::Delivered);
        for s in [400, 401, 403, 404, 410, 302] {
            assert_eq!(classify(Some(s)), Verdict::Permanent, "{s}");
        }
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(classify(Some(s)), Verdict::Retryable, "{s}");
        }
        assert_eq!(classify(None), Verdict::Retryable);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        let first = policy.backoff(0, None);
        assert!(first >= Duration::from_millis(500) && first <= Duration::from_secs(1));
        let tenth = policy.backoff(10, None);
        assert!(tenth >= Duration::from_secs(450) && tenth <= Duration::from_secs(900));
        assert!(policy.backoff(40, None) <= policy.max_backoff);
        assert_eq!(
            policy.backoff(0, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(
            policy.backoff(0, Some(Duration::from_secs(100 * 3600))),
            policy.max_retry_after
        );
    }
}
