//! Secrets inside a target's `config` JSON, sealed under the key-encryption key.
//!
//! Every secret a target needs to call its peer (an OAuth client secret, a
//! `private_key_jwt` private key, a Global Token Revocation bearer token, an admin API
//! token) is stored in `targets.config` as **base64 (standard alphabet, padded) of
//! [`KeyEncryptionKey::encrypt`]`(secret, aad)`** with
//!
//! ```text
//! aad = "deprov:target-secret:{tenant_id}:{field}"
//! ```
//!
//! where `tenant_id` is the tenant's stored id and `field` the JSON member name that holds
//! the value (e.g. `client_secret`). The AAD binds the ciphertext to its tenant and field:
//! copying one tenant's sealed secret into another tenant's target, or one field into
//! another, fails to open instead of silently handing a secret to the wrong peer.
//!
//! This convention is shared by every channel (RFC 7009 revocation, Global Token
//! Revocation, the provider admin adapters); keep it stable, since stored configs depend
//! on it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use super::{KeyEncryptionKey, KeyError};

/// The associated data of a sealed target secret.
pub fn target_secret_aad(tenant_id: &str, field: &str) -> String {
    format!("deprov:target-secret:{tenant_id}:{field}")
}

/// Seals `secret` for `field` of a target of `tenant_id`; returns the base64 text to store
/// in the config JSON.
pub fn seal_target_secret(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    secret: &[u8],
) -> Result<String, KeyError> {
    let sealed = kek.encrypt(secret, target_secret_aad(tenant_id, field).as_bytes())?;
    Ok(STANDARD.encode(sealed))
}

/// Opens what [`seal_target_secret`] made for the same tenant and field. Fails with
/// [`KeyError::Decrypt`] on bad base64, another KEK, another tenant or field, or altered
/// bytes; the error never carries the value.
pub fn open_target_secret(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    sealed_b64: &str,
) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let sealed = STANDARD
        .decode(sealed_b64.trim())
        .map_err(|_| KeyError::Decrypt)?;
    kek.decrypt(&sealed, target_secret_aad(tenant_id, field).as_bytes())
}

/// [`open_target_secret`] for a secret that must be UTF-8 text (secrets, tokens, PEM).
pub fn open_target_secret_str(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    sealed_b64: &str,
) -> Result<Zeroizing<String>, KeyError> {
    let clear = open_target_secret(kek, tenant_id, field, sealed_b64)?;
    let text = std::str::from_utf8(&clear).map_err(|_| KeyError::Decrypt)?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// The associated data of a grant (a token an application registered): bound to its
/// tenant and its row, so a ciphertext moved to another row does not open.
pub fn grant_aad(tenant_id: &str, grant_id: &str) -> String {
    format!("deprov:grant:{tenant_id}:{grant_id}")
}

/// Seals a registered token for the `grants` table (base64 as for target secrets).
pub fn seal_grant(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    grant_id: &str,
    token: &str,
) -> Result<String, KeyError> {
    let sealed = kek.encrypt(token.as_bytes(), grant_aad(tenant_id, grant_id).as_bytes())?;
    Ok(STANDARD.encode(sealed))
}

/// Opens what [`seal_grant`] made for this tenant and row.
pub fn open_grant(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    grant_id: &str,
    sealed_b64: &str,
) -> Result<Zeroizing<String>, KeyError> {
    let sealed = STANDARD
        .decode(sealed_b64.trim())
        .map_err(|_| KeyError::Decrypt)?;
    let clear = kek.decrypt(&sealed, grant_aad(tenant_id, grant_id).as_bytes())?;
    let text = std::str::from_utf8(&clear).map_err(|_| KeyError::Decrypt)?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_for_its_tenant_and_field() -> Result<(), KeyError> {
        let kek = KeyEncryptionKey::generate()?;
        let sealed = seal_target_secret(&kek, "t1", "client_secret", b"s3cret")?;
        assert!(!sealed.contains("s3cret"));
        assert_eq!(
            open_target_secret_str(&kek, "t1", "client_secret", &sealed)?.as_str(),
            "s3cret"
        );
        assert!(open_target_secret(&kek, "t2", "client_secret", &sealed).is_err());
        assert!(open_target_secret(&kek, "t1", "bearer_token", &sealed).is_err());
        assert!(
            open_target_secret(
                &KeyEncryptionKey::generate()?,
                "t1",
                "client_secret",
                &sealed
            )
            .is_err()
        );
        assert!(open_target_secret(&kek, "t1", "client_secret", "not base64!").is_err());
        Ok(())
    }

    #[test]
    fn sealed_secret_is_standard_padded_base64_of_the_kek_ciphertext() -> Result<(), KeyError> {
        let kek = KeyEncryptionKey::generate()?;
        let sealed = seal_target_secret(&kek, "t", "f", b"x")?;
        let raw = STANDARD.decode(&sealed).map_err(|_| KeyError::Decrypt)?;
        assert_eq!(
            kek.decrypt(&raw, b"deprov:target-secret:t:f")?.as_slice(),
            b"x"
        );
        Ok(())
    }
}
