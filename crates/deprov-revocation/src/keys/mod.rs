//! Signing keys and the JWKS.
//!
//! - [`KeyEncryptionKey`]: the 32-byte key under which private keys are stored (AES-256-GCM),
//!   from `DEPROV_KEY_ENCRYPTION_KEY` or a `deprov.key` file beside the database.
//! - [`SigningKey`]: an RS256, ES256 or EdDSA key with its RFC 7638 `kid` and public JWK;
//!   generated, or imported from an operator's PEM.
//! - [`KeyRing`]: the keys in the store: created on first use per algorithm, rotated with
//!   overlap, published as a JWKS, and handed out for signing.
//! - [`sealed`]: secrets inside a target's config JSON, sealed under the KEK.

mod jwk;
mod jws_provider;
mod kek;
mod ring;
pub mod sealed;
mod signing_key;

use std::io;
use std::path::PathBuf;

use deprov_core::SigningAlgorithm;
use deprov_store::StoreError;

pub use jwk::{Jwks, PublicJwk};
pub use kek::{KEK_ENV, KEY_FILE_NAME, KekSource, KeyEncryptionKey, key_file_path};
pub use ring::{CLOCK_SKEW_MARGIN, KeyInfo, KeyRing, Rotation, retired_key_publish_window};
pub use sealed::{
    open_grant, open_target_secret, open_target_secret_str, seal_grant, seal_target_secret,
};
pub use signing_key::{RSA_BITS, SigningKey};

#[cfg(test)]
pub(crate) use signing_key::tests as test_keys;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{origin} is not a usable key-encryption key: {reason}")]
    InvalidKek { origin: String, reason: String },
    #[error("key file {path}: {source}")]
    KeyFileIo {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("refusing the key file {path}: {reason}")]
    KeyFileUnsafe { path: PathBuf, reason: String },
    #[error("the operating system's random number generator failed: {0}")]
    Random(String),
    #[error("encryption failed: {0}")]
    Encrypt(String),
    #[error("decryption failed: wrong key-encryption key, or altered data")]
    Decrypt,
    #[error(
        "cannot decrypt signing key {kid}: the key-encryption key is not the one it was \
         stored under (did {KEK_ENV} or the {KEY_FILE_NAME} file change?), or the stored \
         key was altered"
    )]
    DecryptKey { kid: String },
    #[error("invalid key: {0}")]
    InvalidKey(String),
    #[error("cannot encode the key: {0}")]
    Encode(String),
    #[error("no signing key {0:?}")]
    UnknownKey(String),
    #[error("signing key {kid} signs {actual}, not {requested}")]
    AlgorithmMismatch {
        kid: String,
        actual: String,
        requested: SigningAlgorithm,
    },
    #[error("signing key {0} is retired and signs nothing more")]
    Retired(String),
    #[error("signing key {0} is already stored")]
    AlreadyStored(String),
    #[error("the key generation task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}
