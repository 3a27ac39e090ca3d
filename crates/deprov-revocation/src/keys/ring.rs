//! The key ring: the signing keys in the store, decrypted on demand and cached.
//!
//! # Several processes, one database
//!
//! Every `deprov serve` sharing a PostgreSQL reads the same `signing_keys` rows. Three
//! mechanisms keep them consistent:
//!
//! - **First start.** Each process that finds no active key for an algorithm generates one
//!   and inserts it. A partial unique index (one active generated key per algorithm) lets
//!   exactly one insert win; the losers get `StoreError::Conflict`, drop their key and use
//!   the winner's. Within one process a mutex keeps tasks from generating in parallel.
//! - **Rotation.** Retiring the old key and inserting the new one is one transaction.
//!   Other processes learn of it when their cached view of the active key expires
//!   (`ACTIVE_KEY_TTL`, 30 s). Until then they keep signing with the retired key, which is
//!   harmless: a retired key stays in the JWKS for [`retired_key_publish_window`] (7 min),
//!   far longer than the TTL plus a token's lifetime.
//! - **Key material** never changes for a `kid` (the `kid` is the thumbprint of the public
//!   key), so decrypted keys are cached by `kid` for the life of the process.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use deprov_core::SigningAlgorithm;
use deprov_store::keys::{KeySource, KeyStatus, NewSigningKey, StoredSigningKey};
use deprov_store::{Store, StoreError};
use serde::Serialize;
use zeroize::Zeroizing;

use super::{Jwks, KeyEncryptionKey, KeyError, PublicJwk, SigningKey};
use crate::logout_token::MAX_LIFETIME;

/// How far apart deprov's clock and a receiver's may be. Receivers commonly allow 60 s to
/// 5 min of leeway when checking `exp`, so a token may be accepted that long after it
/// expired by deprov's clock.
pub const CLOCK_SKEW_MARGIN: Duration = Duration::from_secs(300);

/// How long a retired key stays in the JWKS: the longest a logout token lives plus the
/// clock-skew margin. After that, nothing it signed can still be accepted.
pub fn retired_key_publish_window() -> Duration {
    MAX_LIFETIME + CLOCK_SKEW_MARGIN
}

/// How long a process trusts its cached answer to "which key signs for this algorithm",
/// and "is this pinned key still active". Must stay well below the publish window.
const ACTIVE_KEY_TTL: Duration = Duration::from_secs(30);

/// The actor of the audit records the ring writes on its own (first-start creation).
const SYSTEM_ACTOR: &str = "system";

/// A key as listed (`deprov keys list`): everything but the private key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub status: String,
    pub source: String,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub public_jwk: serde_json::Value,
}

impl From<StoredSigningKey> for KeyInfo {
    fn from(row: StoredSigningKey) -> Self {
        Self {
            kid: row.kid,
            alg: row.alg,
            status: row.status,
            source: row.source,
            created_at: row.created_at,
            retired_at: row.retired_at,
            public_jwk: row.public_jwk,
        }
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rotation {
    pub new: KeyInfo,
    pub retired: Vec<KeyInfo>,
}

#[derive(Default)]
struct Cache {
    /// Decrypted keys by `kid`.
    keys: HashMap<String, Arc<SigningKey>>,
    /// The default key per algorithm, and when that was last read from the store.
    active: HashMap<SigningAlgorithm, (Arc<SigningKey>, Instant)>,
    /// Pinned keys (chosen by `kid`) last seen active, and when.
    pinned: HashMap<String, Instant>,
}

/// The signing keys of one deprov deployment. Cheap to share behind an `Arc`.
pub struct KeyRing {
    store: Store,
    kek: KeyEncryptionKey,
    retired_window: Duration,
    cache: RwLock<Cache>,
    /// Serializes key creation within this process (RSA generation is expensive, and one
    /// key per algorithm is the goal); across processes the unique index decides.
    create: tokio::sync::Mutex<()>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self.cache.read().map(|c| c.keys.len()).unwrap_or_default();
        f.debug_struct("KeyRing")
            .field("store", &self.store.location())
            .field("cached_keys", &cached)
            .field("retired_window", &self.retired_window)
            .finish_non_exhaustive()
    }
}

fn parse_alg(row: &StoredSigningKey) -> Result<SigningAlgorithm, KeyError> {
    SigningAlgorithm::parse(&row.alg)
        .map_err(|e| KeyError::InvalidKey(format!("stored key {}: {e}", row.kid)))
}

impl KeyRing {
    /// Opens the ring over `store`, decrypting every active key now, so that a wrong
    /// key-encryption key stops deprov at start rather than at its first logout.
    pub async fn load(store: Store, kek: KeyEncryptionKey) -> Result<Self, KeyError> {
        let ring = Self {
            store,
            kek,
            retired_window: retired_key_publish_window(),
            cache: RwLock::new(Cache::default()),
            create: tokio::sync::Mutex::new(()),
        };
        for row in ring.store.active_signing_keys().await? {
            ring.open(&row)?;
        }
        Ok(ring)
    }

    /// Changes how long retired keys stay published (tests, and deployments whose
    /// receivers allow more clock skew).
    /// The key-encryption key, for channels that open sealed target secrets and grants.
    pub fn kek(&self) -> &KeyEncryptionKey {
        &self.kek
    }

    pub fn with_retired_publish_window(mut self, window: Duration) -> Self {
        self.retired_window = window;
        self
    }

    fn cache_read(&self) -> std::sync::RwLockReadGuard<'_, Cache> {
        // A panic elsewhere while holding the lock leaves the cache consistent (every
        // update is a single insert), so a poisoned lock is still usable.
        self.cache.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn cache_write(&self) -> std::sync::RwLockWriteGuard<'_, Cache> {
        self.cache.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decrypts (or finds in the cache) the key of a stored row, checking that the private
    /// key matches the row's `kid`.
    fn open(&self, row: &StoredSigningKey) -> Result<Arc<SigningKey>, KeyError> {
        if let Some(key) = self.cache_read().keys.get(&row.kid) {
            return Ok(Arc::clone(key));
        }
        let alg = parse_alg(row)?;
        let pem = self
            .kek
            .open_private_key(&row.kid, alg, &row.private_key_ciphertext)?;
        let key = SigningKey::from_pkcs8_pem(alg, &pem)?;
        if key.kid() != row.kid {
            return Err(KeyError::InvalidKey(format!(
                "stored key {} holds the private key of {}",
                row.kid,
                key.kid()
            )));
        }
        let key = Arc::new(key);
        self.cache_write()
            .keys
            .insert(row.kid.clone(), Arc::clone(&key));
        Ok(key)
    }

    fn remember_active(&self, alg: SigningAlgorithm, key: &Arc<SigningKey>) {
        self.cache_write()
            .active
            .insert(alg, (Arc::clone(key), Instant::now()));
    }

    fn cached_active(&self, alg: SigningAlgorithm) -> Option<Arc<SigningKey>> {
        let cache = self.cache_read();
        let (key, at) = cache.active.get(&alg)?;
        (at.elapsed() < ACTIVE_KEY_TTL).then(|| Arc::clone(key))
    }

    async fn stored_active(
        &self,
        alg: SigningAlgorithm,
    ) -> Result<Option<Arc<SigningKey>>, KeyError> {
        let Some(row) = self.store.active_signing_key(alg).await? else {
            return Ok(None);
        };
        let key = self.open(&row)?;
        self.remember_active(alg, &key);
        Ok(Some(key))
    }

    /// The key deprov signs `alg` tokens with, created (and stored, encrypted) on first
    /// use. Safe to call from several tasks and processes at once: one key results.
    pub async fn ensure_key(&self, alg: SigningAlgorithm) -> Result<Arc<SigningKey>, KeyError> {
        if let Some(key) = self.cached_active(alg) {
            return Ok(key);
        }
        if let Some(key) = self.stored_active(alg).await? {
            return Ok(key);
        }
        let _creating = self.create.lock().await;
        if let Some(key) = self.stored_active(alg).await? {
            return Ok(key);
        }
        let key = generate(alg).await?;
        let new = self.sealed(&key, KeySource::Generated)?;
        match self.store.insert_signing_key(new, SYSTEM_ACTOR).await {
            Ok(_) => {
                tracing::info!(kid = key.kid(), %alg, "created signing key");
                let key = Arc::new(key);
                self.cache_write()
                    .keys
                    .insert(key.kid().to_owned(), Arc::clone(&key));
                self.remember_active(alg, &key);
                Ok(key)
            }
            // Another process stored its key first: use that one.
            Err(StoreError::Conflict(_)) => self.stored_active(alg).await?.ok_or_else(|| {
                KeyError::InvalidKey(format!(
                    "no active {alg} key after losing the race to create one"
                ))
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// [`Self::ensure_key`] for every algorithm in use (at start).
    pub async fn ensure_keys(
        &self,
        algs: impl IntoIterator<Item = SigningAlgorithm>,
    ) -> Result<(), KeyError> {
        for alg in algs {
            self.ensure_key(alg).await?;
        }
        Ok(())
    }

    /// The key to sign a token with: the default key of `alg` (created if needed), or the
    /// key `kid` when a relying party pins one (an imported key, typically). A pinned key
    /// must exist, be active, and be of `alg`.
    pub async fn signer(
        &self,
        alg: SigningAlgorithm,
        kid: Option<&str>,
    ) -> Result<Arc<SigningKey>, KeyError> {
        let Some(kid) = kid else {
            return self.ensure_key(alg).await;
        };
        {
            let cache = self.cache_read();
            if let (Some(seen), Some(key)) = (cache.pinned.get(kid), cache.keys.get(kid))
                && seen.elapsed() < ACTIVE_KEY_TTL
                && key.alg() == alg
            {
                return Ok(Arc::clone(key));
            }
        }
        let row = self
            .store
            .signing_key(kid)
            .await?
            .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))?;
        if row.alg != alg.as_str() {
            return Err(KeyError::AlgorithmMismatch {
                kid: row.kid,
                actual: row.alg,
                requested: alg,
            });
        }
        if row.status != KeyStatus::Active.as_str() {
            self.cache_write().pinned.remove(kid);
            return Err(KeyError::Retired(row.kid));
        }
        let key = self.open(&row)?;
        self.cache_write()
            .pinned
            .insert(kid.to_owned(), Instant::now());
        Ok(key)
    }

    /// Makes a new default key for `alg` and retires the current one, which stays in the
    /// JWKS until the tokens it signed have expired.
    pub async fn rotate(&self, alg: SigningAlgorithm, actor: &str) -> Result<Rotation, KeyError> {
        let _creating = self.create.lock().await;
        let key = generate(alg).await?;
        let new = self.sealed(&key, KeySource::Generated)?;
        let rotated = self.store.rotate_signing_key(new, actor).await?;
        tracing::info!(
            kid = key.kid(),
            %alg,
            retired = ?rotated.retired.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
            "rotated signing key"
        );
        let key = Arc::new(key);
        self.cache_write()
            .keys
            .insert(key.kid().to_owned(), Arc::clone(&key));
        self.remember_active(alg, &key);
        Ok(Rotation {
            new: rotated.new.into(),
            retired: rotated.retired.into_iter().map(KeyInfo::from).collect(),
        })
    }

    /// Stores an operator's private key (PEM; see [`SigningKey::import_pem`]). It signs only
    /// for relying parties that name its `kid`; it is published in deprov's JWKS too.
    pub async fn import_pem(
        &self,
        pem: &str,
        alg: Option<SigningAlgorithm>,
        actor: &str,
    ) -> Result<KeyInfo, KeyError> {
        let key = SigningKey::import_pem(pem, alg)?;
        if self.store.signing_key(key.kid()).await?.is_some() {
            return Err(KeyError::AlreadyStored(key.kid().to_owned()));
        }
        let new = self.sealed(&key, KeySource::Imported)?;
        let row = match self.store.insert_signing_key(new, actor).await {
            Err(StoreError::Conflict(_)) => {
                return Err(KeyError::AlreadyStored(key.kid().to_owned()));
            }
            other => other?,
        };
        self.cache_write()
            .keys
            .insert(key.kid().to_owned(), Arc::new(key));
        Ok(row.into())
    }

    /// Retires one key (no successor is made; the next token of its algorithm creates one
    /// if it was the default key).
    pub async fn retire(&self, kid: &str, actor: &str) -> Result<KeyInfo, KeyError> {
        let row = self
            .store
            .retire_signing_key(kid, actor)
            .await
            .map_err(|e| match e {
                StoreError::NotFound(_) => KeyError::UnknownKey(kid.to_owned()),
                other => other.into(),
            })?;
        let mut cache = self.cache_write();
        cache.pinned.remove(kid);
        cache.active.retain(|_, (key, _)| key.kid() != kid);
        Ok(row.into())
    }

    /// A key's private half in PKCS#8 PEM, for installing it at the application's OP.
    /// Audited.
    pub async fn export_private_pem(
        &self,
        kid: &str,
        actor: &str,
    ) -> Result<Zeroizing<String>, KeyError> {
        let row = self
            .store
            .signing_key(kid)
            .await?
            .ok_or_else(|| KeyError::UnknownKey(kid.to_owned()))?;
        let key = self.open(&row)?;
        self.store.record_signing_key_export(kid, actor).await?;
        Ok(key.private_pkcs8_pem())
    }

    /// Every key, oldest first, without private halves.
    pub async fn list(&self) -> Result<Vec<KeyInfo>, KeyError> {
        Ok(self
            .store
            .list_signing_keys()
            .await?
            .into_iter()
            .map(KeyInfo::from)
            .collect())
    }

    /// The JWKS to publish: every active key and every key retired within the publish
    /// window, newest first. Read from the store each time, so a rotation by another
    /// process shows at once.
    pub async fn jwks(&self) -> Result<Jwks, KeyError> {
        let window = i64::try_from(self.retired_window.as_millis()).unwrap_or(i64::MAX);
        let rows = self.store.signing_keys_to_publish(window).await?;
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            match serde_json::from_value::<PublicJwk>(row.public_jwk) {
                Ok(jwk) => keys.push(jwk),
                Err(e) => {
                    tracing::error!(kid = row.kid, error = %e, "stored public JWK is malformed; not published")
                }
            }
        }
        Ok(Jwks { keys })
    }

    /// The algorithms of the published keys, for `id_token_signing_alg_values_supported`.
    pub async fn published_algorithms(&self) -> Result<Vec<SigningAlgorithm>, KeyError> {
        let jwks = self.jwks().await?;
        Ok(SigningAlgorithm::ALL
            .into_iter()
            .filter(|alg| jwks.keys.iter().any(|k| k.alg == alg.as_str()))
            .collect())
    }

    fn sealed(&self, key: &SigningKey, source: KeySource) -> Result<NewSigningKey, KeyError> {
        let public_jwk =
            serde_json::to_value(key.public_jwk()).map_err(|e| KeyError::Encode(e.to_string()))?;
        let ciphertext =
            self.kek
                .seal_private_key(key.kid(), key.alg(), &key.private_pkcs8_pem())?;
        Ok(NewSigningKey {
            kid: key.kid().to_owned(),
            alg: key.alg(),
            source,
            public_jwk,
            private_key_ciphertext: ciphertext,
        })
    }
}

/// Generates off the async runtime: RSA key generation takes long enough to stall it.
async fn generate(alg: SigningAlgorithm) -> Result<SigningKey, KeyError> {
    tokio::task::spawn_blocking(move || SigningKey::generate(alg))
        .await
        .map_err(|e| KeyError::Task(e.to_string()))?
}
