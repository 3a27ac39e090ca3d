//! One test per dialect shape of INTEROP.md, plus the RFC 7644 §3.5.2 rules.

use super::*;
use crate::error::ScimError;
use crate::schema::{ENTERPRISE_USER_URN, ResourceSchema, catalog};
use deprov_core::scim::{MemberKind, MemberRef};
use serde_json::{Map, Value, json};

const LIMITS: PatchLimits = PatchLimits {
    max_operations: 50,
    max_members: 100,
};

fn users() -> &'static ResourceSchema {
    &catalog().unwrap().user
}

fn groups() -> &'static ResourceSchema {
    &catalog().unwrap().group
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

fn bjensen() -> Map<String, Value> {
    obj(json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bjensen",
        "externalId": "00u1",
        "active": true,
        "name": {"givenName": "Barbara", "familyName": "Jensen"},
        "emails": [{"value": "b@home.example", "type": "home", "primary": true}]
    }))
}

fn patch(
    schema: &ResourceSchema,
    current: Map<String, Value>,
    body: Value,
) -> Result<Patched, ScimError> {
    let ops = parse_request(&body, LIMITS)?;
    apply(schema, &current, "id-1", &ops, LIMITS)
}

fn ok(schema: &ResourceSchema, current: Map<String, Value>, body: Value) -> Patched {
    match patch(schema, current, body) {
        Ok(p) => p,
        Err(e) => panic!("PATCH refused: {e}"),
    }
}

fn err_type(schema: &ResourceSchema, current: Map<String, Value>, body: Value) -> String {
    match patch(schema, current, body) {
        Ok(p) => panic!("PATCH accepted: {:?}", p.resource),
        Err(e) => {
            assert_eq!(e.status.as_u16(), 400, "{e}");
            e.scim_type
                .map(|t| t.as_str().to_owned())
                .unwrap_or_default()
        }
    }
}

fn ops(list: Value) -> Value {
    json!({"schemas": [PATCH_OP_URN], "Operations": list})
}

// ---- Okta ----

#[test]
fn okta_pathless_deactivate() {
    let p = ok(
        users(),
        bjensen(),
        ops(json!([{"op": "replace", "value": {"active": false}}])),
    );
    assert_eq!(p.resource["active"], json!(false));
    assert!(p.resource_changed);
    assert_eq!(
        p.resource["userName"],
        json!("bjensen"),
        "other attributes are kept"
    );
}

#[test]
fn okta_group_rename_carries_the_groups_own_id() {
    let g = obj(json!({"displayName": "Old"}));
    let p = ok(
        groups(),
        g.clone(),
        ops(json!([{"op": "replace", "value": {"id": "id-1", "displayName": "New"}}])),
    );
    assert_eq!(p.resource["displayName"], json!("New"));
    assert!(p.members.is_empty());
    assert_eq!(
        err_type(
            groups(),
            g,
            ops(json!([{"op": "replace", "value": {"id": "other", "displayName": "New"}}]))
        ),
        "mutability"
    );
}

#[test]
fn okta_membership_push_mixes_remove_by_filter_and_add_list() {
    let g = obj(json!({"displayName": "Eng"}));
    let p = ok(
        groups(),
        g,
        ops(json!([
            {"op": "replace", "value": {"id": "id-1", "displayName": "Eng"}},
            {"op": "remove", "path": "members[value eq \"u1\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u2", "display": "Two"}, {"value": "u3"}]}
        ])),
    );
    assert!(!p.resource_changed);
    assert_eq!(p.members.remove, vec!["u1".to_owned()]);
    assert_eq!(
        p.members
            .add
            .iter()
            .map(|m| m.value.as_str())
            .collect::<Vec<_>>(),
        ["u2", "u3"]
    );
    assert_eq!(p.members.replace_all, None);
}

#[test]
fn okta_full_push_replaces_members() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(
            json!([{"op": "replace", "path": "members", "value": [{"value": "u9", "type": "User"}, {"value": "g2", "type": "Group"}]}]),
        ),
    );
    assert_eq!(
        p.members.replace_all,
        Some(vec![
            MemberRef {
                value: "u9".into(),
                kind: MemberKind::User
            },
            MemberRef {
                value: "g2".into(),
                kind: MemberKind::Group
            },
        ])
    );
}

// ---- Entra, default dialect ----

#[test]
fn entra_capitalised_replace_with_string_false_deactivates() {
    for op in ["Replace", "REPLACE", "replace"] {
        for v in ["False", "false", "FALSE"] {
            let p = ok(
                users(),
                bjensen(),
                ops(json!([{"op": op, "path": "active", "value": v}])),
            );
            assert_eq!(p.resource["active"], json!(false), "{op} {v}");
        }
    }
    let p = ok(
        users(),
        bjensen(),
        ops(json!([{"op": "Replace", "path": "active", "value": "True"}])),
    );
    assert!(!p.resource_changed, "true → true changes nothing");
}

#[test]
fn entra_add_single_valued_attribute_and_enterprise_path() {
    let p = ok(
        users(),
        bjensen(),
        ops(json!([
            {"op": "Add", "path": "nickName", "value": "Babs"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber", "value": "42"},
            {"op": "Replace", "path": "name.familyName", "value": "Jensen-Smith"}
        ])),
    );
    assert_eq!(p.resource["nickName"], json!("Babs"));
    assert_eq!(
        p.resource[ENTERPRISE_USER_URN]["employeeNumber"],
        json!("42")
    );
    assert_eq!(
        p.resource["name"],
        json!({"givenName": "Barbara", "familyName": "Jensen-Smith"})
    );
    assert_eq!(
        p.resource["schemas"],
        json!([
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE_USER_URN
        ])
    );
}

#[test]
fn a_whole_extension_object_may_name_its_own_schema() {
    // scim2-tester (python scim2-models) sends the extension with `schemas` inside it.
    for op in ["add", "replace"] {
        let p = ok(
            users(),
            bjensen(),
            ops(json!([{
                "op": op,
                "path": ENTERPRISE_USER_URN,
                "value": {"schemas": [ENTERPRISE_USER_URN], "employeeNumber": "1"}
            }])),
        );
        assert_eq!(
            p.resource[ENTERPRISE_USER_URN],
            json!({"employeeNumber": "1"})
        );
    }
}

#[test]
fn entra_filtered_path_upserts_a_missing_work_email() {
    let p = ok(
        users(),
        bjensen(),
        ops(
            json!([{"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "b@work.example"}]),
        ),
    );
    let emails = p.resource["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(
        emails[1],
        json!({"type": "work", "value": "b@work.example"})
    );
    // And updates it in place the second time.
    let p = ok(
        users(),
        p.resource,
        ops(
            json!([{"op": "Add", "path": "emails[type eq \"work\"].value", "value": "new@work.example"}]),
        ),
    );
    let emails = p.resource["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[1]["value"], json!("new@work.example"));
    assert_eq!(emails[0]["value"], json!("b@home.example"));
}

#[test]
fn entra_manager_as_bare_string_becomes_a_reference_object() {
    let p = ok(
        users(),
        bjensen(),
        ops(
            json!([{"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "271"}]),
        ),
    );
    assert_eq!(
        p.resource[ENTERPRISE_USER_URN]["manager"],
        json!({"value": "271"})
    );
    // Doc example 5: an array of one {$ref, value}.
    let p = ok(
        users(),
        p.resource,
        ops(
            json!([{"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": [{"$ref": null, "value": "272"}]}]),
        ),
    );
    assert_eq!(
        p.resource[ENTERPRISE_USER_URN]["manager"],
        json!({"value": "272"})
    );
    let p = ok(
        users(),
        p.resource,
        ops(
            json!([{"op": "Remove", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager"}]),
        ),
    );
    assert!(
        p.resource.get(ENTERPRISE_USER_URN).is_none(),
        "an emptied extension goes away"
    );
    assert_eq!(
        p.resource["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
}

#[test]
fn entra_remove_member_by_value_removes_only_that_member() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([{"op": "Remove", "path": "members", "value": [{"value": "u1091"}]}])),
    );
    assert_eq!(p.members.replace_all, None, "not a remove-all");
    assert_eq!(p.members.remove, vec!["u1091".to_owned()]);
}

#[test]
fn entra_add_member_with_null_ref() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": "u7"}]}])),
    );
    assert_eq!(
        p.members.add,
        vec![MemberRef {
            value: "u7".into(),
            kind: MemberKind::User
        }]
    );
}

#[test]
fn entra_group_rename_with_path() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([{"op": "Replace", "path": "displayName", "value": "Engineering"}])),
    );
    assert_eq!(p.resource["displayName"], json!("Engineering"));
}

#[test]
fn pascal_case_attribute_names_and_stray_members_are_tolerated() {
    let body = json!({
        "schemas": [PATCH_OP_URN],
        "id": "id-1",
        "Operations": [
            {"op": "Replace", "name": "whatever", "path": "UserName", "value": "BJensen2"},
            {"OP": "replace", "Path": "Active", "Value": "False"},
            {"op": "replace", "value": {"DisplayName": "Babs", "NAME.GIVENNAME": "Barb"}}
        ]
    });
    let p = ok(users(), bjensen(), body);
    assert_eq!(p.resource["userName"], json!("BJensen2"));
    assert_eq!(p.resource["active"], json!(false));
    assert_eq!(p.resource["displayName"], json!("Babs"));
    assert_eq!(p.resource["name"]["givenName"], json!("Barb"));
}

// ---- Entra, aadOptscim062020 ----

#[test]
fn entra_flag_pathless_replace_with_dotted_and_urn_keys() {
    let p = ok(
        users(),
        bjensen(),
        ops(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "b@work.example"},
            {"op": "replace", "value": {
                "displayName": "Barbara J",
                "name.givenName": "Barb",
                "name.familyName": "J",
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "7",
                "active": false
            }}
        ])),
    );
    assert_eq!(p.resource["displayName"], json!("Barbara J"));
    assert_eq!(
        p.resource["name"],
        json!({"givenName": "Barb", "familyName": "J"})
    );
    assert_eq!(
        p.resource[ENTERPRISE_USER_URN]["employeeNumber"],
        json!("7")
    );
    assert_eq!(p.resource["active"], json!(false));
}

#[test]
fn entra_flag_remove_member_by_filter_without_value() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([{"op": "remove", "path": "members[value eq \"7f4b\"]"}])),
    );
    assert_eq!(p.members.remove, vec!["7f4b".to_owned()]);
    assert_eq!(p.members.replace_all, None);
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([{"op": "remove", "path": "members[value eq \"a\" or value eq \"b\"]"}])),
    );
    assert_eq!(p.members.remove, vec!["a".to_owned(), "b".to_owned()]);
}

#[test]
fn extension_object_under_its_urn_in_a_pathless_value() {
    let p = ok(
        users(),
        bjensen(),
        ops(
            json!([{"op": "add", "value": {ENTERPRISE_USER_URN: {"department": "R&D", "manager": {"value": "m1"}}}}]),
        ),
    );
    assert_eq!(p.resource[ENTERPRISE_USER_URN]["department"], json!("R&D"));
    assert_eq!(
        p.resource[ENTERPRISE_USER_URN]["manager"]["value"],
        json!("m1")
    );
}

// ---- membership folding ----

#[test]
fn remove_members_without_value_removes_all_then_later_adds_count() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([
            {"op": "add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "remove", "path": "members"},
            {"op": "add", "path": "members", "value": [{"value": "u2"}]},
            {"op": "remove", "path": "members[value eq \"u2\"]"},
            {"op": "add", "path": "members", "value": [{"value": "u3"}]}
        ])),
    );
    assert_eq!(
        p.members.replace_all,
        Some(vec![MemberRef {
            value: "u3".into(),
            kind: MemberKind::User
        }])
    );
    assert!(p.members.add.is_empty() && p.members.remove.is_empty());
}

#[test]
fn add_then_remove_of_the_same_member_cancels_in_order() {
    let p = ok(
        groups(),
        obj(json!({"displayName": "Eng"})),
        ops(json!([
            {"op": "add", "path": "members", "value": [{"value": "u1"}]},
            {"op": "remove", "path": "members", "value": [{"value": "u1"}]},
            {"op": "remove", "path": "members", "value": [{"value": "u2"}]},
            {"op": "add", "path": "members", "value": [{"value": "u2"}]}
        ])),
    );
    assert_eq!(
        p.members.add,
        vec![MemberRef {
            value: "u2".into(),
            kind: MemberKind::User
        }]
    );
    assert_eq!(p.members.remove, vec!["u1".to_owned()]);
}

#[test]
fn member_limits_and_shapes() {
    let many: Vec<Value> = (0..101)
        .map(|i| json!({"value": format!("u{i}")}))
        .collect();
    let g = obj(json!({"displayName": "Eng"}));
    assert_eq!(
        err_type(
            groups(),
            g.clone(),
            ops(json!([{"op": "add", "path": "members", "value": many}]))
        ),
        "tooMany"
    );
    assert_eq!(
        err_type(
            groups(),
            g.clone(),
            ops(json!([{"op": "add", "path": "members", "value": [{"display": "x"}]}]))
        ),
        "invalidValue"
    );
    assert_eq!(
        err_type(
            groups(),
            g.clone(),
            ops(json!([{"op": "remove", "path": "members[display eq \"x\"]"}]))
        ),
        "invalidPath"
    );
    assert_eq!(
        err_type(
            groups(),
            g,
            ops(json!([{"op": "replace", "path": "members.value", "value": "x"}]))
        ),
        "mutability"
    );
}

// ---- RFC rules ----

#[test]
fn unknown_attributes_are_invalid_paths_never_a_silent_success() {
    for body in [
        json!([{"op": "replace", "path": "nope", "value": "x"}]),
        json!([{"op": "replace", "value": {"nope": "x"}}]),
        json!([{"op": "replace", "path": "name.nope", "value": "x"}]),
        json!([{"op": "add", "path": "emails[nope eq \"x\"].value", "value": "x"}]),
        json!([{"op": "add", "path": "emails", "value": [{"value": "a@b", "bogus": 1}]}]),
        json!([{"op": "add", "path": "emails[type eq \"work\"", "value": "x"}]),
        json!([{"op": "replace", "path": "urn:example:custom:2.0:User:x", "value": "x"}]),
    ] {
        assert_eq!(
            err_type(users(), bjensen(), ops(body.clone())),
            "invalidPath",
            "{body}"
        );
    }
}

#[test]
fn read_only_attributes_are_refused_with_mutability() {
    for body in [
        json!([{"op": "replace", "path": "id", "value": "x"}]),
        json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
        json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
    ] {
        assert_eq!(
            err_type(users(), bjensen(), ops(body.clone())),
            "mutability",
            "{body}"
        );
    }
}

#[test]
fn wrong_types_are_invalid_values() {
    for body in [
        json!([{"op": "replace", "path": "active", "value": "perhaps"}]),
        json!([{"op": "replace", "path": "active", "value": 1}]),
        json!([{"op": "replace", "path": "userName", "value": 5}]),
        json!([{"op": "replace", "path": "name", "value": "plain"}]),
        json!([{"op": "replace", "path": "userName", "value": ""}]),
        json!([{"op": "remove", "path": "userName"}]),
        json!([{"op": "add", "path": "nickName"}]),
    ] {
        assert_eq!(
            err_type(users(), bjensen(), ops(body.clone())),
            "invalidValue",
            "{body}"
        );
    }
}

#[test]
fn a_failing_operation_leaves_nothing_applied() {
    // `apply` works on a copy; the caller writes nothing on error. The copy is the only
    // thing the earlier operations touched.
    let before = bjensen();
    let r = patch(
        users(),
        before.clone(),
        ops(json!([
            {"op": "replace", "path": "active", "value": false},
            {"op": "replace", "path": "nope", "value": 1}
        ])),
    );
    assert!(r.is_err());
    assert_eq!(before["active"], json!(true));
}

#[test]
fn remove_needs_a_path_and_operations_are_bounded() {
    assert_eq!(
        err_type(users(), bjensen(), ops(json!([{"op": "remove"}]))),
        "noTarget"
    );
    assert_eq!(
        err_type(
            users(),
            bjensen(),
            ops(json!([{"op": "move", "path": "x"}]))
        ),
        "invalidSyntax"
    );
    assert_eq!(
        err_type(users(), bjensen(), json!({"Operations": "x"})),
        "invalidSyntax"
    );
    assert_eq!(
        err_type(
            users(),
            bjensen(),
            json!({"schemas": ["urn:x"], "Operations": []})
        ),
        "invalidSyntax"
    );
    let many: Vec<Value> = (0..51)
        .map(|_| json!({"op": "replace", "path": "active", "value": true}))
        .collect();
    assert_eq!(
        err_type(users(), bjensen(), ops(Value::Array(many))),
        "tooMany"
    );
}

#[test]
fn multi_valued_add_appends_and_demotes_the_old_primary() {
    let p = ok(
        users(),
        bjensen(),
        ops(
            json!([{"op": "add", "path": "emails", "value": [{"value": "b@work.example", "type": "work", "primary": true}]}]),
        ),
    );
    let emails = p.resource["emails"].as_array().unwrap();
    assert_eq!(emails.len(), 2);
    assert_eq!(emails[0]["primary"], json!(false));
    assert_eq!(emails[1]["primary"], json!(true));
}

#[test]
fn multi_valued_replace_and_remove_by_filter() {
    let p = ok(
        users(),
        bjensen(),
        ops(json!([
            {"op": "add", "path": "emails", "value": [{"value": "w@x", "type": "work"}]},
            {"op": "remove", "path": "emails[type eq \"home\"]"}
        ])),
    );
    assert_eq!(
        p.resource["emails"],
        json!([{"value": "w@x", "type": "work"}])
    );
    let p = ok(
        users(),
        p.resource,
        ops(json!([{"op": "replace", "path": "emails", "value": []}])),
    );
    assert!(p.resource.get("emails").is_none());
}

#[test]
fn replace_on_a_filter_that_matches_nothing_and_is_not_eq_terms_is_no_target() {
    assert_eq!(
        err_type(
            users(),
            bjensen(),
            ops(
                json!([{"op": "replace", "path": "emails[value co \"zzz\"].type", "value": "work"}])
            )
        ),
        "noTarget"
    );
}

#[test]
fn password_is_accepted_and_never_kept() {
    let p = ok(
        users(),
        bjensen(),
        ops(json!([{"op": "replace", "path": "password", "value": "hunter2"}])),
    );
    assert!(p.resource.get("password").is_none());
    assert!(!p.resource_changed);
}

#[test]
fn immutable_values_cannot_change() {
    // No User attribute is immutable in RFC 7643; members' sub-attributes are.
    assert_eq!(
        err_type(
            groups(),
            obj(json!({"displayName": "g"})),
            ops(json!([{"op": "add", "path": "members.type", "value": "User"}]))
        ),
        "mutability"
    );
}
