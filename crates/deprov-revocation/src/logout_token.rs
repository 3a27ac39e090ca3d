//! Logout tokens, per OpenID Connect Back-Channel Logout 1.0 incorporating errata set 1,
//! §2.4 (<https://openid.net/specs/openid-connect-backchannel-1_0.html#LogoutToken>).
//!
//! A token is minted for every delivery *attempt*: each carries a fresh `jti` and a fresh
//! `iat`/`exp`, because strict receivers reject a `jti` they have seen and an `exp` in the
//! past. The claims are a closed struct, so a claim the spec forbids (`nonce`) cannot be
//! added by accident.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deprov_core::SigningAlgorithm;
use jsonwebtoken::{Algorithm, Header};
use serde::Serialize;

use crate::keys::SigningKey;

/// The one event a logout token carries (§2.4; note `http`, not `https`).
pub const BACKCHANNEL_LOGOUT_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The JOSE `typ` of a logout token (§2.4, media type `application/logout+jwt`).
pub const LOGOUT_TOKEN_TYP: &str = "logout+jwt";

/// The longest a logout token lives. §4: "… an `exp` value … that is preferably at most
/// two minutes in the future"; INTEROP.md makes it a ceiling.
pub const MAX_LIFETIME: Duration = Duration::from_secs(120);

/// How long after `iat` a token expires: 1 to 120 seconds, whole seconds (JWT times are
/// seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetime(Duration);

impl TokenLifetime {
    /// The maximum, 120 s: the most room for slow networks and skewed clocks that the
    /// spec's guidance allows.
    pub const MAX: Self = Self(MAX_LIFETIME);

    pub fn new(lifetime: Duration) -> Result<Self, LogoutTokenError> {
        let whole = Duration::from_secs(lifetime.as_secs());
        if whole.is_zero() || whole > MAX_LIFETIME || whole != lifetime {
            return Err(LogoutTokenError::Lifetime(lifetime));
        }
        Ok(Self(whole))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }
}

impl Default for TokenLifetime {
    fn default() -> Self {
        Self::MAX
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogoutTokenError {
    #[error(
        "a logout token needs a sub or a sid (Back-Channel Logout 1.0 §2.4); this user has \
         no value for the relying party's subject mapping and no session is known"
    )]
    NoSubjectOrSession,
    #[error(
        "relying party {client_id} requires sid in logout tokens \
         (backchannel_logout_session_required), and no session id is known for this user"
    )]
    SessionRequired { client_id: String },
    #[error("a logout token's {0} cannot be empty")]
    Empty(&'static str),
    #[error("a logout token lifetime must be 1 to 120 whole seconds, not {0:?}")]
    Lifetime(Duration),
    #[error("the system clock is before 1970")]
    Clock,
    #[error("cannot sign the logout token: {0}")]
    Sign(String),
}

/// What one logout token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogoutTokenRequest<'a> {
    /// `iss`: deprov's issuer ([`crate::discovery::issuer`] of the public URL), or the
    /// relying party's issuer override when deprov signs for the application's OP.
    pub issuer: &'a str,
    /// `aud`: the relying party's `client_id`.
    pub audience: &'a str,
    /// `sub`: the user, as the relying party's subject mapping names them.
    pub subject: Option<&'a str>,
    /// `sid`: the session, when known.
    pub session_id: Option<&'a str>,
    /// The relying party registered `backchannel_logout_session_required` (§2.2).
    pub require_sid: bool,
    pub lifetime: TokenLifetime,
}

/// A signed logout token. `Debug` omits the token itself: within its lifetime it logs the
/// user out wherever it is presented.
#[derive(Clone, PartialEq, Eq)]
pub struct LogoutToken {
    /// The compact JWS, to POST as `logout_token`.
    pub jwt: String,
    pub jti: String,
    pub kid: String,
    pub iat: i64,
    pub exp: i64,
}

impl fmt::Debug for LogoutToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogoutToken")
            .field("jti", &self.jti)
            .field("kid", &self.kid)
            .field("iat", &self.iat)
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// The claims of §2.4, in the order the spec lists them.
#[derive(Serialize)]
struct Claims<'a> {
    /// "iss REQUIRED. Issuer Identifier, as specified in Section 2 of [OpenID.Core]."
    iss: &'a str,
    /// "sub OPTIONAL. Subject Identifier, as specified in Section 2 of [OpenID.Core]."
    /// "A Logout Token MUST contain either a sub or a sid Claim, and MAY contain both."
    #[serde(skip_serializing_if = "Option::is_none")]
    sub: Option<&'a str>,
    /// "aud REQUIRED. Audience(s), as specified in Section 2 of [OpenID.Core]." One client.
    aud: &'a str,
    /// "iat REQUIRED. Issued at time, as specified in Section 2 of [OpenID.Core]."
    iat: i64,
    /// "exp REQUIRED. Expiration time, as specified in Section 2 of [OpenID.Core]." (errata 1)
    /// §4: "… preferably at most two minutes in the future".
    exp: i64,
    /// "jti REQUIRED. Unique identifier for the token, as specified in Section 9 of
    /// [OpenID.Core]." Fresh for every token: receivers MAY reject a `jti` seen before.
    jti: &'a str,
    /// "events REQUIRED. Claim whose value is a JSON object containing the member name
    /// http://schemas.openid.net/event/backchannel-logout. This declares that the JWT is a
    /// Logout Token. The corresponding member value MUST be a JSON object and SHOULD be the
    /// empty JSON object {}." Exactly that one member: strict receivers (idpyoidc) reject
    /// others.
    events: Events,
    /// "sid OPTIONAL. Session ID - String identifier for a Session."
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    // "nonce PROHIBITED. A nonce Claim MUST NOT be present.": there is no field for one.
}

#[derive(Serialize)]
struct Events {
    #[serde(rename = "http://schemas.openid.net/event/backchannel-logout")]
    backchannel_logout: EmptyObject,
}

#[derive(Serialize)]
struct EmptyObject {}

fn jose_alg(alg: SigningAlgorithm) -> Algorithm {
    match alg {
        SigningAlgorithm::RS256 => Algorithm::RS256,
        SigningAlgorithm::ES256 => Algorithm::ES256,
        SigningAlgorithm::EdDSA => Algorithm::EdDSA,
    }
}

fn non_empty<'a>(
    value: Option<&'a str>,
    name: &'static str,
) -> Result<Option<&'a str>, LogoutTokenError> {
    match value {
        Some("") => Err(LogoutTokenError::Empty(name)),
        other => Ok(other),
    }
}

/// Mints and signs one logout token with `key`, issued at `now`.
pub fn mint(
    key: &SigningKey,
    request: &LogoutTokenRequest<'_>,
    now: SystemTime,
) -> Result<LogoutToken, LogoutTokenError> {
    if request.issuer.is_empty() {
        return Err(LogoutTokenError::Empty("iss"));
    }
    if request.audience.is_empty() {
        return Err(LogoutTokenError::Empty("aud"));
    }
    let sub = non_empty(request.subject, "sub")?;
    let sid = non_empty(request.session_id, "sid")?;
    if request.require_sid && sid.is_none() {
        return Err(LogoutTokenError::SessionRequired {
            client_id: request.audience.to_owned(),
        });
    }
    if sub.is_none() && sid.is_none() {
        return Err(LogoutTokenError::NoSubjectOrSession);
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| LogoutTokenError::Clock)?
        .as_secs();
    let iat = i64::try_from(iat).map_err(|_| LogoutTokenError::Clock)?;
    let exp = iat.saturating_add(i64::try_from(request.lifetime.as_secs()).unwrap_or(120));
    // 122 random bits from the operating system.
    let jti = uuid::Uuid::new_v4().to_string();
    let claims = Claims {
        iss: request.issuer,
        sub,
        aud: request.audience,
        iat,
        exp,
        jti: &jti,
        events: Events {
            backchannel_logout: EmptyObject {},
        },
        sid,
    };
    // §2.4: "A Logout Token MUST be signed and MAY also be encrypted." Explicit typing with
    // the header `typ: logout+jwt` is RECOMMENDED (§2.4, §4.1: it keeps a logout token from
    // being taken for an ID token). §2.6: `alg` is chosen as for ID Tokens, never `none`.
    let mut header = Header::new(jose_alg(key.alg()));
    header.typ = Some(LOGOUT_TOKEN_TYP.to_owned());
    header.kid = Some(key.kid().to_owned());
    let jwt = jsonwebtoken::encode(&header, &claims, key.encoding_key())
        .map_err(|e| LogoutTokenError::Sign(e.to_string()))?;
    Ok(LogoutToken {
        jwt,
        jti,
        kid: key.kid().to_owned(),
        iat,
        exp,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use rsa::signature::Verifier as _;
    use serde_json::{Value, json};

    use super::*;
    use crate::keys::PublicJwk;
    use crate::keys::test_keys::key;

    fn request<'a>() -> LogoutTokenRequest<'a> {
        LogoutTokenRequest {
            issuer: "https://deprov.example.com",
            audience: "client-1",
            subject: Some("00u1"),
            session_id: None,
            require_sid: false,
            lifetime: TokenLifetime::default(),
        }
    }

    fn decode_part(part: &str) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    fn parts(jwt: &str) -> (Value, Value) {
        let mut it = jwt.split('.');
        let header = decode_part(it.next().unwrap());
        let payload = decode_part(it.next().unwrap());
        assert!(it.next().is_some() && it.next().is_none(), "three parts");
        (header, payload)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn claims_are_exactly_those_of_section_2_4() {
        let k = key(SigningAlgorithm::ES256);
        let token = mint(&k, &request(), at(1_800_000_000)).unwrap();
        let (_, claims) = parts(&token.jwt);
        assert_eq!(
            claims,
            json!({
                "iss": "https://deprov.example.com",
                "sub": "00u1",
                "aud": "client-1",
                "iat": 1_800_000_000,
                "exp": 1_800_000_120,
                "jti": token.jti,
                "events": { "http://schemas.openid.net/event/backchannel-logout": {} },
            })
        );
        assert!(claims.get("nonce").is_none());
        assert_eq!((token.iat, token.exp), (1_800_000_000, 1_800_000_120));
    }

    #[test]
    fn header_is_typed_and_names_alg_and_kid() {
        for alg in SigningAlgorithm::ALL {
            let k = key(alg);
            let token = mint(&k, &request(), SystemTime::now()).unwrap();
            let (header, _) = parts(&token.jwt);
            assert_eq!(
                header,
                json!({ "typ": "logout+jwt", "alg": alg.as_str(), "kid": k.kid() }),
                "{alg}"
            );
            assert_eq!(token.kid, k.kid());
        }
    }

    #[test]
    fn sid_is_carried_when_known_with_or_without_sub() {
        let k = key(SigningAlgorithm::EdDSA);
        let both = LogoutTokenRequest {
            session_id: Some("sess-1"),
            ..request()
        };
        let (_, claims) = parts(&mint(&k, &both, SystemTime::now()).unwrap().jwt);
        assert_eq!(claims["sid"], "sess-1");
        assert_eq!(claims["sub"], "00u1");

        let sid_only = LogoutTokenRequest {
            subject: None,
            session_id: Some("sess-1"),
            ..request()
        };
        let (_, claims) = parts(&mint(&k, &sid_only, SystemTime::now()).unwrap().jwt);
        assert_eq!(claims["sid"], "sess-1");
        assert!(claims.get("sub").is_none());
    }

    #[test]
    fn sub_or_sid_is_required_and_sid_when_the_rp_requires_it() {
        let k = key(SigningAlgorithm::EdDSA);
        let neither = LogoutTokenRequest {
            subject: None,
            ..request()
        };
        assert_eq!(
            mint(&k, &neither, SystemTime::now()),
            Err(LogoutTokenError::NoSubjectOrSession)
        );
        let needs_sid = LogoutTokenRequest {
            require_sid: true,
            ..request()
        };
        let err = mint(&k, &needs_sid, SystemTime::now()).unwrap_err();
        assert_eq!(
            err,
            LogoutTokenError::SessionRequired {
                client_id: "client-1".into()
            }
        );
        assert!(
            err.to_string()
                .contains("backchannel_logout_session_required")
        );
        let with_sid = LogoutTokenRequest {
            session_id: Some("s"),
            ..needs_sid
        };
        assert!(mint(&k, &with_sid, SystemTime::now()).is_ok());
        let empty_sub = LogoutTokenRequest {
            subject: Some(""),
            ..request()
        };
        assert_eq!(
            mint(&k, &empty_sub, SystemTime::now()),
            Err(LogoutTokenError::Empty("sub"))
        );
        let no_iss = LogoutTokenRequest {
            issuer: "",
            ..request()
        };
        assert_eq!(
            mint(&k, &no_iss, SystemTime::now()),
            Err(LogoutTokenError::Empty("iss"))
        );
    }

    #[test]
    fn lifetime_is_capped_at_120_seconds() {
        assert!(TokenLifetime::new(Duration::from_secs(121)).is_err());
        assert!(TokenLifetime::new(Duration::ZERO).is_err());
        assert!(TokenLifetime::new(Duration::from_millis(1500)).is_err());
        assert_eq!(TokenLifetime::default().as_secs(), 120);
        let k = key(SigningAlgorithm::ES256);
        let short = LogoutTokenRequest {
            lifetime: TokenLifetime::new(Duration::from_secs(30)).unwrap(),
            ..request()
        };
        let token = mint(&k, &short, at(1_000)).unwrap();
        assert_eq!(token.exp - token.iat, 30);
        for secs in [1, 60, 120] {
            let req = LogoutTokenRequest {
                lifetime: TokenLifetime::new(Duration::from_secs(secs)).unwrap(),
                ..request()
            };
            let t = mint(&k, &req, SystemTime::now()).unwrap();
            assert!(t.exp - t.iat <= 120);
        }
    }

    #[test]
    fn every_token_has_a_fresh_jti() {
        let k = key(SigningAlgorithm::EdDSA);
        let now = SystemTime::now();
        let jtis: std::collections::HashSet<String> = (0..200)
            .map(|_| mint(&k, &request(), now).unwrap().jti)
            .collect();
        assert_eq!(jtis.len(), 200);
    }

    #[test]
    fn debug_omits_the_token() {
        let k = key(SigningAlgorithm::EdDSA);
        let token = mint(&k, &request(), SystemTime::now()).unwrap();
        let shown = format!("{token:?}");
        assert!(shown.contains(&token.jti));
        assert!(!shown.contains(&token.jwt), "{shown}");
    }

    // ---- Independent verification: RustCrypto verifiers fed only the published JWK. ----

    fn b64(s: &Option<String>) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s.as_deref().unwrap()).unwrap()
    }

    /// Verifies a compact JWS against a JWK without jsonwebtoken: the key is rebuilt from
    /// `n`/`e`, `x`/`y` or `x`, and the signature checked over `header.payload`.
    fn verify_with_jwk(jwt: &str, jwk: &PublicJwk) -> Result<(), String> {
        let (signing_input, sig_b64) = jwt.rsplit_once('.').unwrap();
        let sig = URL_SAFE_NO_PAD.decode(sig_b64).map_err(|e| e.to_string())?;
        let msg = signing_input.as_bytes();
        match jwk.kty.as_str() {
            "RSA" => {
                let public = rsa::PublicKey::new(
                    rsa::BoxedUint::from_be_slice_vartime(&b64(&jwk.n)),
                    rsa::BoxedUint::from_be_slice_vartime(&b64(&jwk.e)),
                )
                .map_err(|e| e.to_string())?;
                let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
                let sig = rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                    .map_err(|e| e.to_string())?;
                verifier.verify(msg, &sig).map_err(|e| e.to_string())
            }
            "EC" => {
                let mut sec1 = vec![0x04];
                sec1.extend(b64(&jwk.x));
                sec1.extend(b64(&jwk.y));
                let verifier =
                    p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1).map_err(|e| e.to_string())?;
                let sig = p256::ecdsa::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
                verifier.verify(msg, &sig).map_err(|e| e.to_string())
            }
            "OKP" => {
                let x: [u8; 32] = b64(&jwk.x).try_into().unwrap();
                let verifier =
                    ed25519_dalek::VerifyingKey::from_bytes(&x).map_err(|e| e.to_string())?;
                let sig = ed25519_dalek::Signature::from_slice(&sig).map_err(|e| e.to_string())?;
                verifier.verify(msg, &sig).map_err(|e| e.to_string())
            }
            other => Err(format!("unexpected kty {other}")),
        }
    }

    #[test]
    fn tokens_verify_with_another_implementation_from_the_jwk_alone() {
        for alg in SigningAlgorithm::ALL {
            let k = key(alg);
            let token = mint(&k, &request(), SystemTime::now()).unwrap();
            verify_with_jwk(&token.jwt, k.public_jwk()).unwrap_or_else(|e| panic!("{alg}: {e}"));

            // A changed payload no longer verifies.
            let mut parts: Vec<&str> = token.jwt.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://evil","aud":"client-1"}"#);
            parts[1] = &forged;
            assert!(
                verify_with_jwk(&parts.join("."), k.public_jwk()).is_err(),
                "{alg}"
            );

            // Another key of the same type does not verify it.
            if alg != SigningAlgorithm::RS256 {
                let other = SigningKey::generate(alg).unwrap();
                assert!(
                    verify_with_jwk(&token.jwt, other.public_jwk()).is_err(),
                    "{alg}"
                );
            }
        }
    }
}
