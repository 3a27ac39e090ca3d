//! The receiving side of a back-channel logout: what an application must check before it
//! ends a session, per OpenID Connect Back-Channel Logout 1.0 incorporating errata set 1,
//! §2.6 "Logout Token Validation"
//! (<https://openid.net/specs/openid-connect-backchannel-1_0.html#Validation>).
//!
//! deprov does not need this to send logouts. It is here for `deprov demo`'s sample
//! application and as the reference the application owner's guide points to. The
//! signature is checked with RustCrypto directly from the published JWK — not with the
//! library that signed — so a token that verifies here verifies for an independent
//! implementation too.
//!
//! What the caller still owns: fetching the issuer's JWKS (and again when a `kid` is
//! unknown), remembering `jti`s until their `exp` to refuse replays, and ending the
//! sessions of `sub`/`sid`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::signature::Verifier as _;
use serde_json::{Map, Value};

use crate::keys::{Jwks, PublicJwk};
use crate::logout_token::{BACKCHANNEL_LOGOUT_EVENT, LOGOUT_TOKEN_TYP};

/// Why a logout token was refused; the receiver answers 400 with it (§2.8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejected(pub String);

fn reject<T>(why: impl Into<String>) -> Result<T, Rejected> {
    Err(Rejected(why.into()))
}

/// What the receiver expects of a token.
#[derive(Debug, Clone)]
pub struct Expectations<'a> {
    /// The issuer it trusts for logouts (deprov's `public_url`, or the OP deprov signs for).
    pub issuer: &'a str,
    /// Its own client_id.
    pub client_id: &'a str,
    /// Clock skew tolerated on `iat` and `exp`.
    pub leeway: Duration,
}

/// A token that passed every check.
#[derive(Debug, Clone)]
pub struct VerifiedLogout {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub jti: String,
    pub sub: Option<String>,
    pub sid: Option<String>,
    /// `exp`, seconds since the epoch: how long to remember the `jti`.
    pub exp: i64,
}

fn decode_json(part: &str, what: &str) -> Result<Map<String, Value>, Rejected> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| Rejected(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => reject(format!("the {what} is not a JSON object")),
    }
}

fn b64_member(jwk: &PublicJwk, value: Option<&String>, name: &str) -> Result<Vec<u8>, Rejected> {
    value
        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
        .ok_or_else(|| Rejected(format!("JWK {} has no usable {name}", jwk.kid)))
}

/// Checks the signature of `signing_input` with the public key `jwk`, for `alg`.
fn verify_signature(
    alg: &str,
    jwk: &PublicJwk,
    signing_input: &[u8],
    sig: &[u8],
) -> Result<(), Rejected> {
    let bad = |_| Rejected("the signature does not verify".to_owned());
    match (alg, jwk.kty.as_str()) {
        ("RS256", "RSA") => {
            let public = rsa::PublicKey::new(
                rsa::BoxedUint::from_be_slice_vartime(&b64_member(jwk, jwk.n.as_ref(), "n")?),
                rsa::BoxedUint::from_be_slice_vartime(&b64_member(jwk, jwk.e.as_ref(), "e")?),
            )
            .map_err(|_| Rejected(format!("JWK {} is not a valid RSA key", jwk.kid)))?;
            let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
            let sig = rsa::pkcs1v15::Signature::try_from(sig).map_err(bad)?;
            verifier.verify(signing_input, &sig).map_err(bad)
        }
        ("ES256", "EC") if jwk.crv.as_deref() == Some("P-256") => {
            let mut sec1 = vec![0x04];
            sec1.extend(b64_member(jwk, jwk.x.as_ref(), "x")?);
            sec1.extend(b64_member(jwk, jwk.y.as_ref(), "y")?);
            let verifier = p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                .map_err(|_| Rejected(format!("JWK {} is not a valid P-256 key", jwk.kid)))?;
            let sig = p256::ecdsa::Signature::from_slice(sig).map_err(bad)?;
            verifier.verify(signing_input, &sig).map_err(bad)
        }
        ("EdDSA", "OKP") if jwk.crv.as_deref() == Some("Ed25519") => {
            let x: [u8; 32] = b64_member(jwk, jwk.x.as_ref(), "x")?
                .try_into()
                .map_err(|_| Rejected(format!("JWK {} is not an Ed25519 key", jwk.kid)))?;
            let verifier = ed25519_dalek::VerifyingKey::from_bytes(&x)
                .map_err(|_| Rejected(format!("JWK {} is not an Ed25519 key", jwk.kid)))?;
            let sig = ed25519_dalek::Signature::from_slice(sig).map_err(bad)?;
            verifier.verify(signing_input, &sig).map_err(bad)
        }
        _ => reject(format!("JWK {} ({}) cannot verify {alg}", jwk.kid, jwk.kty)),
    }
}

fn seconds(claims: &Map<String, Value>, name: &str) -> Result<i64, Rejected> {
    claims
        .get(name)
        .and_then(Value::as_i64)
        .ok_or_else(|| Rejected(format!("{name} is missing or not a number of seconds")))
}

fn text<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    claims
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// Validates a logout token as §2.6 asks, with the strictness INTEROP.md lists:
///
/// 1. a compact JWS whose header has `typ: logout+jwt`, an asymmetric `alg` (never `none`
///    or HMAC) and a `kid` found in `jwks` with the same `alg`;
/// 2. a signature that verifies with that key;
/// 3. `iss` is the trusted issuer and `aud` is (or contains) our client_id;
/// 4. `iat` is not in the future and `exp` is present, not past, and at most 120 s after
///    `iat` (errata 1);
/// 5. a `jti`, a `sub` or a `sid`, and `events` whose back-channel-logout member is `{}`;
/// 6. no `nonce` (a logout token must not be mistaken for an ID token).
pub fn verify_logout_token(
    jwt: &str,
    jwks: &Jwks,
    expect: &Expectations<'_>,
    now: SystemTime,
) -> Result<VerifiedLogout, Rejected> {
    let parts: Vec<&str> = jwt.split('.').collect();
    let [header_b64, payload_b64, sig_b64] = parts.as_slice() else {
        return reject("not a compact JWS (three dot-separated parts)");
    };
    let header = decode_json(header_b64, "header")?;
    if header.get("typ").and_then(Value::as_str) != Some(LOGOUT_TOKEN_TYP) {
        return reject(format!("header typ must be {LOGOUT_TOKEN_TYP:?}"));
    }
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    if !matches!(alg, "RS256" | "ES256" | "EdDSA") {
        return reject(format!("alg {alg:?} is not accepted"));
    }
    let Some(kid) = header.get("kid").and_then(Value::as_str) else {
        return reject("header has no kid");
    };
    let Some(jwk) = jwks.keys.iter().find(|k| k.kid == kid) else {
        return reject(format!("kid {kid} is not in the issuer's JWKS"));
    };
    if jwk.alg != alg || jwk.use_ != "sig" {
        return reject(format!("JWK {kid} is not a {alg} signing key"));
    }
    let sig = URL_SAFE_NO_PAD
        .decode(sig_b64)
        .map_err(|_| Rejected("the signature is not base64url".to_owned()))?;
    let signing_input = &jwt[..header_b64.len() + 1 + payload_b64.len()];
    verify_signature(alg, jwk, signing_input.as_bytes(), &sig)?;

    let claims = decode_json(payload_b64, "payload")?;
    if text(&claims, "iss") != Some(expect.issuer) {
        return reject(format!("iss must be {:?}", expect.issuer));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == expect.client_id,
        Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(expect.client_id)),
        _ => false,
    };
    if !aud_ok {
        return reject(format!("aud must be {:?}", expect.client_id));
    }
    let now = i64::try_from(now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs())
        .unwrap_or(i64::MAX);
    let leeway = i64::try_from(expect.leeway.as_secs()).unwrap_or(0);
    let iat = seconds(&claims, "iat")?;
    let exp = seconds(&claims, "exp")?;
    if iat > now + leeway {
        return reject("iat is in the future");
    }
    if exp + leeway < now {
        return reject("the token has expired");
    }
    if exp < iat || exp - iat > 120 {
        return reject("exp must be at most 120 s after iat");
    }
    let Some(jti) = text(&claims, "jti").map(str::to_owned) else {
        return reject("jti is missing");
    };
    let sub = text(&claims, "sub").map(str::to_owned);
    let sid = text(&claims, "sid").map(str::to_owned);
    if sub.is_none() && sid.is_none() {
        return reject("neither sub nor sid is present");
    }
    match claims.get("events").and_then(Value::as_object) {
        Some(events) => match events.get(BACKCHANNEL_LOGOUT_EVENT) {
            Some(Value::Object(member)) if member.is_empty() => {}
            Some(_) => return reject("the back-channel logout event's value must be {}"),
            None => return reject(format!("events has no {BACKCHANNEL_LOGOUT_EVENT} member")),
        },
        None => return reject("events is missing or not an object"),
    }
    if claims.contains_key("nonce") {
        return reject("a logout token must not carry a nonce");
    }
    Ok(VerifiedLogout {
        header,
        claims,
        jti,
        sub,
        sid,
        exp,
    })
}

/// The `logout_token` field of an `application/x-www-form-urlencoded` body (§2.5).
pub fn logout_token_from_form(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // a failed unwrap is a failed test
mod tests {
    use deprov_core::SigningAlgorithm;

    use super::*;
    use crate::keys::test_keys::key;
    use crate::logout_token::{LogoutTokenRequest, TokenLifetime, mint};

    fn request() -> LogoutTokenRequest<'static> {
        LogoutTokenRequest {
            issuer: "https://deprov.example.com",
            audience: "client-1",
            subject: Some("00u1"),
            session_id: None,
            require_sid: false,
            lifetime: TokenLifetime::default(),
        }
    }

    fn expect() -> Expectations<'static> {
        Expectations {
            issuer: "https://deprov.example.com",
            client_id: "client-1",
            leeway: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_minted_token_verifies_for_every_algorithm_and_a_tampered_one_does_not() {
        for alg in SigningAlgorithm::ALL {
            let k = key(alg);
            let jwks = Jwks {
                keys: vec![k.public_jwk().clone()],
            };
            let token = mint(&k, &request(), SystemTime::now()).unwrap();
            let ok = verify_logout_token(&token.jwt, &jwks, &expect(), SystemTime::now())
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(ok.jti, token.jti);

            let mut parts: Vec<&str> = token.jwt.split('.').collect();
            let forged = URL_SAFE_NO_PAD.encode(br#"{"iss":"https://evil","aud":"client-1"}"#);
            parts[1] = &forged;
            assert!(
                verify_logout_token(&parts.join("."), &jwks, &expect(), SystemTime::now()).is_err()
            );
            let other = Expectations {
                client_id: "someone-else",
                ..expect()
            };
            assert!(verify_logout_token(&token.jwt, &jwks, &other, SystemTime::now()).is_err());
            let later = SystemTime::now() + Duration::from_secs(600);
            assert!(verify_logout_token(&token.jwt, &jwks, &expect(), later).is_err());
        }
    }
}
