//! Secrets inside a target's stored `config` (client secrets, private keys, API tokens) are
//! sealed under the key-encryption key: the value stored is standard padded base64 of
//! [`KeyEncryptionKey::encrypt`] with the associated data
//! `deprov:target-secret:{tenant_id}:{field}`, so a sealed value copied to another tenant
//! or another field does not open.
//!
//! `field` is the config member that holds the value (`client_secret`, `private_key`,
//! `api_token`). The shared helper for this convention lands with the target plumbing
//! (branch `op`: `keys::sealed::{seal_target_secret, open_target_secret_str}`); this copy
//! follows exactly the same convention and is replaced by it at merge.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::keys::{KeyEncryptionKey, KeyError};

/// The associated data binding a sealed secret to its tenant and field.
pub fn secret_aad(tenant_id: &str, field: &str) -> String {
    format!("deprov:target-secret:{tenant_id}:{field}")
}

/// Seals `secret` for storage in a target's config under `field`.
pub fn seal_secret(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    secret: &str,
) -> Result<String, KeyError> {
    let sealed = kek.encrypt(secret.as_bytes(), secret_aad(tenant_id, field).as_bytes())?;
    Ok(STANDARD.encode(sealed))
}

/// Opens a sealed secret. The error says which field failed, never what it holds.
pub(crate) fn open_secret(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    sealed: &str,
) -> Result<Zeroizing<String>, String> {
    let bytes = STANDARD
        .decode(sealed.trim())
        .map_err(|_| format!("{field} is not sealed base64"))?;
    let plain = kek
        .decrypt(&bytes, secret_aad(tenant_id, field).as_bytes())
        .map_err(|_| {
            format!(
                "{field} cannot be opened: it was sealed under another key-encryption key, \
                 for another tenant or field, or altered"
            )
        })?;
    let text = std::str::from_utf8(&plain).map_err(|_| format!("{field} is not UTF-8 text"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

/// Whether a sealed value at least decodes (validation without the key).
pub(crate) fn looks_sealed(sealed: &str) -> bool {
    STANDARD.decode(sealed.trim()).is_ok_and(|b| b.len() > 28)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_for_its_tenant_and_field()
    -> Result<(), Box<dyn std::error::Error>> {
        let kek = KeyEncryptionKey::generate()?;
        let sealed = seal_secret(&kek, "t1", "client_secret", "s3cret")?;
        assert!(looks_sealed(&sealed));
        assert_eq!(
            open_secret(&kek, "t1", "client_secret", &sealed)?.as_str(),
            "s3cret"
        );
        assert!(open_secret(&kek, "t2", "client_secret", &sealed).is_err());
        assert!(open_secret(&kek, "t1", "api_token", &sealed).is_err());
        let err = open_secret(&kek, "t1", "client_secret", "!!")
            .err()
            .unwrap_or_default();
        assert!(err.contains("client_secret"), "{err}");
        Ok(())
    }
}
