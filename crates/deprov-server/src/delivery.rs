//! Wiring of the revocation side: the key ring, the outbound client, the channels and the
//! delivery worker, from the configuration.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use deprov_core::SigningAlgorithm;
use deprov_revocation::channels::backchannel_logout::BackchannelLogout;
use deprov_revocation::channels::global_token_revocation::GlobalTokenRevocation;
use deprov_revocation::channels::oauth_revocation::OAuthRevocation;
use deprov_revocation::channels::op_metadata::MetadataCache;
use deprov_revocation::channels::provider_admin::ProviderAdmin;
use deprov_revocation::keys::{KeyEncryptionKey, KeyRing, key_file_path};
use deprov_revocation::outbound::http::OutboundClient;
use deprov_revocation::worker::{RetryPolicy, Worker, WorkerConfig};
use deprov_store::Store;
use deprov_store::op_targets::{KIND_GLOBAL_TOKEN_REVOCATION, KIND_OAUTH_REVOCATION};
use deprov_store::targets::KIND_BACKCHANNEL_LOGOUT;

use crate::config::Config;

/// The key ring, with the key-encryption key from the configuration or the key file.
pub async fn key_ring(config: &Config, store: &Store) -> anyhow::Result<Arc<KeyRing>> {
    let location = config.database()?;
    let (kek, _source) = KeyEncryptionKey::resolve(
        config.key_encryption_key.as_ref().map(|s| s.expose()),
        &key_file_path(&location),
    )
    .context("key_encryption_key (DEPROV_KEY_ENCRYPTION_KEY)")?;
    let ring = KeyRing::load(store.clone(), kek)
        .await
        .context("cannot load the signing keys")?;
    Ok(Arc::new(ring))
}

/// Creates the default key of every algorithm in use (RS256, and those relying parties
/// ask for), so that the JWKS publishes a key before the first token signed with it.
pub async fn ensure_keys_in_use(store: &Store, keys: &KeyRing) -> anyhow::Result<()> {
    let mut algs = vec![SigningAlgorithm::RS256];
    for tenant in store.list_tenants().await? {
        for rp in store.list_relying_parties(&tenant.name).await? {
            if let Ok(alg) = SigningAlgorithm::parse(&rp.config.alg)
                && !algs.contains(&alg)
            {
                algs.push(alg);
            }
        }
    }
    keys.ensure_keys(algs)
        .await
        .context("cannot create the signing keys")?;
    Ok(())
}

/// The worker that performs deliveries, with every channel registered: one per
/// `targets.kind`, the provider admin kinds (`deprov_store::op_targets::PROVIDER_ADMIN_KINDS`)
/// included; a kind without a channel dead-letters its deliveries loudly.
pub fn worker(config: &Config, store: &Store, keys: Arc<KeyRing>) -> anyhow::Result<Worker> {
    let d = &config.delivery;
    let timeout = Duration::from_secs(d.timeout_secs);
    let client = OutboundClient::new(config.address_policy(), timeout)?;
    let worker_config = WorkerConfig {
        concurrency: d.concurrency,
        per_target: d.per_target,
        // A lease outlives the slowest attempt with a wide margin.
        lease: timeout * 6,
        retry: RetryPolicy {
            max_age: Duration::from_secs(d.max_age_hours * 3600),
            ..RetryPolicy::default()
        },
        ..WorkerConfig::default()
    };
    let kek = keys.kek().clone();
    // OP metadata (the revocation endpoint) is cached for an hour; failures are not cached.
    let metadata = Arc::new(MetadataCache::new(client.clone(), METADATA_TTL));
    let mut worker = Worker::new(store.clone(), worker_config)
        .with_channel(
            KIND_BACKCHANNEL_LOGOUT,
            Arc::new(BackchannelLogout::new(
                keys,
                client.clone(),
                &config.public_url(),
            )),
        )
        .with_channel(
            KIND_OAUTH_REVOCATION,
            Arc::new(OAuthRevocation::new(
                store.clone(),
                kek.clone(),
                client.clone(),
                metadata,
            )),
        )
        .with_channel(
            KIND_GLOBAL_TOKEN_REVOCATION,
            Arc::new(GlobalTokenRevocation::new(kek.clone(), client.clone())),
        );
    for (kind, channel) in ProviderAdmin::new(kek, client).channels() {
        worker = worker.with_channel(kind, channel);
    }
    Ok(worker)
}

/// How long an OP's metadata document is trusted before it is fetched again.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// How often expired grants are deleted.
pub const GRANT_PURGE_INTERVAL: Duration = Duration::from_secs(60);

/// Deletes expired grants every [`GRANT_PURGE_INTERVAL`] until `cancel` fires.
pub async fn purge_expired_grants(store: Store, cancel: tokio_util::sync::CancellationToken) {
    loop {
        match store.purge_expired_grants().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "deleted expired grants"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot delete expired grants; trying again later")
            }
        }
        if let Err(e) = store.purge_expired_assertions().await {
            tracing::warn!(error = %e, "cannot delete expired client assertion records");
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(GRANT_PURGE_INTERVAL) => {}
        }
    }
}
