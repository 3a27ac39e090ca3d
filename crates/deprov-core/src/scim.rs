//! The SCIM concepts the store needs, free of the wire format: a filter whose attribute
//! references are already resolved against the schema, sort and paging, and group
//! membership changes as set operations.
//!
//! `deprov-scim` parses requests (with `scim_v2`) and resolves attribute names against the
//! documents in `schemas/` into these types; `deprov-store` turns them into SQL. Neither
//! side needs to know the other's details.

/// The two resource types deprov stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResourceKind {
    User,
    Group,
}

/// A SCIM attribute data type (RFC 7643 §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttrType {
    String,
    Boolean,
    Decimal,
    Integer,
    DateTime,
    Binary,
    Reference,
    Complex,
}

/// One attribute of a resource, resolved against the schema.
///
/// `path` is canonical (the schema's spelling, whatever case the client used) and is the
/// JSON path of the value in the stored resource: `["userName"]`, `["name", "givenName"]`,
/// `["emails", "value"]` (a sub-attribute of a multi-valued attribute: matches if any
/// element matches), or `["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
/// "manager", "value"]` for extension attributes, which are stored under their schema URN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrRef {
    pub path: Vec<String>,
    pub kind: AttrType,
    /// Whether comparisons are case-sensitive (RFC 7643 §2.2 `caseExact`).
    pub case_exact: bool,
    /// Index of the first multi-valued segment in `path`, if any (`Some(0)` for
    /// `emails.value`): comparisons then hold when any element satisfies them.
    pub multi_valued_at: Option<usize>,
}

/// Comparison operators of RFC 7644 §3.4.2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A comparison value, already converted to the attribute's type (`"True"` for a boolean
/// attribute arrives here as `Bool(true)`; a dateTime as its RFC 3339 string).
#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    String(String),
    Bool(bool),
    Number(f64),
    Null,
}

/// A resolved filter expression (RFC 7644 §3.4.2.2).
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Compare {
        attr: AttrRef,
        op: CompareOp,
        value: FilterValue,
    },
    Present(AttrRef),
    /// `emails[type eq "work" and value co "@x"]`: some single element of the multi-valued
    /// attribute `attr` satisfies `filter`, whose attribute paths are relative to the element
    /// (`["type"]`, `["value"]`).
    ValuePath {
        attr: AttrRef,
        filter: Box<Filter>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SortOrder {
    #[default]
    Ascending,
    Descending,
}

/// A list or search request, bounds already applied (`count` capped at the maximum).
#[derive(Debug, Clone, PartialEq)]
pub struct ListQuery {
    pub filter: Option<Filter>,
    pub sort_by: Option<AttrRef>,
    pub sort_order: SortOrder,
    /// 1-based (RFC 7644 §3.4.2.4); values below 1 are treated as 1 by the caller.
    pub start_index: u64,
    pub count: u64,
}

/// A member reference in a group.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberRef {
    /// The member's `id`.
    pub value: String,
    pub kind: MemberKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberKind {
    User,
    Group,
}

impl MemberKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MemberKind::User => "User",
            MemberKind::Group => "Group",
        }
    }
}

/// The net effect of a request on a group's membership, as set operations, so that the
/// store can apply hundreds of changes in a few statements without reading the members:
/// `members := (replace_all or current) ∪ add ∖ remove`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembershipChange {
    /// Replace every member (PUT, `replace` of `members`, `remove` of `members` without a
    /// value, which is `Some(vec![])`).
    pub replace_all: Option<Vec<MemberRef>>,
    pub add: Vec<MemberRef>,
    /// Ids to remove.
    pub remove: Vec<String>,
}

impl MembershipChange {
    pub fn is_empty(&self) -> bool {
        self.replace_all.is_none() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// What kind of de-provisioning (or re-provisioning) an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `active` went from true to false, by any verb or dialect.
    Deactivated,
    /// The user was deleted.
    Deleted,
    /// The user left a group that is bound to at least one target.
    RemovedFromGroup,
    /// `active` went from false to true. Nothing is revoked for it; recorded for signals.
    Reactivated,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Deactivated => "deactivated",
            EventKind::Deleted => "deleted",
            EventKind::RemovedFromGroup => "removed_from_group",
            EventKind::Reactivated => "reactivated",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            EventKind::Deactivated,
            EventKind::Deleted,
            EventKind::RemovedFromGroup,
            EventKind::Reactivated,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// Whether this event takes access away (and so is fanned out to revocation targets).
    pub fn revokes(self) -> bool {
        !matches!(self, EventKind::Reactivated)
    }
}

/// The event a change of `active` causes, if any: a repeated deactivation causes nothing.
pub fn activity_transition(before: bool, after: bool) -> Option<EventKind> {
    match (before, after) {
        (true, false) => Some(EventKind::Deactivated),
        (false, true) => Some(EventKind::Reactivated),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transitions_cause_events() {
        assert_eq!(
            activity_transition(true, false),
            Some(EventKind::Deactivated)
        );
        assert_eq!(
            activity_transition(false, true),
            Some(EventKind::Reactivated)
        );
        assert_eq!(activity_transition(false, false), None);
        assert_eq!(activity_transition(true, true), None);
        assert!(!EventKind::Reactivated.revokes());
        assert!(EventKind::RemovedFromGroup.revokes());
    }

    #[test]
    fn event_kinds_round_trip() {
        for k in [
            EventKind::Deactivated,
            EventKind::Deleted,
            EventKind::RemovedFromGroup,
            EventKind::Reactivated,
        ] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
    }
}
