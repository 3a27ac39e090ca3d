//! The key-encryption key (KEK): 32 bytes under which every private signing key is stored,
//! with AES-256-GCM.
//!
//! It comes from `DEPROV_KEY_ENCRYPTION_KEY` (base64 of 32 random bytes, e.g.
//! `openssl rand -base64 32`), or, when that is unset, from a key file `deprov.key` that
//! deprov creates beside the database on first start. The file is the zero-configuration
//! fallback: whoever copies the data directory gets both the ciphertexts and their key, so
//! deprov warns every time it uses one.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::{DecodePaddingMode, general_purpose};
use deprov_core::SigningAlgorithm;
use deprov_store::DatabaseLocation;
use zeroize::Zeroizing;

use super::KeyError;

/// The environment setting that carries the KEK.
pub const KEK_ENV: &str = "DEPROV_KEY_ENCRYPTION_KEY";
/// The key file's name, beside the SQLite database (or in the working directory).
pub const KEY_FILE_NAME: &str = "deprov.key";

const KEK_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A key file is one line of base64; anything much longer is not ours.
const KEY_FILE_MAX_LEN: u64 = 256;

const LENIENT: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const STANDARD_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
const URL_SAFE_LENIENT: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);

/// 32 secret bytes. `Debug` never shows them; they are wiped from memory on drop.
#[derive(Clone)]
pub struct KeyEncryptionKey(Zeroizing<[u8; KEK_LEN]>);

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyEncryptionKey([redacted])")
    }
}

/// Where the KEK in use came from, for the startup log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KekSource {
    /// `DEPROV_KEY_ENCRYPTION_KEY`.
    Environment,
    /// A key file that already existed.
    KeyFile(PathBuf),
    /// A key file created just now (first start).
    CreatedKeyFile(PathBuf),
}

impl KeyEncryptionKey {
    /// A fresh random KEK.
    pub fn generate() -> Result<Self, KeyError> {
        let mut bytes = Zeroizing::new([0u8; KEK_LEN]);
        getrandom::fill(bytes.as_mut_slice()).map_err(|e| KeyError::Random(e.to_string()))?;
        Ok(Self(bytes))
    }

    /// Parses base64 (standard or URL-safe alphabet, padding optional) of exactly 32 bytes.
    /// Errors name `origin` (the setting or file) and never echo the value.
    pub fn from_base64(value: &str, origin: &str) -> Result<Self, KeyError> {
        let value = value.trim();
        let invalid = |reason: String| KeyError::InvalidKek {
            origin: origin.to_owned(),
            reason,
        };
        if value.is_empty() {
            return Err(invalid(
                "it is empty; expected base64 of 32 random bytes (openssl rand -base64 32)"
                    .to_owned(),
            ));
        }
        let decoded = Zeroizing::new(
            STANDARD_LENIENT
                .decode(value)
                .or_else(|_| URL_SAFE_LENIENT.decode(value))
                .map_err(|_| {
                    invalid(
                        "it is not base64; expected base64 of 32 random bytes \
                         (openssl rand -base64 32)"
                            .to_owned(),
                    )
                })?,
        );
        let bytes: [u8; KEK_LEN] = decoded.as_slice().try_into().map_err(|_| {
            invalid(format!(
                "it decodes to {} bytes; it must be exactly {KEK_LEN} (openssl rand -base64 32)",
                decoded.len()
            ))
        })?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// The KEK from `DEPROV_KEY_ENCRYPTION_KEY`'s value, as [`Self::from_base64`].
    pub fn from_env_value(value: &str) -> Result<Self, KeyError> {
        Self::from_base64(value, KEK_ENV)
    }

    /// The KEK in base64 (standard alphabet), for writing a key file. Handle as a secret.
    fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(general_purpose::STANDARD.encode(self.0.as_slice()))
    }

    /// The KEK to use: `DEPROV_KEY_ENCRYPTION_KEY` when set (`env_value`), else the key file
    /// at `key_file` (created when missing), with a warning that it lives beside the data.
    pub fn resolve(
        env_value: Option<&str>,
        key_file: &Path,
    ) -> Result<(Self, KekSource), KeyError> {
        if let Some(value) = env_value.filter(|v| !v.trim().is_empty()) {
            return Ok((Self::from_env_value(value)?, KekSource::Environment));
        }
        let (kek, created) = Self::load_or_create_file(key_file)?;
        tracing::warn!(
            path = %key_file.display(),
            created,
            "signing keys are encrypted under a key file stored beside the data: anyone who \
             copies both can sign logout tokens. Set {KEK_ENV} from a secret store instead \
             (its value is the file's content)"
        );
        let source = if created {
            KekSource::CreatedKeyFile(key_file.to_owned())
        } else {
            KekSource::KeyFile(key_file.to_owned())
        };
        Ok((kek, source))
    }

    /// Loads the key file, or creates it (mode 0600) when it does not exist. Returns whether
    /// it was created.
    ///
    /// Creation is atomic and never replaces a file: the key is written to a temporary file
    /// (created with mode 0600, so it is never readable by others, not even for an instant),
    /// flushed to disk, then hard-linked to its final name, which fails if the name exists.
    /// Two processes starting together thus end up with the same key — the loser of the
    /// race reads the winner's file — instead of one silently overwriting the key the other
    /// already encrypted with (a plain rename would replace it).
    pub fn load_or_create_file(path: &Path) -> Result<(Self, bool), KeyError> {
        match Self::load_file(path) {
            Ok(kek) => return Ok((kek, false)),
            Err(KeyError::KeyFileIo { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            }
            Err(e) => return Err(e),
        }
        let kek = Self::generate()?;
        match write_new_key_file(path, &kek.to_base64()) {
            Ok(()) => Ok((kek, true)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok((Self::load_file(path)?, false))
            }
            Err(source) => Err(KeyError::KeyFileIo {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Loads an existing key file, refusing one that group or others may read or write,
    /// and one that does not hold exactly 32 bytes in base64.
    pub fn load_file(path: &Path) -> Result<Self, KeyError> {
        let io_err = |source| KeyError::KeyFileIo {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let meta = file.metadata().map_err(io_err)?;
        if !meta.is_file() {
            return Err(KeyError::KeyFileUnsafe {
                path: path.to_owned(),
                reason: "it is not a regular file".to_owned(),
            });
        }
        check_permissions(path, &meta)?;
        if meta.len() > KEY_FILE_MAX_LEN {
            return Err(KeyError::InvalidKek {
                origin: format!("key file {}", path.display()),
                reason: format!(
                    "it is {} bytes long; a key file is one line of base64",
                    meta.len()
                ),
            });
        }
        let mut content = Zeroizing::new(String::new());
        file.take(KEY_FILE_MAX_LEN)
            .read_to_string(&mut content)
            .map_err(io_err)?;
        Self::from_base64(&content, &format!("key file {}", path.display()))
    }

    /// Encrypts with AES-256-GCM under a fresh random 96-bit nonce; returns
    /// `nonce || ciphertext || tag`. `aad` is authenticated, not stored.
    pub fn encrypt(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, KeyError> {
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice())
            .map_err(|_| KeyError::Encrypt("invalid key length".to_owned()))?;
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|e| KeyError::Random(e.to_string()))?;
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            .map_err(|_| KeyError::Encrypt("AES-GCM refused the input".to_owned()))?;
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Reverses [`Self::encrypt`]. Fails when the KEK differs, the bytes were altered, or
    /// `aad` differs from the one used to encrypt.
    pub fn decrypt(&self, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(KeyError::Decrypt);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| KeyError::Decrypt)?;
        let cipher = Aes256Gcm::new_from_slice(self.0.as_slice()).map_err(|_| KeyError::Decrypt)?;
        cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| KeyError::Decrypt)
    }

    /// Encrypts a private key (PKCS#8 PEM) bound to its `kid` and `alg`: the ciphertext of
    /// one row cannot be moved to another row and decrypt.
    pub fn seal_private_key(
        &self,
        kid: &str,
        alg: SigningAlgorithm,
        pkcs8_pem: &str,
    ) -> Result<Vec<u8>, KeyError> {
        self.encrypt(pkcs8_pem.as_bytes(), &private_key_aad(kid, alg))
    }

    /// Decrypts what [`Self::seal_private_key`] made for this `kid` and `alg`.
    pub fn open_private_key(
        &self,
        kid: &str,
        alg: SigningAlgorithm,
        sealed: &[u8],
    ) -> Result<Zeroizing<String>, KeyError> {
        let clear = self
            .decrypt(sealed, &private_key_aad(kid, alg))
            .map_err(|_| KeyError::DecryptKey {
                kid: kid.to_owned(),
            })?;
        let text = std::str::from_utf8(&clear).map_err(|_| KeyError::DecryptKey {
            kid: kid.to_owned(),
        })?;
        Ok(Zeroizing::new(text.to_owned()))
    }
}

/// The associated data of a stored private key: a label, its `kid` and its `alg`, separated
/// by NUL (which neither contains).
fn private_key_aad(kid: &str, alg: SigningAlgorithm) -> Vec<u8> {
    let mut aad = b"deprov.signing_key.v1\0".to_vec();
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(alg.as_str().as_bytes());
    aad
}

/// Where the key file lives when `DEPROV_KEY_ENCRYPTION_KEY` is unset: beside a SQLite
/// database; in the working directory for PostgreSQL. (Several processes sharing one
/// PostgreSQL must share the KEK: set `DEPROV_KEY_ENCRYPTION_KEY` for them.)
pub fn key_file_path(location: &DatabaseLocation) -> PathBuf {
    match location {
        DatabaseLocation::Sqlite(db) => db
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(
                || PathBuf::from(KEY_FILE_NAME),
                |dir| dir.join(KEY_FILE_NAME),
            ),
        DatabaseLocation::Postgres(_) => PathBuf::from(KEY_FILE_NAME),
    }
}

#[cfg(unix)]
fn check_permissions(path: &Path, meta: &fs::Metadata) -> Result<(), KeyError> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::KeyFileUnsafe {
            path: path.to_owned(),
            reason: format!(
                "its mode is {mode:04o}, so group or others can reach it; run chmod 600 {}",
                path.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path, _meta: &fs::Metadata) -> Result<(), KeyError> {
    Ok(())
}

fn write_new_key_file(path: &Path, content: &str) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{KEY_FILE_NAME}.{}.tmp",
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp)?;
        file.write_all(content.as_bytes())?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        fs::hard_link(&tmp, path)?;
        // Make the new name durable too.
        #[cfg(unix)]
        File::open(&dir)?.sync_all()?;
        Ok(())
    })();
    let _ = fs::remove_file(&tmp);
    result
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    const B64_32: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn accepts_standard_and_url_safe_base64_with_or_without_padding() {
        let bytes: Vec<u8> = (0u8..32).collect();
        for value in [
            B64_32.to_owned(),
            B64_32.trim_end_matches('=').to_owned(),
            base64::engine::general_purpose::URL_SAFE.encode(&bytes),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfbu8; 32]),
            format!("  {B64_32}\n"),
        ] {
            assert!(KeyEncryptionKey::from_env_value(&value).is_ok(), "{value}");
        }
        let kek = KeyEncryptionKey::from_env_value(B64_32).unwrap();
        assert_eq!(kek.0.as_slice(), bytes.as_slice());
    }

    #[test]
    fn refuses_bad_values_naming_the_setting_and_never_echoing_them() {
        let short = general_purpose::STANDARD.encode([7u8; 16]);
        let cases = [
            ("", "empty"),
            ("not base64 at all!!", "not base64"),
            (short.as_str(), "decodes to 16 bytes"),
        ];
        for (value, expected) in cases {
            let err = KeyEncryptionKey::from_env_value(value)
                .unwrap_err()
                .to_string();
            assert!(err.contains(KEK_ENV), "{err}");
            assert!(err.contains(expected), "{err}");
            if !value.is_empty() {
                assert!(!err.contains(value), "the value leaked: {err}");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let kek = KeyEncryptionKey::from_env_value(B64_32).unwrap();
        let shown = format!("{kek:?}");
        assert_eq!(shown, "KeyEncryptionKey([redacted])");
    }

    #[test]
    fn aes_gcm_round_trips_with_a_fresh_nonce_each_time() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let a = kek.encrypt(b"secret", b"aad").unwrap();
        let b = kek.encrypt(b"secret", b"aad").unwrap();
        assert_ne!(a[..NONCE_LEN], b[..NONCE_LEN], "nonce reused");
        assert_eq!(a.len(), NONCE_LEN + 6 + TAG_LEN);
        assert_eq!(kek.decrypt(&a, b"aad").unwrap().as_slice(), b"secret");
        assert_eq!(kek.decrypt(&b, b"aad").unwrap().as_slice(), b"secret");
    }

    #[test]
    fn any_altered_byte_fails_decryption() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let sealed = kek.encrypt(b"the private key", b"aad").unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(kek.decrypt(&tampered, b"aad").is_err(), "byte {i}");
        }
        assert!(kek.decrypt(&sealed[..sealed.len() - 1], b"aad").is_err());
        assert!(kek.decrypt(&sealed[..10], b"aad").is_err());
    }

    #[test]
    fn a_ciphertext_cannot_move_to_another_row_or_algorithm() {
        let kek = KeyEncryptionKey::generate().unwrap();
        let sealed = kek
            .seal_private_key("kid-a", SigningAlgorithm::RS256, "pem")
            .unwrap();
        assert_eq!(
            kek.open_private_key("kid-a", SigningAlgorithm::RS256, &sealed)
                .unwrap()
                .as_str(),
            "pem"
        );
        let swapped_kid = kek.open_private_key("kid-b", SigningAlgorithm::RS256, &sealed);
        assert!(matches!(swapped_kid, Err(KeyError::DecryptKey { ref kid }) if kid == "kid-b"));
        assert!(
            kek.open_private_key("kid-a", SigningAlgorithm::ES256, &sealed)
                .is_err()
        );
    }

    #[test]
    fn another_kek_cannot_decrypt_and_says_so() {
        let sealed = KeyEncryptionKey::generate()
            .unwrap()
            .seal_private_key("kid-a", SigningAlgorithm::EdDSA, "pem")
            .unwrap();
        let err = KeyEncryptionKey::generate()
            .unwrap()
            .open_private_key("kid-a", SigningAlgorithm::EdDSA, &sealed)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kid-a"), "{err}");
        assert!(err.contains(KEK_ENV), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_0600_then_reloaded_identically() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let (first, created) = KeyEncryptionKey::load_or_create_file(&path).unwrap();
        assert!(created);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (second, created) = KeyEncryptionKey::load_or_create_file(&path).unwrap();
        assert!(!created);
        assert_eq!(first.0.as_slice(), second.0.as_slice());
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(KEY_FILE_NAME)]);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_readable_by_others_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        KeyEncryptionKey::load_or_create_file(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyEncryptionKey::load_or_create_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("0644"), "{err}");
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn key_file_of_the_wrong_length_is_refused() {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .unwrap();
        f.write_all(general_purpose::STANDARD.encode([1u8; 31]).as_bytes())
            .unwrap();
        drop(f);
        let err = KeyEncryptionKey::load_or_create_file(&path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("decodes to 31 bytes"), "{err}");
        assert!(err.contains(&path.display().to_string()), "{err}");
    }

    #[test]
    fn environment_wins_over_the_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let (kek, source) = KeyEncryptionKey::resolve(Some(B64_32), &path).unwrap();
        assert_eq!(source, KekSource::Environment);
        assert_eq!(kek.0[31], 31);
        assert!(
            !path.exists(),
            "no key file when the environment provides the KEK"
        );
        let (_, source) = KeyEncryptionKey::resolve(None, &path).unwrap();
        assert_eq!(source, KekSource::CreatedKeyFile(path.clone()));
        let (_, source) = KeyEncryptionKey::resolve(Some("  "), &path).unwrap();
        assert_eq!(source, KekSource::KeyFile(path));
    }

    #[test]
    fn key_file_sits_beside_a_sqlite_database() {
        let loc = DatabaseLocation::parse("sqlite:///var/lib/deprov/deprov.db").unwrap();
        assert_eq!(
            key_file_path(&loc),
            PathBuf::from("/var/lib/deprov/deprov.key")
        );
        let loc = DatabaseLocation::parse("sqlite://deprov.db").unwrap();
        assert_eq!(key_file_path(&loc), PathBuf::from("deprov.key"));
    }
}
