//! The adapters' view of the sealed secrets in a target's config (client secrets, private
//! keys, API tokens): the convention of [`crate::keys::sealed`], with errors that name the
//! config member at fault and never what it holds.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

use crate::keys::sealed::{open_target_secret_str, seal_target_secret, target_secret_aad};
use crate::keys::{KeyEncryptionKey, KeyError};

/// The associated data binding a sealed secret to its tenant and field.
pub fn secret_aad(tenant_id: &str, field: &str) -> String {
    target_secret_aad(tenant_id, field)
}

/// Seals `secret` for storage in a target's config under `field`.
pub fn seal_secret(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    secret: &str,
) -> Result<String, KeyError> {
    seal_target_secret(kek, tenant_id, field, secret.as_bytes())
}

/// Opens a sealed secret. The error says which field failed, never what it holds.
pub(crate) fn open_secret(
    kek: &KeyEncryptionKey,
    tenant_id: &str,
    field: &str,
    sealed: &str,
) -> Result<Zeroizing<String>, String> {
    open_target_secret_str(kek, tenant_id, field, sealed.trim()).map_err(|_| {
        format!(
            "{field} cannot be opened: it is not sealed base64, was sealed under another \
             key-encryption key, for another tenant or field, or was altered"
        )
    })
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
