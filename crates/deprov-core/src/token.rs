//! Bearer tokens for SCIM clients and administrators, and the grants API's client secrets.
//!
//! A token is `deprov_<kind>_<43 base64url characters>`: 256 bits from the operating system's
//! CSPRNG behind a fixed prefix, so that secret scanners (GitHub push protection, gitleaks,
//! trufflehog) can recognise a leaked one by pattern. Only the SHA-256 of the whole token is
//! stored; a presented token is hashed and compared to the stored hash in constant time.
//! A fast hash is right here (unlike for passwords): the input already has 256 bits of
//! entropy, so there is nothing to brute-force.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::TryRngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::Secret;

/// What a token grants; the kind is part of its visible prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Drives one tenant's SCIM endpoint.
    Scim,
    /// Drives the admin API of the whole installation.
    Admin,
    /// Authenticates one OP client of a tenant to the grants API (its `client_secret`
    /// there, RFC 6749 §2.3.1).
    Grants,
    /// A signed-in web console session (the value of its cookie).
    ConsoleSession,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Scim => "deprov_scim_",
            TokenKind::Admin => "deprov_admin_",
            TokenKind::Grants => "deprov_grants_",
            TokenKind::ConsoleSession => "deprov_session_",
        }
    }
}

/// Number of random bytes in a token: 256 bits.
pub const TOKEN_RANDOM_BYTES: usize = 32;

/// The SHA-256 of a token, the only form in which tokens are stored.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }

    /// The digest itself (a memory of tokens that authenticated is keyed by it).
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        // Every authenticated SCIM request hashes its token: no `format!` per byte.
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = String::with_capacity(self.0.len() * 2);
        for b in self.0 {
            out.push(char::from(DIGITS[usize::from(b >> 4)]));
            out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
        }
        out
    }

    /// Constant-time equality, so that timing does not reveal how much of a guess matched.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// A freshly minted token: the clear value, to be shown once, and the hash to store.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Secret,
    pub hash: TokenHash,
    /// The prefix plus the first characters of the random part, safe to display
    /// so that operators can tell tokens apart (`deprov_scim_AbC1…`).
    pub hint: String,
}

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed: {0}")]
pub struct RandomnessUnavailable(String);

impl IssuedToken {
    pub fn generate(kind: TokenKind) -> Result<Self, RandomnessUnavailable> {
        let mut bytes = [0u8; TOKEN_RANDOM_BYTES];
        rand::rngs::OsRng
            .try_fill_bytes(&mut bytes)
            .map_err(|e| RandomnessUnavailable(e.to_string()))?;
        let token = format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes));
        let hint = format!("{}…", &token[..kind.prefix().len() + 4]);
        Ok(Self {
            hash: TokenHash::of(&token),
            token: Secret::new(token),
            hint,
        })
    }
}

/// Whether a presented string has the shape of a token of this kind. Cheap pre-check before
/// any database lookup, so that garbage never costs a query.
pub fn looks_like(kind: TokenKind, presented: &str) -> bool {
    presented.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == 43
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_prefixed_long_and_distinct() -> Result<(), RandomnessUnavailable> {
        let a = IssuedToken::generate(TokenKind::Scim)?;
        let b = IssuedToken::generate(TokenKind::Scim)?;
        assert!(a.token.expose().starts_with("deprov_scim_"));
        assert_eq!(a.token.expose().len(), "deprov_scim_".len() + 43);
        assert!(looks_like(TokenKind::Scim, a.token.expose()));
        assert!(!looks_like(TokenKind::Admin, a.token.expose()));
        assert_ne!(a.token, b.token);
        assert!(a.hash.matches(&TokenHash::of(a.token.expose())));
        assert!(!a.hash.matches(&b.hash));
        Ok(())
    }

    #[test]
    fn hash_round_trips_through_hex() {
        let h = TokenHash::of("x");
        // Lowercase SHA-256, as stored by every earlier version.
        assert_eq!(
            h.to_hex(),
            "2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881"
        );
        assert_eq!(TokenHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(TokenHash::from_hex("zz"), None);
    }
}
