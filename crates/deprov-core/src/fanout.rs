//! Which targets a de-provisioning event reaches.
//!
//! A target without group bindings is tenant-wide: it hears every deactivation and deletion.
//! A target bound to groups hears the deactivation or deletion of a user who is a member of
//! one of its groups, and also the removal of a user from one of its groups — the
//! group-scoped logout that no identity provider offers (DESIGN.md; issue "Durable
//! back-channel logout fan-out"). Re-activations reach nobody: nothing is revoked for them.
//!
//! The rule is the same for every kind of target — relying parties (back-channel logout),
//! clients at OpenID Providers whose grants are revoked (RFC 7009), Global Token Revocation
//! endpoints, provider admin APIs — so an OP client bound to the groups of one application
//! revokes only the grants of that application's users, and is reached when they leave it.

use crate::scim::EventKind;

/// A group as the rule sees it: bindings name a group by id or by display name, both
/// compared case-insensitively (folded to lower case by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFacts {
    pub id_folded: String,
    pub display_name_folded: String,
}

impl GroupFacts {
    fn named_by(&self, binding: &str) -> bool {
        binding == self.id_folded || binding == self.display_name_folded
    }
}

/// The group bindings of a target (folded); empty means tenant-wide.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetScope {
    pub groups: Vec<String>,
}

/// What is known about an event when it is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFacts<'a> {
    pub kind: EventKind,
    /// The group the user left, for [`EventKind::RemovedFromGroup`].
    pub group: Option<&'a GroupFacts>,
    /// The groups the user belonged to when the event happened.
    pub member_of: &'a [GroupFacts],
}

pub fn reaches(scope: &TargetScope, event: &EventFacts<'_>) -> bool {
    let bound_to = |g: &GroupFacts| scope.groups.iter().any(|b| g.named_by(b));
    match event.kind {
        EventKind::Reactivated => false,
        EventKind::Deactivated | EventKind::Deleted => {
            scope.groups.is_empty() || event.member_of.iter().any(bound_to)
        }
        EventKind::RemovedFromGroup => {
            !scope.groups.is_empty() && event.group.is_some_and(bound_to)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, name: &str) -> GroupFacts {
        GroupFacts {
            id_folded: id.into(),
            display_name_folded: name.into(),
        }
    }

    #[test]
    fn tenant_wide_targets_hear_deactivation_and_deletion_only() {
        let scope = TargetScope::default();
        for kind in [EventKind::Deactivated, EventKind::Deleted] {
            let facts = EventFacts {
                kind,
                group: None,
                member_of: &[],
            };
            assert!(reaches(&scope, &facts));
        }
        let eng = group("g1", "engineering");
        let removed = EventFacts {
            kind: EventKind::RemovedFromGroup,
            group: Some(&eng),
            member_of: &[],
        };
        assert!(!reaches(&scope, &removed));
        let back = EventFacts {
            kind: EventKind::Reactivated,
            group: None,
            member_of: &[],
        };
        assert!(!reaches(&scope, &back));
    }

    #[test]
    fn group_bound_targets_hear_their_members_and_their_groups() {
        let scope = TargetScope {
            groups: vec!["engineering".into()],
        };
        let eng = group("g1", "engineering");
        let ops = group("g2", "ops");
        let removed_eng = EventFacts {
            kind: EventKind::RemovedFromGroup,
            group: Some(&eng),
            member_of: &[],
        };
        let removed_ops = EventFacts {
            kind: EventKind::RemovedFromGroup,
            group: Some(&ops),
            member_of: &[],
        };
        assert!(reaches(&scope, &removed_eng));
        assert!(!reaches(&scope, &removed_ops));
        let member = [eng.clone()];
        let outsider = [ops.clone()];
        let deact_member = EventFacts {
            kind: EventKind::Deactivated,
            group: None,
            member_of: &member,
        };
        let deact_outsider = EventFacts {
            kind: EventKind::Deactivated,
            group: None,
            member_of: &outsider,
        };
        assert!(reaches(&scope, &deact_member));
        assert!(!reaches(&scope, &deact_outsider));
        // Bound by id works as well as by name.
        let by_id = TargetScope {
            groups: vec!["g2".into()],
        };
        assert!(reaches(&by_id, &removed_ops));
    }
}
