//! The SCIM side of the store: users, groups, filters, paging, membership and the
//! de-provisioning events, on both backends.
#![allow(clippy::print_stderr)]

use std::collections::HashSet;
use std::time::Instant;

use deprov_core::scim::{
    AttrRef, AttrType, CompareOp, EventKind, Filter, FilterValue, ListQuery, MemberKind, MemberRef,
    MembershipChange, SortOrder,
};
use deprov_core::{SigningAlgorithm, SubjectMapping, TenantName};
use deprov_store::scim::{
    CreateOutcome, EventRecord, GroupWrite, RequestContext, UserRecord, UserWrite,
};
use deprov_store::targets::NewRelyingParty;
use deprov_store::{Store, StoreError, db_test};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const CUSTOM: &str = "urn:example:params:scim:schemas:extension:test:2.0:User";

async fn tenant(store: &Store, name: &str) -> anyhow::Result<String> {
    Ok(store
        .create_tenant(&TenantName::parse(name)?, "test")
        .await?
        .tenant
        .id)
}

fn ctx(tenant_id: &str, method: &str, path: &str) -> RequestContext {
    RequestContext {
        tenant_id: tenant_id.to_owned(),
        request_id: format!("req-{method}-{path}"),
        method: method.to_owned(),
        path: path.to_owned(),
        actor: "test".to_owned(),
    }
}

fn user(user_name: &str, external_id: Option<&str>, active: bool) -> UserWrite {
    user_with(user_name, external_id, active, json!({}))
}

/// A user whose resource has `extra` merged into the minimal representation.
fn user_with(user_name: &str, external_id: Option<&str>, active: bool, extra: Value) -> UserWrite {
    let mut resource = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "active": active,
    });
    if let Some(e) = external_id {
        resource["externalId"] = json!(e);
    }
    if let (Some(obj), Value::Object(more)) = (resource.as_object_mut(), extra) {
        obj.extend(more);
    }
    let display_name = resource
        .get("displayName")
        .and_then(Value::as_str)
        .map(str::to_owned);
    UserWrite {
        user_name: user_name.to_owned(),
        external_id: external_id.map(str::to_owned),
        display_name,
        active,
        resource,
    }
}

fn group(display_name: &str) -> GroupWrite {
    GroupWrite {
        display_name: display_name.to_owned(),
        external_id: None,
        resource: json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
            "displayName": display_name,
        }),
    }
}

fn member(id: &str) -> MemberRef {
    MemberRef {
        value: id.to_owned(),
        kind: MemberKind::User,
    }
}

fn attr(
    path: &[&str],
    kind: AttrType,
    case_exact: bool,
    multi_valued_at: Option<usize>,
) -> AttrRef {
    AttrRef {
        path: path.iter().map(|s| (*s).to_owned()).collect(),
        kind,
        case_exact,
        multi_valued_at,
    }
}

/// A single-valued, case-insensitive string attribute.
fn s(path: &[&str]) -> AttrRef {
    attr(path, AttrType::String, false, None)
}

fn cmp(attr: AttrRef, op: CompareOp, value: FilterValue) -> Filter {
    Filter::Compare { attr, op, value }
}

fn text(v: &str) -> FilterValue {
    FilterValue::String(v.to_owned())
}

fn and(a: Filter, b: Filter) -> Filter {
    Filter::And(Box::new(a), Box::new(b))
}

fn or(a: Filter, b: Filter) -> Filter {
    Filter::Or(Box::new(a), Box::new(b))
}

fn not(a: Filter) -> Filter {
    Filter::Not(Box::new(a))
}

fn query(filter: Option<Filter>) -> ListQuery {
    ListQuery {
        filter,
        sort_by: None,
        sort_order: SortOrder::Ascending,
        start_index: 1,
        count: 1000,
    }
}

/// The userNames a filter selects, sorted.
async fn names(store: &Store, tenant_id: &str, filter: Filter) -> anyhow::Result<Vec<String>> {
    let (total, users) = store.list_users(tenant_id, &query(Some(filter))).await?;
    let mut names: Vec<String> = users.into_iter().map(|u| u.user_name).collect();
    names.sort();
    assert_eq!(total as usize, names.len());
    Ok(names)
}

async fn events(store: &Store, tenant_id: &str) -> anyhow::Result<Vec<EventRecord>> {
    Ok(store.list_events(tenant_id, None).await?)
}

fn kinds(events: &[EventRecord]) -> Vec<(EventKind, String)> {
    events.iter().map(|e| (e.kind, e.user_id.clone())).collect()
}

async fn bind_rp(store: &Store, tenant_name: &str, groups: &[&str]) -> anyhow::Result<()> {
    let client_id = format!("rp-{}", groups.join("-"));
    let groups = groups.iter().map(|g| (*g).to_owned()).collect();
    add_rp(store, tenant_name, &client_id, groups, true).await
}

/// A relying party of the tenant bound to `groups` (tenant-wide when empty).
async fn add_rp(
    store: &Store,
    tenant_name: &str,
    client_id: &str,
    groups: Vec<String>,
    enabled: bool,
) -> anyhow::Result<()> {
    store
        .add_relying_party(
            tenant_name,
            NewRelyingParty {
                client_id: client_id.to_owned(),
                backchannel_logout_uri: url::Url::parse("https://rp.example.com/bcl")?,
                subject: SubjectMapping::UserName,
                alg: SigningAlgorithm::ES256,
                require_sid: false,
                issuer: None,
                kid: None,
                groups,
                enabled,
            },
            "test",
        )
        .await?;
    Ok(())
}

/// Milliseconds since the epoch as RFC 3339 (UTC, millisecond precision).
fn rfc3339(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

#[test]
fn rfc3339_helper_is_right() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(1_709_210_096_789), "2024-02-29T12:34:56.789Z");
}

db_test!(
    user_names_are_unique_case_insensitively_and_returned_as_sent,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let c = ctx(&t, "POST", "/Users");
        let (alice, outcome) = store
            .create_user(&c, user("Alice@Example.COM", None, true))
            .await?;
        assert_eq!(outcome, CreateOutcome::Created);
        assert_eq!(alice.user_name, "Alice@Example.COM");
        assert_eq!(alice.version, 1);
        let again = store
            .create_user(&c, user("alice@example.com", None, true))
            .await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
        // Unicode folding, not only ASCII.
        store.create_user(&c, user("ÉMILE", None, true)).await?;
        let again = store.create_user(&c, user("émile", None, true)).await;
        assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

        // A rename onto another user's name, in another case, is a conflict too.
        let (bob, _) = store.create_user(&c, user("bob", None, true)).await?;
        let renamed = store
            .replace_user(
                &ctx(&t, "PUT", "/Users/b"),
                &bob.id,
                None,
                user("ALICE@example.com", None, true),
            )
            .await;
        assert!(
            matches!(renamed, Err(StoreError::Conflict(_))),
            "{renamed:?}"
        );
        // Changing only the case of one's own name is fine and is kept as sent.
        let bob2 = store
            .replace_user(
                &ctx(&t, "PUT", "/Users/b"),
                &bob.id,
                None,
                user("BOB", None, true),
            )
            .await?;
        assert_eq!(bob2.user_name, "BOB");
        let got = store.get_user(&t, &alice.id).await?;
        assert_eq!(
            got.map(|u| u.user_name),
            Some("Alice@Example.COM".to_owned())
        );
        assert_eq!(
            names(
                &store,
                &t,
                cmp(s(&["userName"]), CompareOp::Eq, text("ALICE@example.com"))
            )
            .await?,
            vec!["Alice@Example.COM"]
        );
        Ok(())
    }
);

db_test!(
    re_post_of_an_inactive_user_restores_it_with_the_same_id,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        let (alice, _) = store
            .create_user(&post, user("alice", Some("okta-1"), true))
            .await?;
        store
            .replace_user(
                &ctx(&t, "PUT", "/Users/a"),
                &alice.id,
                None,
                user("alice", Some("okta-1"), false),
            )
            .await?;
        // Okta re-assigns: the same userName (another case) comes back with new attributes.
        let (restored, outcome) = store
            .create_user(
                &post,
                user_with(
                    "ALICE",
                    Some("okta-1"),
                    true,
                    json!({"displayName": "Alice L"}),
                ),
            )
            .await?;
        assert_eq!(outcome, CreateOutcome::Restored);
        assert_eq!(restored.id, alice.id);
        assert!(restored.active);
        assert_eq!(restored.user_name, "ALICE");
        assert_eq!(restored.display_name.as_deref(), Some("Alice L"));
        assert_eq!(restored.version, 3);
        assert_eq!(restored.created_at, alice.created_at);
        let evs = events(&store, &t).await?;
        assert_eq!(
            kinds(&evs),
            vec![
                (EventKind::Deactivated, alice.id.clone()),
                (EventKind::Reactivated, alice.id.clone())
            ]
        );

        // Matched by externalId when the userName changed at the IdP.
        store
            .replace_user(
                &ctx(&t, "PUT", "/Users/a"),
                &alice.id,
                None,
                user("ALICE", Some("okta-1"), false),
            )
            .await?;
        let (again, outcome) = store
            .create_user(&post, user("alice.liddell", Some("okta-1"), true))
            .await?;
        assert_eq!(outcome, CreateOutcome::Restored);
        assert_eq!(again.id, alice.id);
        assert_eq!(again.user_name, "alice.liddell");

        // An active user with the same userName is a conflict, and nothing is recorded.
        let before = events(&store, &t).await?.len();
        let dup = store
            .create_user(&post, user("Alice.Liddell", Some("okta-2"), true))
            .await;
        assert!(matches!(dup, Err(StoreError::Conflict(_))), "{dup:?}");
        assert_eq!(events(&store, &t).await?.len(), before);
        let (total, _) = store.list_users(&t, &query(None)).await?;
        assert_eq!(total, 1);
        Ok(())
    }
);

db_test!(
    post_with_active_false_matching_an_active_user_deactivates_it,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        let (alice, _) = store
            .create_user(&post, user("alice", Some("x1"), true))
            .await?;
        let (same, outcome) = store
            .create_user(&post, user("alice", Some("x1"), false))
            .await?;
        assert_eq!(outcome, CreateOutcome::Restored);
        assert_eq!(same.id, alice.id);
        assert!(!same.active);
        let evs = events(&store, &t).await?;
        assert_eq!(
            kinds(&evs),
            vec![(EventKind::Deactivated, alice.id.clone())]
        );
        assert_eq!(evs[0].scim_method, "POST");
        assert_eq!(evs[0].user_snapshot["userName"], "alice");
        // Posting it inactive again changes nothing that revokes.
        store
            .create_user(&post, user("alice", Some("x1"), false))
            .await?;
        assert_eq!(events(&store, &t).await?.len(), 1);
        Ok(())
    }
);

db_test!(
    deactivation_records_one_event_repeats_none_and_reactivation_is_recorded,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let emails = json!({"emails": [{"value": "a@x.example", "type": "work", "primary": true}]});
        let (alice, _) = store
            .create_user(
                &ctx(&t, "POST", "/Users"),
                user_with("alice", Some("e1"), true, emails.clone()),
            )
            .await?;
        assert!(events(&store, &t).await?.is_empty());
        let patch = RequestContext {
            request_id: "r-42".to_owned(),
            ..ctx(&t, "PATCH", &format!("/Users/{}", alice.id))
        };
        let off = store
            .replace_user(
                &patch,
                &alice.id,
                Some(1),
                user_with("alice", Some("e1"), false, emails.clone()),
            )
            .await?;
        assert!(!off.active);
        assert_eq!(off.version, 2);
        let evs = events(&store, &t).await?;
        assert_eq!(
            kinds(&evs),
            vec![(EventKind::Deactivated, alice.id.clone())]
        );
        let ev = &evs[0];
        assert_eq!(ev.request_id, "r-42");
        assert_eq!(ev.scim_method, "PATCH");
        assert_eq!(ev.scim_path, format!("/Users/{}", alice.id));
        // The snapshot is the user as stored (every attribute a subject mapping may name)
        // with the identifiers laid over it.
        let snap = &ev.user_snapshot;
        assert_eq!(snap["id"], json!(alice.id));
        assert_eq!(snap["userName"], "alice");
        assert_eq!(snap["externalId"], "e1");
        assert_eq!(snap["displayName"], json!(null));
        assert_eq!(snap["active"], false);
        assert_eq!(
            snap["emails"],
            json!([{"value": "a@x.example", "type": "work", "primary": true}])
        );
        // Repeated deactivation (any verb) records nothing.
        store
            .replace_user(
                &patch,
                &alice.id,
                None,
                user_with("alice", Some("e1"), false, emails.clone()),
            )
            .await?;
        assert_eq!(events(&store, &t).await?.len(), 1);
        // Re-activation is recorded, as not revoking.
        store
            .replace_user(
                &patch,
                &alice.id,
                None,
                user_with("alice", Some("e1"), true, emails),
            )
            .await?;
        let evs = events(&store, &t).await?;
        assert_eq!(evs.len(), 2);
        assert_eq!(evs[1].kind, EventKind::Reactivated);
        assert!(!evs[1].kind.revokes());
        Ok(())
    }
);

db_test!(
    deleting_a_user_records_deleted_and_the_event_outlives_the_user,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        bind_rp(&store, "acme", &["Engineering"]).await?;
        let post = ctx(&t, "POST", "/Users");
        let (alice, _) = store
            .create_user(&post, user("alice", Some("e1"), true))
            .await?;
        let (bob, _) = store.create_user(&post, user("bob", None, false)).await?;
        let eng = store
            .create_group(
                &ctx(&t, "POST", "/Groups"),
                group("Engineering"),
                vec![member(&alice.id), member(&bob.id)],
            )
            .await?;
        store
            .delete_user(&ctx(&t, "DELETE", "/Users/a"), &alice.id, None)
            .await?;
        // Already inactive: the delete is still a trigger.
        store
            .delete_user(&ctx(&t, "DELETE", "/Users/b"), &bob.id, Some(1))
            .await?;
        assert!(store.get_user(&t, &alice.id).await?.is_none());
        let evs = events(&store, &t).await?;
        assert_eq!(
            kinds(&evs),
            vec![
                (EventKind::Deleted, alice.id.clone()),
                (EventKind::Deleted, bob.id.clone())
            ]
        );
        assert_eq!(evs[0].user_snapshot["userName"], "alice");
        assert_eq!(evs[0].user_snapshot["externalId"], "e1");
        assert_eq!(evs[1].user_snapshot["active"], false);
        // Memberships went with the users, without RemovedFromGroup events.
        let g = store.get_group(&t, &eng.id, true).await?;
        assert_eq!(g.and_then(|g| g.members).map(|m| m.len()), Some(0));
        let again = store
            .delete_user(&ctx(&t, "DELETE", "/Users/a"), &alice.id, None)
            .await;
        assert!(matches!(again, Err(StoreError::NotFound(_))), "{again:?}");
        assert_eq!(store.list_events(&t, Some(&alice.id)).await?.len(), 1);
        Ok(())
    }
);

/// Three users with varied attributes for the filter tests.
async fn seed(store: &Store, t: &str) -> anyhow::Result<Vec<UserRecord>> {
    let post = ctx(t, "POST", "/Users");
    let (alice, _) = store
        .create_user(
            &post,
            user_with(
                "Alice@Example.com",
                Some("ext-a"),
                true,
                json!({
                    "displayName": "Alice Liddell",
                    "title": "Engineer",
                    "name": {"givenName": "Alice", "familyName": "Liddell"},
                    "emails": [
                        {"value": "alice@work.example", "type": "work", "primary": true},
                        {"value": "alice@home.example", "type": "home"}
                    ],
                    ENTERPRISE: {"employeeNumber": "1001", "manager": {"value": "m1"}},
                    CUSTOM: {"level": 1, "remote": true}
                }),
            ),
        )
        .await?;
    let (bob, _) = store
        .create_user(
            &post,
            user_with(
                "bob@example.com",
                Some("ext-b"),
                false,
                json!({
                    "displayName": "Bob",
                    "title": "Manager",
                    "name": {"givenName": "Bob"},
                    "emails": [{"value": "bob@home.example", "type": "home", "primary": true}],
                    ENTERPRISE: {"employeeNumber": "1002"},
                    CUSTOM: {"level": 2, "remote": false}
                }),
            ),
        )
        .await?;
    let (carol, _) = store
        .create_user(
            &post,
            user_with(
                "carol@other.org",
                None,
                true,
                json!({
                    "title": "",
                    "emails": [],
                    CUSTOM: {"level": 10.5, "remote": "true"}
                }),
            ),
        )
        .await?;
    Ok(vec![alice, bob, carol])
}

const A: &str = "Alice@Example.com";
const B: &str = "bob@example.com";
const C: &str = "carol@other.org";

db_test!(
    filters_cover_every_operator,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let users = seed(&store, &t).await?;
        let un = || s(&["userName"]);
        let n = |f| names(&store, &t, f);
        use CompareOp::*;

        assert_eq!(n(cmp(un(), Eq, text("alice@example.COM"))).await?, vec![A]);
        assert_eq!(
            n(cmp(un(), Ne, text("alice@example.com"))).await?,
            vec![B, C]
        );
        assert_eq!(n(cmp(un(), Co, text("EXAMPLE"))).await?, vec![A, B]);
        assert_eq!(n(cmp(un(), Sw, text("BO"))).await?, vec![B]);
        assert_eq!(n(cmp(un(), Ew, text(".ORG"))).await?, vec![C]);
        assert_eq!(n(cmp(un(), Gt, text("bob@example.com"))).await?, vec![C]);
        assert_eq!(n(cmp(un(), Ge, text("BOB@example.com"))).await?, vec![B, C]);
        assert_eq!(n(cmp(un(), Lt, text("bob"))).await?, vec![A]);
        assert_eq!(n(cmp(un(), Le, text("bob@example.com"))).await?, vec![A, B]);
        // caseExact userName would use the column as sent.
        let exact = attr(&["userName"], AttrType::String, true, None);
        assert!(
            n(cmp(exact.clone(), Eq, text("alice@example.com")))
                .await?
                .is_empty()
        );
        assert_eq!(n(cmp(exact, Eq, text(A))).await?, vec![A]);

        // Columns: id, externalId (caseExact), displayName (not), active, meta.
        assert_eq!(
            n(cmp(
                attr(&["id"], AttrType::String, true, None),
                Eq,
                text(&users[1].id)
            ))
            .await?,
            vec![B]
        );
        let ext = attr(&["externalId"], AttrType::String, true, None);
        assert_eq!(n(cmp(ext.clone(), Eq, text("ext-a"))).await?, vec![A]);
        assert!(n(cmp(ext.clone(), Eq, text("EXT-A"))).await?.is_empty());
        assert_eq!(n(Filter::Present(ext.clone())).await?, vec![A, B]);
        assert_eq!(n(not(Filter::Present(ext))).await?, vec![C]);
        assert_eq!(
            n(cmp(s(&["displayName"]), Eq, text("alice LIDDELL"))).await?,
            vec![A]
        );
        assert_eq!(n(cmp(s(&["displayName"]), Co, text("lid"))).await?, vec![A]);
        let active = attr(&["active"], AttrType::Boolean, true, None);
        assert_eq!(
            n(cmp(active.clone(), Eq, FilterValue::Bool(false))).await?,
            vec![B]
        );
        assert_eq!(
            n(cmp(active.clone(), Eq, FilterValue::Bool(true))).await?,
            vec![A, C]
        );
        assert_eq!(n(cmp(active, Ne, FilterValue::Bool(true))).await?, vec![B]);
        assert_eq!(
            n(cmp(s(&["meta", "resourceType"]), Eq, text("user"))).await?,
            vec![A, B, C]
        );

        // JSON attributes: presence (empty string and empty array are absent), nested.
        assert_eq!(n(Filter::Present(s(&["title"]))).await?, vec![A, B]);
        assert_eq!(n(not(Filter::Present(s(&["title"])))).await?, vec![C]);
        assert_eq!(n(cmp(s(&["title"]), Eq, text("ENGINEER"))).await?, vec![A]);
        // `ne` needs a value; `not eq` also matches resources without one.
        assert_eq!(
            n(cmp(s(&["name", "givenName"]), Ne, text("alice"))).await?,
            vec![B]
        );
        assert_eq!(
            n(not(cmp(s(&["name", "givenName"]), Eq, text("alice")))).await?,
            vec![B, C]
        );
        assert_eq!(
            n(cmp(s(&["name", "familyName"]), Sw, text("lid"))).await?,
            vec![A]
        );
        assert_eq!(
            n(cmp(s(&["name", "givenName"]), Eq, FilterValue::Null)).await?,
            vec![C]
        );

        // Multi-valued: a sub-attribute matches when any element does.
        let email = attr(&["emails", "value"], AttrType::String, false, Some(0));
        let etype = attr(&["emails", "type"], AttrType::String, false, Some(0));
        let eprimary = attr(&["emails", "primary"], AttrType::Boolean, false, Some(0));
        assert_eq!(n(cmp(email.clone(), Co, text("HOME"))).await?, vec![A, B]);
        assert_eq!(
            n(cmp(email.clone(), Ew, text("@work.example"))).await?,
            vec![A]
        );
        assert_eq!(
            n(Filter::Present(attr(
                &["emails"],
                AttrType::Complex,
                false,
                Some(0)
            )))
            .await?,
            vec![A, B]
        );
        assert_eq!(
            n(cmp(eprimary.clone(), Eq, FilterValue::Bool(true))).await?,
            vec![A, B]
        );
        // Value path: one element must satisfy the whole inner filter.
        let emails = attr(&["emails"], AttrType::Complex, false, Some(0));
        let vp = |f: Filter| Filter::ValuePath {
            attr: emails.clone(),
            filter: Box::new(f),
        };
        let el = |name: &str, kind| attr(&[name], kind, false, None);
        assert_eq!(
            n(vp(cmp(el("type", AttrType::String), Eq, text("Work")))).await?,
            vec![A]
        );
        // Entra's `emails[type eq "work"].value eq "…"`.
        assert_eq!(
            n(vp(and(
                cmp(el("type", AttrType::String), Eq, text("work")),
                cmp(
                    el("value", AttrType::String),
                    Eq,
                    text("ALICE@work.example")
                )
            )))
            .await?,
            vec![A]
        );
        assert!(
            n(vp(and(
                cmp(el("type", AttrType::String), Eq, text("home")),
                cmp(
                    el("primary", AttrType::Boolean),
                    Eq,
                    FilterValue::Bool(true)
                )
            )))
            .await?
                == vec![B]
        );
        // …whereas across elements, alice's home email and primary work email both count.
        assert_eq!(
            n(and(
                cmp(etype, Eq, text("home")),
                cmp(eprimary, Eq, FilterValue::Bool(true))
            ))
            .await?,
            vec![A, B]
        );
        assert_eq!(
            n(vp(or(
                cmp(el("value", AttrType::String), Sw, text("bob")),
                cmp(el("value", AttrType::String), Sw, text("carol"))
            )))
            .await?,
            vec![B]
        );

        // Extension attributes live under their URN.
        assert_eq!(
            n(cmp(s(&[ENTERPRISE, "employeeNumber"]), Eq, text("1001"))).await?,
            vec![A]
        );
        assert_eq!(
            n(cmp(s(&[ENTERPRISE, "manager", "value"]), Eq, text("m1"))).await?,
            vec![A]
        );
        assert_eq!(
            n(Filter::Present(s(&[ENTERPRISE, "manager"]))).await?,
            vec![A]
        );

        // Numbers compare as numbers (10.5 > 2 although "10.5" < "2").
        let level = |k| attr(&[CUSTOM, "level"], k, false, None);
        let num = FilterValue::Number;
        assert_eq!(
            n(cmp(level(AttrType::Integer), Gt, num(1.0))).await?,
            vec![B, C]
        );
        assert_eq!(
            n(cmp(level(AttrType::Integer), Eq, num(2.0))).await?,
            vec![B]
        );
        assert_eq!(
            n(cmp(level(AttrType::Integer), Le, num(2.0))).await?,
            vec![A, B]
        );
        assert_eq!(
            n(cmp(level(AttrType::Decimal), Eq, num(10.5))).await?,
            vec![C]
        );
        assert_eq!(
            n(cmp(level(AttrType::Decimal), Ne, num(10.5))).await?,
            vec![A, B]
        );
        assert_eq!(
            n(cmp(level(AttrType::Decimal), Lt, num(10.49))).await?,
            vec![A, B]
        );
        // Booleans inside JSON: only JSON booleans (carol's "true" is a string).
        let remote = attr(&[CUSTOM, "remote"], AttrType::Boolean, false, None);
        assert_eq!(
            n(cmp(remote.clone(), Eq, FilterValue::Bool(true))).await?,
            vec![A]
        );
        assert_eq!(
            n(cmp(remote.clone(), Eq, FilterValue::Bool(false))).await?,
            vec![B]
        );
        assert_eq!(n(cmp(remote, Ne, FilterValue::Bool(true))).await?, vec![B]);

        // Nesting, or, not.
        assert_eq!(
            n(or(
                cmp(un(), Sw, text("alice")),
                cmp(un(), Sw, text("carol"))
            ))
            .await?,
            vec![A, C]
        );
        assert_eq!(
            n(and(
                cmp(
                    attr(&["active"], AttrType::Boolean, true, None),
                    Eq,
                    FilterValue::Bool(true)
                ),
                or(
                    cmp(s(&["title"]), Eq, text("engineer")),
                    not(Filter::Present(attr(
                        &["emails"],
                        AttrType::Complex,
                        false,
                        Some(0)
                    )))
                )
            ))
            .await?,
            vec![A, C]
        );
        assert_eq!(n(not(not(cmp(un(), Sw, text("b"))))).await?, vec![B]);

        // dateTime on meta: RFC 3339 values against the stored milliseconds.
        let modified = attr(&["meta", "lastModified"], AttrType::DateTime, false, None);
        let created = attr(&["meta", "created"], AttrType::DateTime, false, None);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        let carol = store
            .replace_user(
                &ctx(&t, "PUT", "/Users/c"),
                &users[2].id,
                None,
                user("carol@other.org", None, true),
            )
            .await?;
        let before_carol = rfc3339(carol.updated_at - 1);
        assert_eq!(
            n(cmp(modified.clone(), Gt, text(&before_carol))).await?,
            vec![C]
        );
        assert_eq!(
            n(cmp(modified.clone(), Le, text(&before_carol))).await?,
            vec![A, B]
        );
        assert_eq!(
            n(cmp(modified.clone(), Eq, text(&rfc3339(carol.updated_at)))).await?,
            vec![C]
        );
        // With an offset instead of Z.
        assert_eq!(
            n(cmp(created.clone(), Ge, text("1970-01-01T02:00:00+02:00"))).await?,
            vec![A, B, C]
        );
        assert!(
            n(cmp(created, Gt, text("2999-01-01T00:00:00Z")))
                .await?
                .is_empty()
        );
        Ok(())
    }
);

db_test!(
    filter_values_are_literal_never_sql_or_wildcards,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        let tricky = [
            "o'brien",
            "100%_done",
            "back\\slash",
            "say \"hi\"",
            "x'); DROP TABLE users; --",
            "plain",
        ];
        for name in tricky {
            store
                .create_user(&post, user_with(name, None, true, json!({"title": name})))
                .await?;
        }
        for name in tricky {
            for path in [&["userName"][..], &["title"][..]] {
                assert_eq!(
                    names(&store, &t, cmp(s(path), CompareOp::Eq, text(name))).await?,
                    vec![name]
                );
            }
        }
        let un = || s(&["userName"]);
        let title = || s(&["title"]);
        // LIKE wildcards are ordinary characters.
        for (op, v, want) in [
            (CompareOp::Co, "%", vec!["100%_done"]),
            (CompareOp::Co, "_", vec!["100%_done"]),
            (CompareOp::Sw, "%", vec![]),
            (CompareOp::Ew, "_", vec![]),
            (CompareOp::Ew, "%_done", vec!["100%_done"]),
            (CompareOp::Co, "\\", vec!["back\\slash"]),
            (CompareOp::Sw, "back\\", vec!["back\\slash"]),
            (
                CompareOp::Co,
                "'",
                vec!["o'brien", "x'); DROP TABLE users; --"],
            ),
            (CompareOp::Co, "\"", vec!["say \"hi\""]),
            (CompareOp::Ew, "\"hi\"", vec!["say \"hi\""]),
            (CompareOp::Co, "') OR ('1'='1", vec![]),
        ] {
            let mut want: Vec<&str> = want;
            want.sort();
            assert_eq!(
                names(&store, &t, cmp(un(), op, text(v))).await?,
                want,
                "userName {op:?} {v:?}"
            );
            assert_eq!(
                names(&store, &t, cmp(title(), op, text(v))).await?,
                want,
                "title {op:?} {v:?}"
            );
        }
        // An empty substring is in every string.
        assert_eq!(
            names(&store, &t, cmp(title(), CompareOp::Ew, text("")))
                .await?
                .len(),
            6
        );
        // Attribute names are bound too: a path that tries to break out matches nothing or is refused.
        let weird = store
            .list_users(
                &t,
                &query(Some(cmp(
                    s(&["title\"') OR 1=1 --"]),
                    CompareOp::Eq,
                    text("x"),
                ))),
            )
            .await;
        assert!(
            matches!(&weird, Err(StoreError::InvalidFilter(_)) | Ok((0, _))),
            "{weird:?}"
        );
        let weird = store
            .list_users(
                &t,
                &query(Some(cmp(s(&["a' || 'b"]), CompareOp::Eq, text("x")))),
            )
            .await?;
        assert_eq!(weird.0, 0);
        let (total, _) = store.list_users(&t, &query(None)).await?;
        assert_eq!(total, 6);
        Ok(())
    }
);

db_test!(
    nonsensical_comparisons_are_invalid_filters,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        seed(&store, &t).await?;
        let active = attr(&["active"], AttrType::Boolean, true, None);
        let level = attr(&[CUSTOM, "level"], AttrType::Integer, false, None);
        let modified = attr(&["meta", "lastModified"], AttrType::DateTime, false, None);
        for f in [
            cmp(active.clone(), CompareOp::Gt, FilterValue::Bool(true)),
            cmp(active, CompareOp::Eq, text("yes")),
            cmp(level.clone(), CompareOp::Co, FilterValue::Number(1.0)),
            cmp(level, CompareOp::Eq, text("1")),
            cmp(modified.clone(), CompareOp::Gt, text("yesterday")),
            cmp(modified, CompareOp::Sw, text("2024")),
            cmp(s(&["userName"]), CompareOp::Gt, FilterValue::Null),
            cmp(
                attr(&["name"], AttrType::Complex, false, None),
                CompareOp::Eq,
                text("x"),
            ),
        ] {
            let got = store.list_users(&t, &query(Some(f.clone()))).await;
            assert!(
                matches!(got, Err(StoreError::InvalidFilter(_))),
                "{f:?}: {got:?}"
            );
        }
        Ok(())
    }
);

db_test!(
    sorting_works_both_ways_and_paging_is_stable,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        // 25 users; family names repeat (ties) and some are missing.
        for i in 0..25 {
            let family = if i % 5 == 0 {
                json!(null)
            } else {
                json!(format!("F{}", i % 3))
            };
            let mut extra = json!({
                "emails": [
                    {"value": format!("z{i:02}@x"), "type": "home"},
                    {"value": format!("{:02}@x", 24 - i), "type": "work", "primary": true}
                ]
            });
            if !family.is_null() {
                extra["name"] = json!({"familyName": family});
            }
            let name = if i % 2 == 0 {
                format!("User{i:02}")
            } else {
                format!("user{i:02}")
            };
            store
                .create_user(&post, user_with(&name, None, true, extra))
                .await?;
        }
        let all = |sort_by: Option<AttrRef>, order: SortOrder| {
            let store = store.clone();
            let t = t.clone();
            async move {
                let q = ListQuery {
                    sort_by,
                    sort_order: order,
                    ..query(None)
                };
                anyhow::Ok(store.list_users(&t, &q).await?.1)
            }
        };
        // userName ignores case when sorting.
        let asc = all(Some(s(&["userName"])), SortOrder::Ascending).await?;
        let expected: Vec<String> = (0..25)
            .map(|i| {
                if i % 2 == 0 {
                    format!("User{i:02}")
                } else {
                    format!("user{i:02}")
                }
            })
            .collect();
        assert_eq!(
            asc.iter().map(|u| u.user_name.clone()).collect::<Vec<_>>(),
            expected
        );
        let desc = all(Some(s(&["userName"])), SortOrder::Descending).await?;
        let mut reversed = expected.clone();
        reversed.reverse();
        assert_eq!(
            desc.iter().map(|u| u.user_name.clone()).collect::<Vec<_>>(),
            reversed
        );

        // Missing values last when ascending, first when descending.
        let family = s(&["name", "familyName"]);
        let asc = all(Some(family.clone()), SortOrder::Ascending).await?;
        let fam = |u: &UserRecord| {
            u.resource
                .to_value()
                .ok()?
                .pointer("/name/familyName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        assert!(asc[..20].iter().all(|u| fam(u).is_some()));
        assert!(asc[20..].iter().all(|u| fam(u).is_none()));
        assert!(asc[..20].windows(2).all(|w| fam(&w[0]) <= fam(&w[1])));
        let desc = all(Some(family.clone()), SortOrder::Descending).await?;
        assert!(desc[..5].iter().all(|u| fam(u).is_none()));
        assert!(desc[5..].windows(2).all(|w| fam(&w[0]) >= fam(&w[1])));

        // A multi-valued attribute sorts by its primary value.
        let email = attr(&["emails", "value"], AttrType::String, false, Some(0));
        let by_email = all(Some(email), SortOrder::Ascending).await?;
        assert_eq!(
            by_email.first().map(|u| u.user_name.as_str()),
            Some("User24")
        );
        assert_eq!(
            by_email.last().map(|u| u.user_name.as_str()),
            Some("User00")
        );

        // Paging through ties never repeats or skips a user, in either order.
        for order in [SortOrder::Ascending, SortOrder::Descending] {
            let full = all(Some(family.clone()), order).await?;
            let mut paged = Vec::new();
            let mut start = 1;
            loop {
                let q = ListQuery {
                    sort_by: Some(family.clone()),
                    sort_order: order,
                    start_index: start,
                    count: 7,
                    filter: None,
                };
                let (total, page) = store.list_users(&t, &q).await?;
                assert_eq!(total, 25);
                if page.is_empty() {
                    break;
                }
                start += page.len() as u64;
                paged.extend(page);
            }
            assert_eq!(
                paged.iter().map(|u| &u.id).collect::<Vec<_>>(),
                full.iter().map(|u| &u.id).collect::<Vec<_>>()
            );
            assert_eq!(
                paged.iter().map(|u| &u.id).collect::<HashSet<_>>().len(),
                25
            );
        }
        // The default order is creation order.
        let default = all(None, SortOrder::Ascending).await?;
        assert_eq!(
            default
                .iter()
                .map(|u| u.user_name.clone())
                .collect::<Vec<_>>(),
            expected
        );
        // count 0 answers the total only; a start past the end answers an empty page.
        let q = ListQuery {
            count: 0,
            ..query(None)
        };
        let (total, page) = store.list_users(&t, &q).await?;
        assert_eq!((total, page.len()), (25, 0));
        let q = ListQuery {
            start_index: 26,
            ..query(None)
        };
        let (total, page) = store.list_users(&t, &q).await?;
        assert_eq!((total, page.len()), (25, 0));
        let q = ListQuery {
            start_index: 24,
            filter: Some(cmp(s(&["userName"]), CompareOp::Sw, text("user"))),
            ..query(None)
        };
        let (total, page) = store.list_users(&t, &q).await?;
        assert_eq!((total, page.len()), (25, 2));
        Ok(())
    }
);

db_test!(
    a_tenant_never_sees_or_touches_another_tenants_resources,
    |store: Store, _url| async move {
        let a = tenant(&store, "acme").await?;
        let b = tenant(&store, "globex").await?;
        let (alice, _) = store
            .create_user(&ctx(&a, "POST", "/Users"), user("alice", Some("x"), true))
            .await?;
        let g = store
            .create_group(
                &ctx(&a, "POST", "/Groups"),
                group("Eng"),
                vec![member(&alice.id)],
            )
            .await?;
        let cb = ctx(&b, "PUT", "/Users/x");
        assert!(store.get_user(&b, &alice.id).await?.is_none());
        assert!(store.get_group(&b, &g.id, true).await?.is_none());
        assert_eq!(store.list_users(&b, &query(None)).await?.0, 0);
        assert_eq!(store.list_groups(&b, &query(None), true).await?.0, 0);
        let by_id = cmp(
            attr(&["id"], AttrType::String, true, None),
            CompareOp::Eq,
            text(&alice.id),
        );
        assert_eq!(store.list_users(&b, &query(Some(by_id))).await?.0, 0);
        assert_eq!(
            store
                .list_users(
                    &b,
                    &query(Some(cmp(s(&["userName"]), CompareOp::Eq, text("alice"))))
                )
                .await?
                .0,
            0
        );
        let r = store
            .replace_user(&cb, &alice.id, None, user("alice", None, false))
            .await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        let r = store.delete_user(&cb, &alice.id, None).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        let r = store
            .replace_group(
                &cb,
                &g.id,
                None,
                None,
                MembershipChange {
                    remove: vec![alice.id.clone()],
                    ..Default::default()
                },
            )
            .await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        let r = store.delete_group(&cb, &g.id, None).await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        // B cannot add A's user to its own group.
        let r = store
            .create_group(
                &ctx(&b, "POST", "/Groups"),
                group("Eng"),
                vec![member(&alice.id)],
            )
            .await;
        assert!(
            matches!(&r, Err(StoreError::InvalidMembers(ids)) if ids == &vec![alice.id.clone()]),
            "{r:?}"
        );
        // The same userName may exist in both tenants; a re-POST in B does not restore A's user.
        store
            .replace_user(
                &ctx(&a, "PUT", "/Users/a"),
                &alice.id,
                None,
                user("alice", Some("x"), false),
            )
            .await?;
        let (in_b, outcome) = store
            .create_user(&ctx(&b, "POST", "/Users"), user("alice", Some("x"), true))
            .await?;
        assert_eq!(outcome, CreateOutcome::Created);
        assert_ne!(in_b.id, alice.id);
        // A is untouched and B saw no events of A's.
        let still = store.get_user(&a, &alice.id).await?;
        assert_eq!(still.map(|u| u.active), Some(false));
        assert!(events(&store, &b).await?.is_empty());
        assert_eq!(events(&store, &a).await?.len(), 1);
        let g = store.get_group(&a, &g.id, true).await?;
        assert_eq!(g.and_then(|g| g.members).map(|m| m.len()), Some(1));
        Ok(())
    }
);

db_test!(
    membership_changes_are_set_operations_and_removals_from_bound_groups_are_events,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        let mut u = Vec::new();
        for i in 0..6 {
            u.push(
                store
                    .create_user(&post, user(&format!("u{i}"), None, true))
                    .await?
                    .0
                    .id,
            );
        }
        let gpost = ctx(&t, "POST", "/Groups");
        let all4: Vec<MemberRef> = u[..4].iter().map(|id| member(id)).collect();
        let eng = store
            .create_group(&gpost, group("Engineering"), all4.clone())
            .await?;
        let free = store
            .create_group(&gpost, group("Unbound"), all4.clone())
            .await?;
        let by_id = store
            .create_group(&gpost, group("Bound by id"), all4.clone())
            .await?;
        // Bindings name the group as the operator typed it: another case, or its id.
        bind_rp(&store, "acme", &["ENGINEERING", &by_id.id]).await?;
        let patch = |id: &str| ctx(&t, "PATCH", &format!("/Groups/{id}"));
        let members = |g: &str| {
            let store = store.clone();
            let t = t.clone();
            let g = g.to_owned();
            async move {
                let mut ids: Vec<String> = store
                    .get_group(&t, &g, true)
                    .await?
                    .and_then(|g| g.members)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m.value)
                    .collect();
                ids.sort();
                anyhow::Ok(ids)
            }
        };
        let removed = |evs: &[EventRecord], group_id: &str| {
            let mut ids: Vec<String> = evs
                .iter()
                .filter(|e| {
                    e.kind == EventKind::RemovedFromGroup && e.group_id.as_deref() == Some(group_id)
                })
                .map(|e| e.user_id.clone())
                .collect();
            ids.sort();
            ids
        };

        // Okta: remove one member by value, add others, in one request.
        for g in [&eng, &free, &by_id] {
            let out = store
                .replace_group(
                    &patch(&g.id),
                    &g.id,
                    Some(1),
                    None,
                    MembershipChange {
                        replace_all: None,
                        add: vec![member(&u[4]), member(&u[1])],
                        remove: vec![u[0].clone(), u[5].clone()],
                    },
                )
                .await?;
            assert_eq!(out.version, 2);
            assert!(out.members.is_none());
            assert_eq!(
                members(&g.id).await?,
                vec![u[1].clone(), u[2].clone(), u[3].clone(), u[4].clone()]
            );
        }
        let evs = events(&store, &t).await?;
        assert_eq!(removed(&evs, &eng.id), vec![u[0].clone()]);
        assert_eq!(removed(&evs, &by_id.id), vec![u[0].clone()]);
        assert!(removed(&evs, &free.id).is_empty());
        assert_eq!(evs.len(), 2);
        let ev = evs.iter().find(|e| e.group_id.as_deref() == Some(&eng.id));
        assert_eq!(
            ev.and_then(|e| e.group_display_name.clone()).as_deref(),
            Some("Engineering")
        );
        assert_eq!(
            ev.map(|e| e.user_snapshot["userName"].clone()),
            Some(json!("u0"))
        );
        assert_eq!(ev.map(|e| e.scim_method.clone()).as_deref(), Some("PATCH"));

        // Removing a non-member, or adding and removing the same id, leaves nobody: no event.
        store
            .replace_group(
                &patch(&eng.id),
                &eng.id,
                None,
                None,
                MembershipChange {
                    replace_all: None,
                    add: vec![member(&u[5])],
                    remove: vec![u[5].clone(), u[0].clone()],
                },
            )
            .await?;
        assert_eq!(events(&store, &t).await?.len(), 2);

        // Full push (replace members): those not in the new list leave, one event each.
        store
            .replace_group(
                &patch(&eng.id),
                &eng.id,
                None,
                None,
                MembershipChange {
                    replace_all: Some(vec![member(&u[2]), member(&u[5]), member(&u[2])]),
                    add: vec![],
                    remove: vec![],
                },
            )
            .await?;
        assert_eq!(members(&eng.id).await?, vec![u[2].clone(), u[5].clone()]);
        let evs = events(&store, &t).await?;
        assert_eq!(
            removed(&evs, &eng.id),
            vec![u[0].clone(), u[1].clone(), u[3].clone(), u[4].clone()]
        );

        // PUT of the group with a new name: the binding under the old name still counts.
        store
            .replace_group(
                &ctx(&t, "PUT", "/Groups/e"),
                &eng.id,
                None,
                Some(group("Platform")),
                MembershipChange {
                    replace_all: Some(vec![member(&u[5])]),
                    ..Default::default()
                },
            )
            .await?;
        let evs = events(&store, &t).await?;
        let last = evs.last().map(|e| {
            (
                e.user_id.clone(),
                e.group_display_name.clone(),
                e.scim_method.clone(),
            )
        });
        assert_eq!(
            last,
            Some((u[2].clone(), Some("Platform".to_owned()), "PUT".to_owned()))
        );
        let renamed = store.get_group(&t, &eng.id, false).await?;
        assert_eq!(
            renamed.as_ref().map(|g| g.display_name.as_str()),
            Some("Platform")
        );
        assert_eq!(renamed.as_ref().map(|g| g.version), Some(5));
        assert!(renamed.and_then(|g| g.members).is_none());
        // Now unbound by name ("Platform"): removals no longer count.
        let before = events(&store, &t).await?.len();
        store
            .replace_group(
                &patch(&eng.id),
                &eng.id,
                None,
                None,
                MembershipChange {
                    replace_all: Some(vec![]),
                    ..Default::default()
                },
            )
            .await?;
        assert_eq!(events(&store, &t).await?.len(), before);

        // Deleting a bound group: every user member leaves.
        store
            .delete_group(&ctx(&t, "DELETE", "/Groups/b"), &by_id.id, Some(2))
            .await?;
        let evs = events(&store, &t).await?;
        let mut want = vec![
            u[0].clone(),
            u[1].clone(),
            u[2].clone(),
            u[3].clone(),
            u[4].clone(),
        ];
        want.sort();
        assert_eq!(removed(&evs, &by_id.id), want);
        assert!(store.get_group(&t, &by_id.id, true).await?.is_none());
        // Deleting an unbound one records nothing.
        let before = evs.len();
        store
            .delete_group(&ctx(&t, "DELETE", "/Groups/f"), &free.id, None)
            .await?;
        assert_eq!(events(&store, &t).await?.len(), before);

        // Deactivation of a member is independent of groups; a user's groups are filterable.
        let g2 = store
            .create_group(&gpost, group("Two"), vec![member(&u[1])])
            .await?;
        let in_g2 = cmp(
            attr(&["groups", "value"], AttrType::String, true, Some(0)),
            CompareOp::Eq,
            text(&g2.id),
        );
        assert_eq!(names(&store, &t, in_g2).await?, vec!["u1"]);
        let by_display = Filter::ValuePath {
            attr: attr(&["groups"], AttrType::Complex, false, Some(0)),
            filter: Box::new(cmp(
                attr(&["display"], AttrType::String, false, None),
                CompareOp::Eq,
                text("two"),
            )),
        };
        assert_eq!(names(&store, &t, by_display).await?, vec!["u1"]);
        Ok(())
    }
);

db_test!(
    invalid_members_refuse_the_whole_request,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let other = tenant(&store, "globex").await?;
        let (u1, _) = store
            .create_user(&ctx(&t, "POST", "/Users"), user("u1", None, true))
            .await?;
        let (u2, _) = store
            .create_user(&ctx(&t, "POST", "/Users"), user("u2", None, true))
            .await?;
        let (foreign, _) = store
            .create_user(&ctx(&other, "POST", "/Users"), user("f", None, true))
            .await?;
        let gpost = ctx(&t, "POST", "/Groups");
        let r = store
            .create_group(
                &gpost,
                group("G"),
                vec![member(&u1.id), member("no-such-user")],
            )
            .await;
        assert!(
            matches!(&r, Err(StoreError::InvalidMembers(ids)) if ids == &vec!["no-such-user".to_owned()]),
            "{r:?}"
        );
        assert_eq!(store.list_groups(&t, &query(None), false).await?.0, 0);

        let g = store
            .create_group(&gpost, group("G"), vec![member(&u1.id)])
            .await?;
        bind_rp(&store, "acme", &["G"]).await?;
        for change in [
            MembershipChange {
                add: vec![member(&u2.id), member(&foreign.id)],
                remove: vec![u1.id.clone()],
                replace_all: None,
            },
            MembershipChange {
                replace_all: Some(vec![member(&u2.id), member("nope")]),
                ..Default::default()
            },
            // A user id announced as a group, and the group as its own member.
            MembershipChange {
                add: vec![MemberRef {
                    value: u2.id.clone(),
                    kind: MemberKind::Group,
                }],
                ..Default::default()
            },
            MembershipChange {
                add: vec![MemberRef {
                    value: g.id.clone(),
                    kind: MemberKind::Group,
                }],
                ..Default::default()
            },
        ] {
            let r = store
                .replace_group(
                    &ctx(&t, "PATCH", "/Groups/g"),
                    &g.id,
                    None,
                    Some(group("Renamed")),
                    change,
                )
                .await;
            assert!(matches!(r, Err(StoreError::InvalidMembers(_))), "{r:?}");
        }
        let now = store.get_group(&t, &g.id, true).await?;
        assert_eq!(now.as_ref().map(|g| g.version), Some(1));
        assert_eq!(now.as_ref().map(|g| g.display_name.as_str()), Some("G"));
        assert_eq!(now.and_then(|g| g.members), Some(vec![member(&u1.id)]));
        assert!(events(&store, &t).await?.is_empty());
        // Groups may be members when announced as groups.
        let outer = store
            .create_group(
                &gpost,
                group("Outer"),
                vec![MemberRef {
                    value: g.id.clone(),
                    kind: MemberKind::Group,
                }],
            )
            .await?;
        assert_eq!(outer.members.map(|m| m.len()), Some(1));
        Ok(())
    }
);

// The SCIM routes' read-modify-write: the update applies only to the version read, and
// judges the activity change from it, so a deactivation that lands in between is neither
// overwritten nor recorded twice.
db_test!(
    a_replace_of_what_was_read_refuses_a_user_changed_since,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let c = ctx(&t, "PATCH", "/Users/a");
        let (alice, _) = store.create_user(&c, user("alice", None, true)).await?;
        let seen = store
            .get_user(&t, &alice.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        // Someone else deactivates alice after `seen` was read.
        store
            .replace_seen_user(&c, &seen, user("alice", None, false))
            .await?;
        let r = store
            .replace_seen_user(&c, &seen, user("alice", None, false))
            .await;
        assert!(
            matches!(r, Err(StoreError::VersionMismatch { .. })),
            "{r:?}"
        );
        let kinds: Vec<_> = events(&store, &t).await?.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::Deactivated]);
        // Read again, the same change is a no-op transition: no second event.
        let now = store
            .get_user(&t, &alice.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("gone"))?;
        assert_eq!(now.version, 2);
        let v3 = store
            .replace_seen_user(&c, &now, user("alice", None, false))
            .await?;
        assert_eq!(v3.version, 3);
        assert_eq!(events(&store, &t).await?.len(), 1);
        // A user deleted since it was read is not brought back.
        store.delete_user(&c, &alice.id, None).await?;
        let r = store
            .replace_seen_user(&c, &v3, user("alice", None, true))
            .await;
        assert!(
            matches!(r, Err(StoreError::VersionMismatch { .. })),
            "{r:?}"
        );
        assert!(store.get_user(&t, &alice.id).await?.is_none());
        Ok(())
    }
);

db_test!(
    conditional_writes_refuse_a_stale_version,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let c = ctx(&t, "PUT", "/Users/a");
        let (alice, _) = store.create_user(&c, user("alice", None, true)).await?;
        let r = store
            .replace_user(&c, &alice.id, Some(7), user("alice", None, false))
            .await;
        assert!(
            matches!(r, Err(StoreError::VersionMismatch { current: 1 })),
            "{r:?}"
        );
        assert!(events(&store, &t).await?.is_empty());
        let v2 = store
            .replace_user(&c, &alice.id, Some(1), user("alice2", None, true))
            .await?;
        assert_eq!(v2.version, 2);
        let r = store.delete_user(&c, &alice.id, Some(1)).await;
        assert!(
            matches!(r, Err(StoreError::VersionMismatch { current: 2 })),
            "{r:?}"
        );
        assert!(store.get_user(&t, &alice.id).await?.is_some());
        let g = store.create_group(&c, group("G"), vec![]).await?;
        let r = store
            .replace_group(
                &c,
                &g.id,
                Some(3),
                Some(group("H")),
                MembershipChange::default(),
            )
            .await;
        assert!(
            matches!(r, Err(StoreError::VersionMismatch { current: 1 })),
            "{r:?}"
        );
        let r = store.delete_group(&c, &g.id, Some(2)).await;
        assert!(
            matches!(r, Err(StoreError::VersionMismatch { current: 1 })),
            "{r:?}"
        );
        // Missing resources are not found, whatever the version.
        let r = store
            .replace_user(&c, "nope", Some(1), user("x", None, true))
            .await;
        assert!(matches!(r, Err(StoreError::NotFound(_))), "{r:?}");
        Ok(())
    }
);

db_test!(
    groups_filter_by_display_name_and_members,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let (u1, _) = store
            .create_user(&ctx(&t, "POST", "/Users"), user("u1", None, true))
            .await?;
        let gpost = ctx(&t, "POST", "/Groups");
        let eng = store
            .create_group(&gpost, group("Engineering"), vec![member(&u1.id)])
            .await?;
        let ops = store.create_group(&gpost, group("Ops"), vec![]).await?;
        let list = |f: Filter| {
            let store = store.clone();
            let t = t.clone();
            async move {
                let (total, groups) = store.list_groups(&t, &query(Some(f)), false).await?;
                assert_eq!(total as usize, groups.len());
                assert!(groups.iter().all(|g| g.members.is_none()));
                anyhow::Ok(
                    groups
                        .into_iter()
                        .map(|g| g.display_name)
                        .collect::<Vec<_>>(),
                )
            }
        };
        assert_eq!(
            list(cmp(s(&["displayName"]), CompareOp::Eq, text("ENGINEERING"))).await?,
            vec!["Engineering"]
        );
        let mv = attr(&["members", "value"], AttrType::String, true, Some(0));
        assert_eq!(
            list(cmp(mv.clone(), CompareOp::Eq, text(&u1.id))).await?,
            vec!["Engineering"]
        );
        assert_eq!(
            list(not(cmp(mv, CompareOp::Eq, text(&u1.id)))).await?,
            vec!["Ops"]
        );
        let members = attr(&["members"], AttrType::Complex, false, Some(0));
        assert_eq!(
            list(Filter::Present(members.clone())).await?,
            vec!["Engineering"]
        );
        let vp = Filter::ValuePath {
            attr: members,
            filter: Box::new(and(
                cmp(
                    attr(&["value"], AttrType::String, true, None),
                    CompareOp::Eq,
                    text(&u1.id),
                ),
                cmp(
                    attr(&["type"], AttrType::String, false, None),
                    CompareOp::Eq,
                    text("user"),
                ),
            )),
        };
        assert_eq!(list(vp).await?, vec!["Engineering"]);
        let (_, with) = store.list_groups(&t, &query(None), true).await?;
        let counts: Vec<(String, usize)> = with
            .into_iter()
            .map(|g| (g.id, g.members.map_or(usize::MAX, |m| m.len())))
            .collect();
        assert_eq!(counts, vec![(eng.id, 1), (ops.id, 0)]);
        Ok(())
    }
);

/// Inserts `n` users of a tenant directly, a few hundred rows per statement.
async fn bulk_users(store: &Store, tenant_id: &str, n: usize) -> anyhow::Result<Vec<String>> {
    let backend = store.writer().get_database_backend();
    let txn = store.begin_write().await?;
    let now = deprov_store::now_millis();
    let ids: Vec<String> = (0..n).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    for (c, chunk) in ids.chunks(500).enumerate() {
        let mut values: Vec<sea_orm::Value> = vec![tenant_id.into(), now.into()];
        let mut rows = Vec::new();
        for (i, id) in chunk.iter().enumerate() {
            let name = format!("bulk{}", c * 500 + i);
            let base = values.len();
            values.push(id.clone().into());
            values.push(name.clone().into());
            values.push(json!({"userName": name, "active": true}).into());
            rows.push(format!(
                "(${}, $1, ${}, ${}, NULL, NULL, TRUE, ${}, 1, $2, $2)",
                base + 1,
                base + 2,
                base + 2,
                base + 3
            ));
        }
        let sql = format!(
            "INSERT INTO users (id, tenant_id, user_name, user_name_folded, external_id, display_name, \
             active, resource, version, created_at, updated_at) VALUES {}",
            rows.join(", ")
        );
        txn.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    store.commit(txn).await?;
    Ok(ids)
}

db_test!(
    a_ten_thousand_member_group_is_quick,
    |store: Store, url: String| async move {
        let backend = if url.starts_with("sqlite") {
            "sqlite"
        } else {
            "postgres"
        };
        let t = tenant(&store, "acme").await?;
        let ids = bulk_users(&store, &t, 10_000).await?;
        bind_rp(&store, "acme", &["Everyone"]).await?;
        let g = store
            .create_group(&ctx(&t, "POST", "/Groups"), group("Everyone"), vec![])
            .await?;
        let patch = ctx(&t, "PATCH", &format!("/Groups/{}", g.id));

        let clock = Instant::now();
        store
            .replace_group(
                &patch,
                &g.id,
                None,
                None,
                MembershipChange {
                    add: ids.iter().map(|id| member(id)).collect(),
                    ..Default::default()
                },
            )
            .await?;
        let add = clock.elapsed();

        let clock = Instant::now();
        let full = store.get_group(&t, &g.id, true).await?;
        let read_with = clock.elapsed();
        assert_eq!(full.and_then(|g| g.members).map(|m| m.len()), Some(10_000));

        let clock = Instant::now();
        let bare = store.get_group(&t, &g.id, false).await?;
        let read_without = clock.elapsed();
        assert!(bare.is_some_and(|g| g.members.is_none()));

        let clock = Instant::now();
        store
            .replace_group(
                &patch,
                &g.id,
                None,
                None,
                MembershipChange {
                    remove: ids[..500].to_vec(),
                    ..Default::default()
                },
            )
            .await?;
        let remove = clock.elapsed();
        let evs = events(&store, &t).await?;
        assert_eq!(evs.len(), 500);
        assert_eq!(
            evs.iter().map(|e| &e.user_id).collect::<HashSet<_>>().len(),
            500
        );

        let clock = Instant::now();
        let (total, groups) = store.list_groups(&t, &query(None), true).await?;
        let list_with = clock.elapsed();
        assert_eq!(total, 1);
        assert_eq!(
            groups
                .first()
                .and_then(|g| g.members.as_ref())
                .map(Vec::len),
            Some(9_500)
        );

        // A full push of the 9 500 others plus 100 of the removed: 100 join, nobody leaves.
        let clock = Instant::now();
        store
            .replace_group(
                &patch,
                &g.id,
                None,
                None,
                MembershipChange {
                    replace_all: Some(ids[400..].iter().map(|id| member(id)).collect()),
                    ..Default::default()
                },
            )
            .await?;
        let replace = clock.elapsed();
        assert_eq!(events(&store, &t).await?.len(), 500);

        let q = query(Some(cmp(
            attr(&["members", "value"], AttrType::String, true, Some(0)),
            CompareOp::Eq,
            text(&ids[9_999]),
        )));
        let clock = Instant::now();
        assert_eq!(store.list_groups(&t, &q, false).await?.0, 1);
        let filter = clock.elapsed();

        let clock = Instant::now();
        store
            .delete_group(&ctx(&t, "DELETE", "/Groups/g"), &g.id, None)
            .await?;
        let delete = clock.elapsed();
        assert_eq!(events(&store, &t).await?.len(), 500 + 9_600);

        eprintln!(
            "10k group on {backend}: add 10000 {add:?}, read with members {read_with:?}, \
             read without {read_without:?}, remove 500 (+500 events) {remove:?}, \
             list with members {list_with:?}, replace_all 9600 {replace:?}, \
             filter members.value {filter:?}, delete (+9600 events) {delete:?}"
        );
        Ok(())
    }
);

db_test!(
    concurrent_deactivations_record_exactly_one_event,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let (alice, _) = store
            .create_user(&ctx(&t, "POST", "/Users"), user("alice", None, true))
            .await?;
        let (u1, _) = store
            .create_user(&ctx(&t, "POST", "/Users"), user("u1", None, true))
            .await?;
        bind_rp(&store, "acme", &["G"]).await?;
        let g = store
            .create_group(
                &ctx(&t, "POST", "/Groups"),
                group("G"),
                vec![member(&u1.id)],
            )
            .await?;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = store.clone();
            let (t, id, gid, uid) = (t.clone(), alice.id.clone(), g.id.clone(), u1.id.clone());
            tasks.push(tokio::spawn(async move {
                let c = ctx(&t, "PATCH", &format!("/Users/{id}/{i}"));
                store
                    .replace_user(&c, &id, None, user("alice", None, false))
                    .await?;
                store
                    .replace_group(
                        &c,
                        &gid,
                        None,
                        None,
                        MembershipChange {
                            remove: vec![uid],
                            ..Default::default()
                        },
                    )
                    .await?;
                anyhow::Ok(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        // Eight racing requests: one deactivation and one removal happened, once each.
        let evs = events(&store, &t).await?;
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(
            evs.iter()
                .filter(|e| e.kind == EventKind::Deactivated)
                .count(),
            1
        );
        assert_eq!(
            evs.iter()
                .filter(|e| e.kind == EventKind::RemovedFromGroup)
                .count(),
            1
        );
        assert_eq!(
            store.get_user(&t, &alice.id).await?.map(|u| u.version),
            Some(9)
        );
        Ok(())
    }
);

/// The user's latest event of `kind`.
async fn last_event(
    store: &Store,
    tenant_id: &str,
    user_id: &str,
    kind: EventKind,
) -> anyhow::Result<EventRecord> {
    let events = store.list_events(tenant_id, Some(user_id)).await?;
    events
        .into_iter()
        .rfind(|e| e.kind == kind)
        .ok_or_else(|| anyhow::anyhow!("no {kind:?} event of {user_id}"))
}

/// The client ids of the targets an event's deliveries went to.
async fn reached(store: &Store, event: &EventRecord) -> anyhow::Result<HashSet<String>> {
    let trail = store
        .event_trail(&event.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no trail of event {}", event.id))?;
    Ok(trail
        .deliveries
        .into_iter()
        .filter_map(|d| d.client_id)
        .collect())
}

/// Sets a user's `active` the way a PATCH does: read, then replace what was read.
async fn set_active(
    store: &Store,
    tenant_id: &str,
    u: &UserRecord,
    active: bool,
) -> anyhow::Result<()> {
    let seen = store
        .get_user(tenant_id, &u.id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no {}", u.user_name))?;
    store
        .replace_seen_user(
            &ctx(tenant_id, "PATCH", "/Users/x"),
            &seen,
            user(&u.user_name, None, active),
        )
        .await?;
    Ok(())
}

// Deactivations and deletions reach exactly the targets `fanout::reaches` names. PostgreSQL
// writes them in one statement with the rule in SQL (outbox.rs `reached_by_user_event_sql`),
// SQLite applies the rule in Rust: both are held to it here, binding by name and by id in
// either case, disabled targets, members and a user in no group.
db_test!(
    one_statement_fanout_reaches_what_the_rule_reaches,
    |store: Store, _url| async move {
        use deprov_core::fanout::{EventFacts, GroupFacts, TargetScope, reaches};
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        let mut users = Vec::new();
        for name in ["alice", "bob", "carol", "dave"] {
            users.push(store.create_user(&post, user(name, None, true)).await?.0);
        }
        let (alice, bob, carol, dave) = (&users[0], &users[1], &users[2], &users[3]);
        let groups = ctx(&t, "POST", "/Groups");
        let eng = store
            .create_group(
                &groups,
                group("Engineering"),
                vec![member(&alice.id), member(&bob.id)],
            )
            .await?;
        let ops = store
            .create_group(&groups, group("Ops"), vec![member(&dave.id)])
            .await?;
        let targets: Vec<(&str, Vec<String>, bool)> = vec![
            ("wide", vec![], true),
            ("by-name", vec!["ENGINEERING".into()], true),
            ("by-id", vec![eng.id.to_uppercase()], true),
            ("ops-by-id", vec![ops.id.clone()], true),
            ("elsewhere", vec!["Sales".into()], true),
            ("off", vec![], false),
            ("off-eng", vec!["engineering".into()], false),
        ];
        for (client_id, bound, enabled) in &targets {
            add_rp(&store, "acme", client_id, bound.clone(), *enabled).await?;
        }
        let facts = |g: &deprov_store::scim::GroupRecord| GroupFacts {
            id_folded: g.id.to_lowercase(),
            display_name_folded: g.display_name.to_lowercase(),
        };
        let member_of = |u: &UserRecord| -> Vec<GroupFacts> {
            [
                (&eng, [&alice.id, &bob.id].as_slice()),
                (&ops, [&dave.id].as_slice()),
            ]
            .into_iter()
            .filter(|(_, members)| members.contains(&&u.id))
            .map(|(g, _)| facts(g))
            .collect()
        };
        let expected = |kind: EventKind, u: &UserRecord| -> HashSet<String> {
            let member_of = member_of(u);
            let event = EventFacts {
                kind,
                group: None,
                member_of: &member_of,
            };
            targets
                .iter()
                .filter(|(_, bound, enabled)| {
                    let scope = TargetScope {
                        groups: bound.iter().map(|b| b.to_lowercase()).collect(),
                    };
                    *enabled && reaches(&scope, &event)
                })
                .map(|(id, _, _)| (*id).to_owned())
                .collect()
        };
        // Deactivated (PATCH and PUT take this path), then re-activated.
        for u in [alice, carol, dave] {
            set_active(&store, &t, u, false).await?;
            let event = last_event(&store, &t, &u.id, EventKind::Deactivated).await?;
            assert_eq!(event.user_snapshot["active"], false);
            assert_eq!(
                reached(&store, &event).await?,
                expected(EventKind::Deactivated, u),
                "{}",
                u.user_name
            );
        }
        set_active(&store, &t, alice, true).await?;
        let back = last_event(&store, &t, &alice.id, EventKind::Reactivated).await?;
        assert!(reached(&store, &back).await?.is_empty());
        // Deleted: a member (whose memberships go in the same write) and a user in no group.
        for u in [bob, carol] {
            store
                .delete_user(&ctx(&t, "DELETE", "/Users/x"), &u.id, None)
                .await?;
            let event = last_event(&store, &t, &u.id, EventKind::Deleted).await?;
            assert_eq!(event.user_snapshot["userName"], u.user_name.as_str());
            assert_eq!(
                reached(&store, &event).await?,
                expected(EventKind::Deleted, u),
                "{}",
                u.user_name
            );
        }
        let g = store.get_group(&t, &eng.id, true).await?;
        assert_eq!(g.and_then(|g| g.members).map(|m| m.len()), Some(1));
        // The rule's answers, spelled out once so that a change to it shows here too.
        assert_eq!(
            expected(EventKind::Deactivated, alice),
            HashSet::from(["wide".into(), "by-name".into(), "by-id".into()])
        );
        assert_eq!(
            expected(EventKind::Deactivated, dave),
            HashSet::from(["wide".into(), "ops-by-id".into()])
        );
        assert_eq!(
            expected(EventKind::Deleted, carol),
            HashSet::from(["wide".into()])
        );
        Ok(())
    }
);

// Other replicas learn of new deliveries by `NOTIFY`, sent after the commit (not inside the
// transaction, where PostgreSQL would serialise the commits of every de-provisioning).
// SQLite has one process and no listeners.
db_test!(
    a_de_provisioning_notifies_other_replicas_once_committed,
    |store: Store, _url| async move {
        let Some(mut listener) = store.listen_outbox().await? else {
            return Ok(());
        };
        let t = tenant(&store, "acme").await?;
        add_rp(&store, "acme", "wide", vec![], true).await?;
        let alice = store
            .create_user(&ctx(&t, "POST", "/Users"), user("alice", None, true))
            .await?
            .0;
        // Deactivated through the one-statement path (PATCH, PUT) ...
        set_active(&store, &t, &alice, false).await?;
        tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await??;
        // ... and deleted through the DELETE path.
        store
            .delete_user(&ctx(&t, "DELETE", "/Users/x"), &alice.id, None)
            .await?;
        tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await??;
        Ok(())
    }
);

// A SCIM de-provisioning writes its deliveries by a path of its own on each backend (a
// cached statement per row on SQLite, a CTE of the user's UPDATE on PostgreSQL). Each row
// must be what the worker expects of a new delivery: pending, due at once, not leased.
db_test!(
    a_de_provisioning_writes_each_delivery_pending_due_and_unleased,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        add_rp(&store, "acme", "one", vec![], true).await?;
        add_rp(&store, "acme", "two", vec![], true).await?;
        let alice = store
            .create_user(&ctx(&t, "POST", "/Users"), user("alice", None, true))
            .await?
            .0;
        let before = deprov_store::now_millis();
        set_active(&store, &t, &alice, false).await?;
        let after = deprov_store::now_millis();
        let event = last_event(&store, &t, &alice.id, EventKind::Deactivated).await?;
        let trail = store
            .event_trail(&event.id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trail of event {}", event.id))?;
        let mut reached: Vec<String> = trail
            .deliveries
            .iter()
            .filter_map(|d| d.client_id.clone())
            .collect();
        reached.sort();
        assert_eq!(reached, ["one", "two"]);
        let mut ids = HashSet::new();
        for d in trail.deliveries.iter().map(|d| &d.delivery) {
            assert!(ids.insert(d.id.clone()), "delivery id {} twice", d.id);
            assert_eq!(
                (d.event_id.as_str(), d.tenant_id.as_str()),
                (event.id.as_str(), t.as_str())
            );
            assert_eq!(
                d.target_kind,
                deprov_store::targets::KIND_BACKCHANNEL_LOGOUT
            );
            assert_eq!((d.status.as_str(), d.attempt_count), ("pending", 0));
            assert!(
                (before..=after).contains(&d.created_at),
                "created at {} outside {before}..={after}",
                d.created_at
            );
            assert_eq!(
                (d.next_attempt_at, d.updated_at),
                (d.created_at, d.created_at)
            );
            assert_eq!(
                (&d.lease_owner, d.lease_expires_at, &d.last_error),
                (&None, None, &None)
            );
            assert_eq!((d.completed_at, d.redriven_at), (None, None));
        }
        Ok(())
    }
);

async fn seen(store: &Store, tenant_id: &str, id: &str) -> anyhow::Result<UserRecord> {
    store
        .get_user(tenant_id, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no user {id}"))
}

// Replacements that wait together are written together on PostgreSQL, one statement for
// all (scim/user_batch.rs). Each must still be what it would have been alone: its own
// version check, its own event with its own request id, its own deliveries, and nothing
// for a user changed since it was read. SQLite writes the same list one by one.
db_test!(
    a_batch_of_replacements_keeps_each_ones_version_check_event_and_deliveries,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        add_rp(&store, "acme", "one", vec![], true).await?;
        let post = ctx(&t, "POST", "/Users");
        let mut users = Vec::new();
        for (name, active) in [("ann", true), ("bob", true), ("cat", false), ("dan", true)] {
            users.push(store.create_user(&post, user(name, None, active)).await?.0);
        }
        let [ann, bob, cat, dan] =
            <[UserRecord; 4]>::try_from(users).map_err(|_| anyhow::anyhow!("four users"))?;
        // dan changes after it was read: the batch's write of dan must not happen.
        let stale_dan = seen(&store, &t, &dan.id).await?;
        set_active(&store, &t, &dan, false).await?;
        let before = events(&store, &t).await?.len();

        let named = |name: &str, display: &str, active: bool| {
            user_with(name, None, active, json!({"displayName": display}))
        };
        let patch = |who: &str| ctx(&t, "PATCH", &format!("/Users/{who}"));
        let bob_seen = seen(&store, &t, &bob.id).await?;
        let done = store
            .replace_seen_users_together(vec![
                (
                    patch("ann"),
                    seen(&store, &t, &ann.id).await?,
                    user("ann", None, false),
                ),
                (
                    patch("bob-1"),
                    bob_seen.clone(),
                    named("bob", "Bob One", true),
                ),
                (
                    patch("cat"),
                    seen(&store, &t, &cat.id).await?,
                    user("cat", None, true),
                ),
                (patch("dan"), stale_dan, user("dan", None, true)),
                (patch("bob-2"), bob_seen, named("bob", "Bob Two", true)),
            ])
            .await;
        let outcome: Vec<&str> = done
            .iter()
            .map(|d| match d {
                Ok(_) => "ok",
                Err(StoreError::VersionMismatch { .. }) => "stale",
                Err(_) => "error",
            })
            .collect();
        assert_eq!(
            [outcome[0], outcome[2], outcome[3]],
            ["ok", "ok", "stale"],
            "{done:?}"
        );
        // The same user twice at one version: exactly one of the two is written.
        let bob_won = match (&done[1], &done[4]) {
            (Ok(one), Err(StoreError::VersionMismatch { .. })) => one,
            (Err(StoreError::VersionMismatch { .. }), Ok(two)) => two,
            other => panic!("bob written twice or not at all: {other:?}"),
        };

        // Stored state: what each answer said, at the next version.
        let now = |u: &UserRecord| {
            let store = &store;
            let (t, id) = (t.clone(), u.id.clone());
            async move { seen(store, &t, &id).await }
        };
        let (ann_now, bob_now) = (now(&ann).await?, now(&bob).await?);
        let (cat_now, dan_now) = (now(&cat).await?, now(&dan).await?);
        assert_eq!((ann_now.active, ann_now.version), (false, ann.version + 1));
        assert_eq!((cat_now.active, cat_now.version), (true, cat.version + 1));
        assert_eq!((dan_now.active, dan_now.version), (false, dan.version + 1));
        assert_eq!(bob_now.version, bob.version + 1);
        assert_eq!(bob_now.display_name, bob_won.display_name);
        assert_eq!(
            done[0].as_ref().ok().map(|u| u.version),
            Some(ann_now.version)
        );

        // Events: one deactivation (ann) and one re-activation (cat), each with its request.
        let all = events(&store, &t).await?;
        let new: Vec<(&str, &str, &str)> = all[before..]
            .iter()
            .map(|e| (e.kind.as_str(), e.user_id.as_str(), e.request_id.as_str()))
            .collect();
        let mut expected = vec![
            ("deactivated", ann.id.as_str(), "req-PATCH-/Users/ann"),
            ("reactivated", cat.id.as_str(), "req-PATCH-/Users/cat"),
        ];
        let mut got = new.clone();
        got.sort();
        expected.sort();
        assert_eq!(got, expected);
        let ann_event = last_event(&store, &t, &ann.id, EventKind::Deactivated).await?;
        assert_eq!(ann_event.user_snapshot["active"], json!(false));
        assert_eq!(ann_event.user_snapshot["userName"], json!("ann"));
        assert_eq!(ann_event.scim_path, "/Users/ann");
        // Deliveries: the deactivation reaches the tenant's relying party; a re-activation
        // revokes nothing.
        assert_eq!(
            reached(&store, &ann_event).await?,
            HashSet::from(["one".to_owned()])
        );
        let cat_event = last_event(&store, &t, &cat.id, EventKind::Reactivated).await?;
        assert!(reached(&store, &cat_event).await?.is_empty());
        Ok(())
    }
);

// A batch's statement is atomic: one write in it that cannot be made (a userName another
// user holds) fails the statement. That write must get its own answer (409), and the others
// must still be written, each once.
db_test!(
    a_batch_with_a_taken_user_name_refuses_that_write_alone,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        add_rp(&store, "acme", "one", vec![], true).await?;
        let post = ctx(&t, "POST", "/Users");
        let ann = store.create_user(&post, user("ann", None, true)).await?.0;
        let bob = store.create_user(&post, user("Bob", None, true)).await?.0;
        let cat = store.create_user(&post, user("cat", None, true)).await?.0;
        let done = store
            .replace_seen_users_together(vec![
                (
                    ctx(&t, "PATCH", "/Users/cat"),
                    seen(&store, &t, &cat.id).await?,
                    user("cat", None, false),
                ),
                (
                    ctx(&t, "PATCH", "/Users/ann"),
                    seen(&store, &t, &ann.id).await?,
                    user("BOB", None, false),
                ),
            ])
            .await;
        assert!(done[0].is_ok(), "{:?}", done[0]);
        assert!(
            matches!(done[1], Err(StoreError::Conflict(_))),
            "{:?}",
            done[1]
        );
        let (ann_now, cat_now) = (
            seen(&store, &t, &ann.id).await?,
            seen(&store, &t, &cat.id).await?,
        );
        assert_eq!(
            (ann_now.user_name.as_str(), ann_now.active, ann_now.version),
            ("ann", true, ann.version)
        );
        assert_eq!((cat_now.active, cat_now.version), (false, cat.version + 1));
        assert_eq!(seen(&store, &t, &bob.id).await?.version, bob.version);
        let new = kinds(&events(&store, &t).await?);
        assert_eq!(new, [(EventKind::Deactivated, cat.id.clone())]);
        let cat_event = last_event(&store, &t, &cat.id, EventKind::Deactivated).await?;
        assert_eq!(
            reached(&store, &cat_event).await?,
            HashSet::from(["one".to_owned()])
        );
        Ok(())
    }
);

// Many deactivations at once, as an identity provider's offboarding run sends them: on
// PostgreSQL they queue and go in batches (scim/user_batch.rs). Every one must be answered,
// written once, and recorded by exactly one event.
db_test!(
    concurrent_deactivations_are_each_written_once_with_one_event,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        let mut users = Vec::new();
        for i in 0..48 {
            let name = format!("user{i:02}");
            users.push(store.create_user(&post, user(&name, None, true)).await?.0);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for u in users.clone() {
            let (store, t) = (store.clone(), t.clone());
            tasks.spawn(async move { set_active(&store, &t, &u, false).await });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
        for u in &users {
            let now = seen(&store, &t, &u.id).await?;
            assert_eq!(
                (now.active, now.version),
                (false, u.version + 1),
                "{}",
                u.user_name
            );
        }
        let mut deactivated: Vec<String> = events(&store, &t)
            .await?
            .into_iter()
            .map(|e| {
                assert_eq!(e.kind, EventKind::Deactivated);
                e.user_id
            })
            .collect();
        deactivated.sort();
        let mut ids: Vec<String> = users.into_iter().map(|u| u.id).collect();
        ids.sort();
        assert_eq!(deactivated, ids);
        Ok(())
    }
);

// POSTs that wait together go in one INSERT on PostgreSQL. Each must be inserted exactly
// when it would have been alone and in turn (as SQLite, writing them in turn, does): not when a stored user, or one earlier in the
// batch, has its userName (case-insensitively) or its externalId. Those not inserted go on
// as a POST does then (restore, 409, or a new user).
db_test!(
    a_batch_of_new_users_inserts_each_one_no_other_user_matches,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        let post = ctx(&t, "POST", "/Users");
        store
            .create_user(&post, user("Bob", Some("ext-bob"), true))
            .await?;
        let done = store
            .insert_users_together(vec![
                (post.clone(), user("ann", Some("ext-ann"), true)),
                (post.clone(), user("BOB", None, true)),
                (post.clone(), user("carl", Some("ext-bob"), true)),
                (post.clone(), user("ANN", None, true)),
                (post.clone(), user("dan", Some("ext-ann"), true)),
                (post.clone(), user("eve", None, false)),
            ])
            .await;
        let inserted: Vec<bool> = done.into_iter().collect::<Result<_, _>>()?;
        assert_eq!(inserted, [true, false, false, false, false, true]);
        let (_, stored) = store.list_users(&t, &query(None)).await?;
        let mut stored: Vec<String> = stored.into_iter().map(|u| u.user_name).collect();
        stored.sort();
        assert_eq!(stored, ["Bob", "ann", "eve"]);
        Ok(())
    }
);

// DELETEs that wait together go in one statement on PostgreSQL. Each keeps its own
// If-Match, its own `Deleted` event and deliveries, and the memberships it ends; a user
// deleted twice in one batch is deleted once.
db_test!(
    a_batch_of_deletions_keeps_each_ones_version_event_and_memberships,
    |store: Store, _url| async move {
        let t = tenant(&store, "acme").await?;
        add_rp(&store, "acme", "one", vec![], true).await?;
        let post = ctx(&t, "POST", "/Users");
        let ann = store.create_user(&post, user("ann", None, true)).await?.0;
        let bob = store.create_user(&post, user("bob", None, false)).await?.0;
        let cat = store.create_user(&post, user("cat", None, true)).await?.0;
        let group = store
            .create_group(
                &ctx(&t, "POST", "/Groups"),
                group("staff"),
                vec![member(&ann.id), member(&cat.id)],
            )
            .await?;
        let delete = |who: &str| ctx(&t, "DELETE", &format!("/Users/{who}"));
        let done = store
            .delete_users_together(vec![
                (delete("ann"), ann.id.clone(), Some(ann.version)),
                (delete("bob"), bob.id.clone(), None),
                (delete("cat"), cat.id.clone(), Some(cat.version + 1)),
                (delete("ann-again"), ann.id.clone(), None),
            ])
            .await;
        let deleted: Vec<bool> = done.into_iter().collect::<Result<_, _>>()?;
        assert_eq!(deleted[1..3], [true, false]);
        assert!(deleted[0] ^ deleted[3], "ann deleted once: {deleted:?}");
        assert!(store.get_user(&t, &ann.id).await?.is_none());
        assert!(store.get_user(&t, &bob.id).await?.is_none());
        assert_eq!(seen(&store, &t, &cat.id).await?.version, cat.version);
        let events = events(&store, &t).await?;
        let mut deletions: Vec<(&str, &str)> = events
            .iter()
            .filter(|e| e.kind == EventKind::Deleted)
            .map(|e| (e.user_id.as_str(), e.scim_path.as_str()))
            .collect();
        deletions.sort();
        let ann_path = if deleted[0] {
            "/Users/ann"
        } else {
            "/Users/ann-again"
        };
        let mut expected = vec![(ann.id.as_str(), ann_path), (bob.id.as_str(), "/Users/bob")];
        expected.sort();
        assert_eq!(deletions, expected);
        for who in [&ann, &bob] {
            let event = last_event(&store, &t, &who.id, EventKind::Deleted).await?;
            assert_eq!(
                reached(&store, &event).await?,
                HashSet::from(["one".to_owned()])
            );
        }
        let members = store
            .get_group(&t, &group.id, true)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no group"))?
            .members
            .unwrap_or_default();
        let members: Vec<&str> = members.iter().map(|m| m.value.as_str()).collect();
        assert_eq!(members, [cat.id.as_str()]);
        Ok(())
    }
);

// GETs, and `userName eq` lookups, that wait together are one SELECT per kind on
// PostgreSQL (scim/read_batch.rs). Each must get exactly its user of its own tenant:
// another tenant's user with that id or name is not found, an unknown one is not found, a
// name matches case-insensitively, and one user asked twice is answered twice.
db_test!(
    a_batch_of_reads_answers_each_with_its_own_tenants_user,
    |store: Store, _url| async move {
        let a = tenant(&store, "acme").await?;
        let b = tenant(&store, "beta").await?;
        let post_a = ctx(&a, "POST", "/Users");
        let ann = store.create_user(&post_a, user("Ann", None, true)).await?.0;
        let amy = store
            .create_user(&post_a, user("amy", None, false))
            .await?
            .0;
        let bob = store
            .create_user(&ctx(&b, "POST", "/Users"), user("bob", None, true))
            .await?
            .0;
        let (a, b) = (
            |s: &str| (a.clone(), s.to_owned()),
            |s: &str| (b.clone(), s.to_owned()),
        );
        let read = store
            .read_users_together(
                vec![
                    a(&ann.id),
                    a(&bob.id),
                    b(&bob.id),
                    a("no-such-user"),
                    a(&ann.id),
                    a(&amy.id),
                ],
                vec![
                    a("ANN"),
                    a("bob"),
                    b("BOB"),
                    a("nobody"),
                    a("amy"),
                    a("ann"),
                ],
            )
            .await;
        let names: Vec<Option<String>> = read
            .into_iter()
            .map(|r| r.map(|u| u.map(|u| u.user_name)))
            .collect::<Result<_, _>>()?;
        let expected = [
            Some("Ann"),
            None,
            Some("bob"),
            None,
            Some("Ann"),
            Some("amy"),
            Some("Ann"),
            None,
            Some("bob"),
            None,
            Some("amy"),
            Some("Ann"),
        ];
        assert_eq!(names, expected.map(|n| n.map(str::to_owned)));
        Ok(())
    }
);
