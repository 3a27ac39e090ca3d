//! A hook for what the worker settles, so that the binary can count deliveries and time
//! them without the worker knowing about metrics.

use deprov_store::outbox::Settle;

/// One settled attempt, as reported to a [`DeliveryObserver`].
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    /// The target's kind (`backchannel_logout`, …).
    pub target_kind: &'a str,
    pub outcome: &'a Settle,
    /// When the event was recorded (in the transaction of the SCIM change), ms since the
    /// epoch.
    pub event_at: i64,
    /// When the outcome was recorded, ms since the epoch.
    pub settled_at: i64,
}

/// Told about every attempt the worker settles, after its outcome is recorded. Called on
/// the worker's tasks: it must return at once (update counters, never block or await).
pub trait DeliveryObserver: Send + Sync + 'static {
    fn settled(&self, settled: &Settled<'_>);
}
