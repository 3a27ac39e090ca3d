//! The [`jsonwebtoken`] crypto provider deprov installs: it signs with *ring*, using keys
//! parsed once, and leaves everything else (verification, JWK helpers, keys it does not
//! hold) to jsonwebtoken's RustCrypto provider.
//!
//! jsonwebtoken asks its provider for a signer on every `encode`, handing it only the key's
//! DER bytes; the RustCrypto provider parses those bytes each time, which for RSA costs
//! more than the signature (about 450 RS256 tokens per second per core). A mass
//! de-provisioning signs one token per relying party per user, so here each
//! [`SigningKey`](super::SigningKey) registers its parsed key under the SHA-256 of its
//! [`EncodingKey`] bytes when it is built, and the signer is found by that digest.
//!
//! Signatures: RS256 is RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3); ES256 is ECDSA
//! P-256 with SHA-256 in the fixed-width `R || S` form JWS requires (RFC 7518 §3.4); EdDSA
//! is Ed25519 (RFC 8037 §3.1).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use ::ring::rand::SystemRandom;
use ::ring::signature::{self as ring_sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, rust_crypto};
use jsonwebtoken::{Algorithm, EncodingKey};
use sha2::{Digest as _, Sha256};

/// A private key in *ring*'s form.
pub(super) enum ParsedKey {
    Rs256(RsaKeyPair),
    Es256(EcdsaKeyPair),
    EdDsa(Ed25519KeyPair),
}

impl ParsedKey {
    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rs256(_) => Algorithm::RS256,
            Self::Es256(_) => Algorithm::ES256,
            Self::EdDsa(_) => Algorithm::EdDSA,
        }
    }

    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, ::ring::error::Unspecified> {
        match self {
            Self::Rs256(key) => {
                let mut signature = vec![0; key.public().modulus_len()];
                key.sign(&ring_sig::RSA_PKCS1_SHA256, rng(), message, &mut signature)?;
                Ok(signature)
            }
            Self::Es256(key) => Ok(key.sign(rng(), message)?.as_ref().to_vec()),
            Self::EdDsa(key) => Ok(key.sign(message).as_ref().to_vec()),
        }
    }

    /// An RSA key from its PKCS#8 DER. `None` when *ring* refuses it (it takes 2048 to
    /// 8192 bits, as deprov does): the key then signs through the RustCrypto provider.
    pub(super) fn rsa(pkcs8_der: &[u8]) -> Option<Self> {
        RsaKeyPair::from_pkcs8(pkcs8_der).ok().map(Self::Rs256)
    }

    /// A P-256 key from its private scalar and uncompressed public point.
    pub(super) fn p256(scalar: &[u8], public_point: &[u8]) -> Option<Self> {
        EcdsaKeyPair::from_private_key_and_public_key(
            &ring_sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            scalar,
            public_point,
            rng(),
        )
        .ok()
        .map(Self::Es256)
    }

    /// An Ed25519 key from its seed and public key.
    pub(super) fn ed25519(seed: &[u8], public_key: &[u8]) -> Option<Self> {
        Ed25519KeyPair::from_seed_and_public_key(seed, public_key)
            .ok()
            .map(Self::EdDsa)
    }
}

fn rng() -> &'static SystemRandom {
    static RNG: OnceLock<SystemRandom> = OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

type Registry = RwLock<HashMap<[u8; 32], Arc<ParsedKey>>>;

fn registry() -> &'static Registry {
    static KEYS: OnceLock<Registry> = OnceLock::new();
    KEYS.get_or_init(Registry::default)
}

fn digest(key: &EncodingKey) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Makes `parsed` the signer of `encoding`, and installs the provider if no provider is
/// installed yet. Keys are few (one per algorithm, plus rotations), so none is removed.
pub(super) fn register(encoding: &EncodingKey, parsed: ParsedKey) {
    install();
    let mut keys = registry()
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    keys.insert(digest(encoding), Arc::new(parsed));
}

/// Installs the provider for the process. When another provider was installed first,
/// tokens are still signed correctly, by that provider.
fn install() {
    static PROVIDER: OnceLock<CryptoProvider> = OnceLock::new();
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let provider = PROVIDER.get_or_init(|| CryptoProvider {
            signer_factory: new_signer,
            ..rust_crypto::DEFAULT_PROVIDER.clone()
        });
        if provider.install_default().is_err() {
            tracing::debug!("a jsonwebtoken crypto provider was already installed; using it");
        }
    });
}

fn new_signer(
    alg: &Algorithm,
    key: &EncodingKey,
) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    let found = registry()
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&digest(key))
        .cloned();
    match found {
        Some(parsed) if parsed.algorithm() == *alg => Ok(Box::new(RingSigner(parsed))),
        _ => (rust_crypto::DEFAULT_PROVIDER.signer_factory)(alg, key),
    }
}

struct RingSigner(Arc<ParsedKey>);

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        self.0.sign(message).map_err(|_| signature::Error::new())
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.0.algorithm()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test
mod tests {
    use deprov_core::SigningAlgorithm;

    use super::*;
    use crate::keys::SigningKey;

    /// Every generated key signs through *ring*: its parsed form is registered under the
    /// digest jsonwebtoken will hand the provider, for the right algorithm. (That the
    /// signatures verify is tested with independent verifiers in logout_token.rs.)
    #[test]
    fn generated_keys_sign_with_ring() {
        for alg in [
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
        ] {
            let key = SigningKey::generate(alg).unwrap();
            let signer = new_signer(&alg_of(alg), key.encoding_key()).unwrap();
            assert_eq!(signer.algorithm(), alg_of(alg));
            let parsed = registry()
                .read()
                .unwrap()
                .get(&digest(key.encoding_key()))
                .cloned()
                .expect("registered");
            assert_eq!(parsed.algorithm(), alg_of(alg));
            assert!(CryptoProvider::try_get_default().is_some());
        }
    }

    fn alg_of(alg: SigningAlgorithm) -> Algorithm {
        match alg {
            SigningAlgorithm::RS256 => Algorithm::RS256,
            SigningAlgorithm::ES256 => Algorithm::ES256,
            SigningAlgorithm::EdDSA => Algorithm::EdDSA,
        }
    }
}
