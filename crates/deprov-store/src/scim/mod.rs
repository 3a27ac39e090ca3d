//! Storage of SCIM users and groups (RFC 7643, RFC 7644), and the de-provisioning events
//! their changes cause, written in the same transaction as the change.
//!
//! The protocol layer (`deprov-scim`) parses and validates requests, builds the stored
//! representation and resolves filters against the schema; this module keeps resources,
//! enforces uniqueness and versions, evaluates filters in the database, applies membership
//! changes as set operations, and decides which events a change causes:
//!
//! | change | event |
//! |---|---|
//! | `active` true → false (PUT, PATCH, or a POST matching an active user) | `Deactivated` |
//! | `active` false → true | `Reactivated` |
//! | user deleted (also when already inactive) | `Deleted` |
//! | user left a group bound to a target (remove, replace, PUT, group deleted) | `RemovedFromGroup` |
//!
//! Errors the SCIM layer maps to SCIM errors (RFC 7644 §3.12):
//! [`StoreError::Conflict`] (409 `uniqueness`), [`StoreError::NotFound`] (404),
//! [`StoreError::VersionMismatch`] (412), [`StoreError::InvalidMembers`] (400
//! `invalidValue`), [`StoreError::InvalidFilter`] (400 `invalidFilter`).
//!
//! Everything is tenant-scoped: a resource of another tenant is simply not found.
//!
//! Concurrency: a write either reads the resource it changes with `SELECT … FOR UPDATE` on
//! PostgreSQL, or changes it in one statement conditional on the version it was read at
//! (a PATCH or PUT of a user; on PostgreSQL also the event it causes, and a deletion), so
//! two requests racing to deactivate one user (or to remove one member) take turns and only
//! the first records an event; members being added are read `FOR SHARE`, so they cannot be
//! deleted under the insert. On SQLite all writes go through
//! the single writer connection ([`Store::writer`](crate::Store::writer)) and never
//! interleave. Lists count and read in one read-only transaction (repeatable read on
//! PostgreSQL) so `totalResults` agrees with the page.
//!
//! [`StoreError::Conflict`]: crate::StoreError::Conflict
//! [`StoreError::NotFound`]: crate::StoreError::NotFound
//! [`StoreError::VersionMismatch`]: crate::StoreError::VersionMismatch
//! [`StoreError::InvalidMembers`]: crate::StoreError::InvalidMembers
//! [`StoreError::InvalidFilter`]: crate::StoreError::InvalidFilter

mod batching;
mod document;
mod events;
pub(crate) mod filter;
mod groups;
mod list;
pub(crate) mod read_batch;
pub(crate) mod sql;
pub(crate) mod user_batch;
mod users;

use deprov_core::scim::MemberRef;
use sea_orm::{DbErr, FromQueryResult, QueryResult};
use serde_json::Value as JsonValue;

use crate::decode::Decode;
use crate::entity::{group, user};

pub use document::Document;
pub use events::EventRecord;

/// Who asked for a change, recorded with every event it causes.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// `tenants.id` (not the name).
    pub tenant_id: String,
    pub request_id: String,
    /// The SCIM verb (`POST`, `PUT`, `PATCH`, `DELETE`).
    pub method: String,
    /// The request path, e.g. `/Users/0193…`.
    pub path: String,
    /// Who authenticated (a SCIM token's id, say); for logs.
    pub actor: String,
}

/// A stored user.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: String,
    /// As sent: uniqueness and filters ignore case, responses keep it.
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    /// The stored SCIM representation, without `id`, `meta` and `groups`.
    pub resource: Document,
    /// Starts at 1 and grows by one with every write (the ETag's source).
    pub version: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    pub updated_at: i64,
}

/// A user as the protocol layer built it. `resource` is the full SCIM representation to
/// store, canonical keys, without `id`, `meta` and `groups`; the other fields repeat the
/// attributes that are indexed and constrained and must agree with it.
#[derive(Debug, Clone, PartialEq)]
pub struct UserWrite {
    pub user_name: String,
    pub external_id: Option<String>,
    pub display_name: Option<String>,
    pub active: bool,
    pub resource: JsonValue,
}

/// A stored group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupRecord {
    pub id: String,
    pub display_name: String,
    pub external_id: Option<String>,
    /// The stored SCIM representation, without `id`, `meta` and `members`.
    pub resource: JsonValue,
    pub version: i64,
    pub created_at: i64,
    pub updated_at: i64,
    /// The members, ordered by id; `None` when they were not asked for (and not read).
    pub members: Option<Vec<MemberRef>>,
}

/// A group as the protocol layer built it (`resource` without `id`, `meta` and `members`).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupWrite {
    pub display_name: String,
    pub external_id: Option<String>,
    pub resource: JsonValue,
}

/// What [`create_user`](crate::Store::create_user) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateOutcome {
    /// A new user with a new id.
    Created,
    /// The POST matched an existing user that was reused, keeping its id, with its
    /// attributes replaced by the posted ones: an inactive user re-provisioned (Okta's
    /// re-POST after re-assignment), or an active user the POST deactivates.
    Restored,
}

/// The case folding of `caseExact: false` attributes kept in folded columns (`userName`,
/// group `displayName`): Unicode lowercase, as `target_groups.group_ref_folded` does.
pub(crate) fn fold(s: &str) -> String {
    s.to_lowercase()
}

impl From<user::Model> for UserRecord {
    fn from(m: user::Model) -> Self {
        Self {
            id: m.id,
            user_name: m.user_name,
            external_id: m.external_id,
            display_name: m.display_name,
            active: m.active,
            resource: Document::from_value(&m.resource),
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// Reads decode a user straight into its record, the document kept as text.
impl Decode for UserRecord {
    const COLUMNS: &'static [&'static str] = &[
        "id",
        "user_name",
        "external_id",
        "display_name",
        "active",
        // The document as text (migration m20261207_000001): PostgreSQL copies it out
        // rather than printing its jsonb.
        "resource_text",
        "version",
        "created_at",
        "updated_at",
    ];

    fn select_row() -> &'static str {
        static LIST: std::sync::LazyLock<String> =
            std::sync::LazyLock::new(|| UserRecord::select(filter::ROW));
        &LIST
    }

    fn decode(row: &impl crate::decode::Row) -> Result<Self, DbErr> {
        Ok(Self {
            id: row.text(0)?,
            user_name: row.text(1)?,
            external_id: row.text_or_null(2)?,
            display_name: row.text_or_null(3)?,
            active: row.boolean(4)?,
            resource: Document::from_text(row.text(5)?),
            version: row.int(6)?,
            created_at: row.int(7)?,
            updated_at: row.int(8)?,
        })
    }
}

/// The same columns through sea-orm (a list read in a PostgreSQL transaction).
impl FromQueryResult for UserRecord {
    fn from_query_result(res: &QueryResult, pre: &str) -> Result<Self, DbErr> {
        Ok(Self {
            id: res.try_get(pre, "id")?,
            user_name: res.try_get(pre, "user_name")?,
            external_id: res.try_get(pre, "external_id")?,
            display_name: res.try_get(pre, "display_name")?,
            active: res.try_get(pre, "active")?,
            resource: Document::from_text(res.try_get(pre, "resource_text")?),
            version: res.try_get(pre, "version")?,
            created_at: res.try_get(pre, "created_at")?,
            updated_at: res.try_get(pre, "updated_at")?,
        })
    }
}

impl GroupRecord {
    fn from_model(m: group::Model, members: Option<Vec<MemberRef>>) -> Self {
        Self {
            id: m.id,
            display_name: m.display_name,
            external_id: m.external_id,
            resource: m.resource,
            version: m.version,
            created_at: m.created_at,
            updated_at: m.updated_at,
            members,
        }
    }
}
