//! Asymmetric signing keys: generation (RSA 2048, P-256, Ed25519), import of an operator's
//! PEM, export as PKCS#8 PEM, the public JWK and the `kid`.
//!
//! A key is held as its PKCS#8 PEM (the form stored, encrypted, and the form jsonwebtoken
//! reads), plus the jsonwebtoken [`EncodingKey`] built from it once, whose signer
//! ([`super::jws_provider`]) is parsed once too, so signing a token parses nothing.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use deprov_core::SigningAlgorithm;
use ed25519_dalek::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _};
use jsonwebtoken::EncodingKey;
use p256::elliptic_curve::Generate as _;
use p256::elliptic_curve::sec1::ToSec1Point as _;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs8;
use rsa::traits::PublicKeyParts as _;
use zeroize::Zeroizing;

use super::KeyError;
use super::jwk::PublicJwk;
use super::jws_provider::{self, ParsedKey};

/// The modulus size of generated RSA keys. RFC 7518 §3.3 requires at least 2048 bits.
pub const RSA_BITS: usize = 2048;
/// Imported RSA keys must have at least this many bits (RFC 7518 §3.3)…
const RSA_MIN_BITS: usize = 2048;
/// …and at most this many (larger keys make every signature needlessly slow).
const RSA_MAX_BITS: usize = 8192;

const LF: pkcs8::LineEnding = pkcs8::LineEnding::LF;

/// A private signing key with its `kid`. `Debug` shows only the `kid` and `alg`.
pub struct SigningKey {
    kid: String,
    alg: SigningAlgorithm,
    pkcs8_pem: Zeroizing<String>,
    jwk: PublicJwk,
    encoding: EncodingKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn random_error(e: impl fmt::Display) -> KeyError {
    KeyError::Random(e.to_string())
}

impl SigningKey {
    /// Generates a new key: RSA 2048 for RS256, P-256 for ES256, Ed25519 for EdDSA.
    /// RSA generation takes a noticeable fraction of a second: call it off the async runtime
    /// (`spawn_blocking`).
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let pem = match alg {
            SigningAlgorithm::RS256 => {
                let key =
                    rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS).map_err(random_error)?;
                pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LF)
            }
            SigningAlgorithm::ES256 => {
                let key = p256::SecretKey::try_generate_from_rng(&mut getrandom::SysRng)
                    .map_err(random_error)?;
                p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LF)
            }
            SigningAlgorithm::EdDSA => {
                let mut seed = Zeroizing::new([0u8; 32]);
                getrandom::fill(seed.as_mut_slice()).map_err(random_error)?;
                ed25519_dalek::SigningKey::from_bytes(&seed).to_pkcs8_pem(LF)
            }
        }
        .map_err(|e| KeyError::Encode(e.to_string()))?;
        Self::from_pkcs8_pem(alg, &pem)
    }

    /// A key from its PKCS#8 PEM (as stored), for the given algorithm.
    pub fn from_pkcs8_pem(alg: SigningAlgorithm, pem: &str) -> Result<Self, KeyError> {
        let invalid = |e: &dyn fmt::Display| {
            KeyError::InvalidKey(format!("not a PKCS#8 {} key: {e}", family(alg)))
        };
        let (jwk, encoding, parsed) = match alg {
            SigningAlgorithm::RS256 => {
                let key = <rsa::PrivateKey as pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
                    .map_err(|e| invalid(&e))?;
                check_rsa_size(&key)?;
                let parsed = pkcs8::EncodePrivateKey::to_pkcs8_der(&key)
                    .ok()
                    .and_then(|der| ParsedKey::rsa(der.as_bytes()));
                let jwk = PublicJwk {
                    kty: "RSA".into(),
                    kid: String::new(),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    n: Some(b64(&key.n_bytes())),
                    e: Some(b64(&key.e_bytes())),
                    crv: None,
                    x: None,
                    y: None,
                };
                (jwk, EncodingKey::from_rsa_pem(pem.as_bytes()), parsed)
            }
            SigningAlgorithm::ES256 => {
                let key = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem)
                    .map_err(|e| invalid(&e))?;
                let point = key.public_key().to_sec1_point(false);
                let parsed = ParsedKey::p256(&Zeroizing::new(key.to_bytes()), point.as_bytes());
                let (Some(x), Some(y)) = (point.x(), point.y()) else {
                    return Err(KeyError::InvalidKey(
                        "the P-256 public key has no affine coordinates".into(),
                    ));
                };
                let jwk = PublicJwk {
                    kty: "EC".into(),
                    kid: String::new(),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    n: None,
                    e: None,
                    crv: Some("P-256".into()),
                    x: Some(b64(x)),
                    y: Some(b64(y)),
                };
                (jwk, EncodingKey::from_ec_pem(pem.as_bytes()), parsed)
            }
            SigningAlgorithm::EdDSA => {
                let key =
                    ed25519_dalek::SigningKey::from_pkcs8_pem(pem).map_err(|e| invalid(&e))?;
                let parsed = ParsedKey::ed25519(
                    &Zeroizing::new(key.to_bytes())[..],
                    key.verifying_key().as_bytes(),
                );
                let jwk = PublicJwk {
                    kty: "OKP".into(),
                    kid: String::new(),
                    use_: "sig".into(),
                    alg: alg.as_str().into(),
                    n: None,
                    e: None,
                    crv: Some("Ed25519".into()),
                    x: Some(b64(key.verifying_key().as_bytes())),
                    y: None,
                };
                (jwk, EncodingKey::from_ed_pem(pem.as_bytes()), parsed)
            }
        };
        let encoding = encoding
            .map_err(|e| KeyError::InvalidKey(format!("jsonwebtoken refused the key: {e}")))?;
        if let Some(parsed) = parsed {
            jws_provider::register(&encoding, parsed);
        }
        let kid = jwk
            .thumbprint()
            .ok_or_else(|| KeyError::InvalidKey("incomplete public key".into()))?;
        Ok(Self {
            jwk: PublicJwk {
                kid: kid.clone(),
                ..jwk
            },
            kid,
            alg,
            pkcs8_pem: Zeroizing::new(pem.to_owned()),
            encoding,
        })
    }

    /// Imports an operator's private key in PEM: PKCS#8 (`PRIVATE KEY`: RSA, P-256 or
    /// Ed25519), PKCS#1 (`RSA PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`, P-256; an
    /// `EC PARAMETERS` block before it is skipped). The algorithm follows from the key;
    /// `expected`, when given, must agree with it.
    pub fn import_pem(pem: &str, expected: Option<SigningAlgorithm>) -> Result<Self, KeyError> {
        let (label, block) = first_private_key_block(pem)?;
        let (alg, pkcs8_pem) = match label {
            "PRIVATE KEY" => pkcs8_alg(block)
                .map(|alg| (alg, Zeroizing::new(block.to_owned())))
                .ok_or_else(|| {
                    KeyError::InvalidKey(
                        "the PKCS#8 key is none of RSA, P-256 (ES256) or Ed25519 (EdDSA)".into(),
                    )
                })?,
            "RSA PRIVATE KEY" => {
                let key = rsa::PrivateKey::from_pkcs1_pem(block).map_err(|e| {
                    KeyError::InvalidKey(format!("not a PKCS#1 RSA private key: {e}"))
                })?;
                let pem = pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LF)
                    .map_err(|e| KeyError::Encode(e.to_string()))?;
                (SigningAlgorithm::RS256, pem)
            }
            "EC PRIVATE KEY" => {
                let key = p256::SecretKey::from_sec1_pem(block).map_err(|e| {
                    KeyError::InvalidKey(format!(
                        "not a SEC1 P-256 private key (ES256 needs curve P-256): {e}"
                    ))
                })?;
                let pem = p256::pkcs8::EncodePrivateKey::to_pkcs8_pem(&key, LF)
                    .map_err(|e| KeyError::Encode(e.to_string()))?;
                (SigningAlgorithm::ES256, pem)
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(KeyError::InvalidKey(
                    "the key is encrypted; decrypt it first \
                     (openssl pkcs8 -in key.pem -out plain.pem)"
                        .into(),
                ));
            }
            other => {
                return Err(KeyError::InvalidKey(format!(
                    "a {other} block is not a private key; import the private key \
                     (PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
                )));
            }
        };
        if let Some(expected) = expected
            && expected != alg
        {
            return Err(KeyError::InvalidKey(format!(
                "the PEM holds a {} key, which signs {alg}, not {expected}",
                family(alg)
            )));
        }
        Self::from_pkcs8_pem(alg, &pkcs8_pem)
    }

    /// The RFC 7638 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn alg(&self) -> SigningAlgorithm {
        self.alg
    }

    /// The public key to publish, with `kid`, `use: "sig"` and `alg`.
    pub fn public_jwk(&self) -> &PublicJwk {
        &self.jwk
    }

    /// The private key in PKCS#8 PEM, to encrypt for storage or to hand to an operator who
    /// installs it at the application's OP. Handle as a secret.
    pub fn private_pkcs8_pem(&self) -> Zeroizing<String> {
        self.pkcs8_pem.clone()
    }

    pub(crate) fn encoding_key(&self) -> &EncodingKey {
        &self.encoding
    }
}

fn family(alg: SigningAlgorithm) -> &'static str {
    match alg {
        SigningAlgorithm::RS256 => "RSA",
        SigningAlgorithm::ES256 => "P-256",
        SigningAlgorithm::EdDSA => "Ed25519",
    }
}

fn check_rsa_size(key: &rsa::PrivateKey) -> Result<(), KeyError> {
    let bits = key.size() * 8;
    if !(RSA_MIN_BITS..=RSA_MAX_BITS).contains(&bits) {
        return Err(KeyError::InvalidKey(format!(
            "the RSA key has {bits} bits; RS256 keys must have {RSA_MIN_BITS} to {RSA_MAX_BITS}"
        )));
    }
    Ok(())
}

/// Which algorithm a PKCS#8 key signs, by trying each supported key type.
fn pkcs8_alg(pem: &str) -> Option<SigningAlgorithm> {
    if <rsa::PrivateKey as pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem).is_ok() {
        Some(SigningAlgorithm::RS256)
    } else if <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(pem).is_ok() {
        Some(SigningAlgorithm::ES256)
    } else if ed25519_dalek::SigningKey::from_pkcs8_pem(pem).is_ok() {
        Some(SigningAlgorithm::EdDSA)
    } else {
        None
    }
}

/// The label and text of the first PEM block that is not `EC PARAMETERS` (which
/// `openssl ecparam -genkey` writes before the key).
fn first_private_key_block(pem: &str) -> Result<(&str, &str), KeyError> {
    let mut rest = pem;
    while let Some(start) = rest.find("-----BEGIN ") {
        let block = &rest[start..];
        let label_start = "-----BEGIN ".len();
        let Some(label_len) = block[label_start..].find("-----") else {
            break;
        };
        let label = &block[label_start..label_start + label_len];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = block.find(&end_marker) else {
            return Err(KeyError::InvalidKey(format!(
                "the {label} block has no END line"
            )));
        };
        let whole = &block[..end + end_marker.len()];
        if label != "EC PARAMETERS" {
            return Ok((label, whole));
        }
        rest = &block[end + end_marker.len()..];
    }
    Err(KeyError::InvalidKey(
        "no PEM private key found (expected -----BEGIN PRIVATE KEY-----)".into(),
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
pub(crate) mod tests {
    use std::sync::OnceLock;

    use super::*;

    /// One RSA key per test binary: generation is slow in debug builds.
    pub(crate) fn rsa_key() -> &'static SigningKey {
        static KEY: OnceLock<SigningKey> = OnceLock::new();
        KEY.get_or_init(|| SigningKey::generate(SigningAlgorithm::RS256).unwrap())
    }

    pub(crate) fn key(alg: SigningAlgorithm) -> SigningKey {
        match alg {
            SigningAlgorithm::RS256 => {
                SigningKey::from_pkcs8_pem(alg, &rsa_key().private_pkcs8_pem()).unwrap()
            }
            other => SigningKey::generate(other).unwrap(),
        }
    }

    #[test]
    fn generated_keys_publish_the_members_of_their_type() {
        let rsa = key(SigningAlgorithm::RS256);
        let jwk = serde_json::to_value(rsa.public_jwk()).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["alg"], "RS256");
        assert_eq!(jwk["e"], "AQAB");
        // 2048 bits = 256 bytes = 342 base64url characters.
        assert_eq!(jwk["n"].as_str().unwrap().len(), 342);
        assert_eq!(jwk.as_object().unwrap().len(), 6);

        let ec = key(SigningAlgorithm::ES256);
        let jwk = serde_json::to_value(ec.public_jwk()).unwrap();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        assert_eq!(jwk["y"].as_str().unwrap().len(), 43);
        assert_eq!(jwk.as_object().unwrap().len(), 7);

        let ed = key(SigningAlgorithm::EdDSA);
        let jwk = serde_json::to_value(ed.public_jwk()).unwrap();
        assert_eq!(jwk["kty"], "OKP");
        assert_eq!(jwk["crv"], "Ed25519");
        assert_eq!(jwk["x"].as_str().unwrap().len(), 43);
        assert_eq!(jwk.as_object().unwrap().len(), 6);
    }

    #[test]
    fn kid_is_the_thumbprint_and_survives_a_pem_round_trip() {
        for alg in SigningAlgorithm::ALL {
            let k = key(alg);
            assert_eq!(k.kid().len(), 43, "{alg}");
            assert_eq!(k.public_jwk().kid, k.kid());
            assert_eq!(k.public_jwk().thumbprint().as_deref(), Some(k.kid()));
            let again = SigningKey::from_pkcs8_pem(alg, &k.private_pkcs8_pem()).unwrap();
            assert_eq!(again.kid(), k.kid());
            assert_eq!(again.public_jwk(), k.public_jwk());
        }
    }

    #[test]
    fn debug_never_shows_the_private_key() {
        let k = key(SigningAlgorithm::EdDSA);
        let shown = format!("{k:?}");
        assert!(shown.contains(k.kid()));
        assert!(!shown.contains("PRIVATE"), "{shown}");
        assert!(!shown.contains(&k.private_pkcs8_pem()[30..60]), "{shown}");
    }

    #[test]
    fn imports_pkcs8_and_infers_the_algorithm() {
        for alg in SigningAlgorithm::ALL {
            let k = key(alg);
            let imported = SigningKey::import_pem(&k.private_pkcs8_pem(), None).unwrap();
            assert_eq!(imported.alg(), alg);
            assert_eq!(imported.kid(), k.kid());
            assert!(SigningKey::import_pem(&k.private_pkcs8_pem(), Some(alg)).is_ok());
        }
    }

    #[test]
    fn imports_pkcs1_rsa_and_sec1_ec_keys() {
        let rsa_pkcs8 = rsa_key().private_pkcs8_pem();
        let rsa = <rsa::PrivateKey as pkcs8::DecodePrivateKey>::from_pkcs8_pem(&rsa_pkcs8).unwrap();
        let pkcs1 = rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(&rsa, LF).unwrap();
        assert!(pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        let imported = SigningKey::import_pem(&pkcs1, Some(SigningAlgorithm::RS256)).unwrap();
        assert_eq!(imported.kid(), rsa_key().kid());

        let ec = key(SigningAlgorithm::ES256);
        let secret = <p256::SecretKey as p256::pkcs8::DecodePrivateKey>::from_pkcs8_pem(
            &ec.private_pkcs8_pem(),
        )
        .unwrap();
        let sec1 = secret.to_sec1_pem(LF).unwrap();
        assert!(sec1.starts_with("-----BEGIN EC PRIVATE KEY-----"));
        // As `openssl ecparam -genkey` writes it: parameters first, then the key.
        let with_params = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            sec1.as_str()
        );
        let imported = SigningKey::import_pem(&with_params, None).unwrap();
        assert_eq!(imported.alg(), SigningAlgorithm::ES256);
        assert_eq!(imported.kid(), ec.kid());
        // Stored as PKCS#8 whatever the input was.
        assert!(
            imported
                .private_pkcs8_pem()
                .starts_with("-----BEGIN PRIVATE KEY-----")
        );
    }

    #[test]
    fn import_refuses_what_it_cannot_sign_with() {
        let ed = key(SigningAlgorithm::EdDSA);
        let err = SigningKey::import_pem(&ed.private_pkcs8_pem(), Some(SigningAlgorithm::RS256))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("Ed25519") && err.contains("not RS256"),
            "{err}"
        );

        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n-----END PUBLIC KEY-----\n";
        let err = SigningKey::import_pem(public, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a private key"), "{err}");

        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = SigningKey::import_pem(encrypted, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("decrypt it first"), "{err}");

        let err = SigningKey::import_pem("hello", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("no PEM private key"), "{err}");

        // An RSA key below 2048 bits.
        let small = rsa::PrivateKey::new(&mut getrandom::SysRng, 1024).unwrap();
        let small_pem = pkcs8::EncodePrivateKey::to_pkcs8_pem(&small, LF).unwrap();
        let err = SigningKey::import_pem(&small_pem, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("1024 bits"), "{err}");
    }
}
