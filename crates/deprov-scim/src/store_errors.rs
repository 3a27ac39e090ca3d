//! The store's errors as SCIM errors (RFC 7644 §3.12). The store has already said what a
//! database failure means; this only picks the status.

use deprov_store::StoreError;

use crate::error::ScimError;

pub(crate) fn translate(err: StoreError) -> ScimError {
    match err {
        StoreError::Conflict(detail) => ScimError::uniqueness(detail),
        StoreError::NotFound(detail) => ScimError::not_found(detail),
        StoreError::VersionMismatch { .. } => ScimError::precondition_failed(),
        StoreError::InvalidMembers(ids) => ScimError::invalid_value(format!(
            "these members are not users or groups of this tenant: {}",
            ids.join(", ")
        )),
        StoreError::InvalidFilter(detail) => ScimError::invalid_filter(detail),
        other => ScimError::internal(&other),
    }
}
