use super::render::{Projection, Stored, etag, parse_etag, render, render_text, rfc3339_millis};
use super::*;
use crate::schema::{ENTERPRISE_USER_URN, catalog};
use serde_json::json;

fn users() -> &'static ResourceSchema {
    &catalog().unwrap().user
}

fn groups() -> &'static ResourceSchema {
    &catalog().unwrap().group
}

#[test]
fn okta_create_body_is_normalised_and_password_dropped() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "isabella@example.com",
        "name": {"givenName": "Isabella", "familyName": "Hill"},
        "emails": [{"primary": true, "value": "isabella@example.com", "type": "work"}],
        "displayName": "Isabella Hill",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "groups": [],
        "password": "1mz050nq",
        "active": true
    });
    let n = normalise_body(users(), &body).unwrap();
    assert!(n.resource.get("password").is_none());
    assert!(n.resource.get("groups").is_none());
    assert_eq!(n.resource["userName"], json!("isabella@example.com"));
    assert_eq!(n.resource["externalId"], json!("00ujl29u0le5T6Aj10h7"));
    assert_eq!(n.members, None);
}

#[test]
fn entra_create_body_with_nulls_meta_and_string_booleans() {
    let body = json!({
        "UserName": "UserName123",
        "Active": "True",
        "DisplayName": "BobIsAmazing",
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0User"],
        "externalId": "ext-1",
        "name": {"formatted": "Ryan Leenay", "familyName": "Leenay", "givenName": "Ryan"},
        "emails": [{"Primary": "true", "type": "work", "value": "Testing@bob.com"}],
        "addresses": [{"formatted": null, "streetAddress": "1 Main", "type": "work"}],
        "phoneNumbers": null,
        "title": null,
        "roles": [],
        "meta": {"resourceType": "User"},
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Eng", "manager": null}
    });
    let n = normalise_body(users(), &body).unwrap();
    let r = &n.resource;
    assert_eq!(r["userName"], json!("UserName123"));
    assert_eq!(r["active"], json!(true));
    assert_eq!(r["emails"][0]["primary"], json!(true));
    assert_eq!(
        r["addresses"],
        json!([{"streetAddress": "1 Main", "type": "work"}])
    );
    assert!(
        r.get("phoneNumbers").is_none() && r.get("title").is_none() && r.get("roles").is_none()
    );
    assert!(r.get("meta").is_none());
    assert_eq!(r[ENTERPRISE_USER_URN], json!({"department": "Eng"}));
    assert_eq!(
        r["schemas"],
        json!([
            "urn:ietf:params:scim:schemas:core:2.0:User",
            ENTERPRISE_USER_URN
        ])
    );
}

#[test]
fn bodies_missing_required_attributes_or_with_bad_types_are_refused() {
    for body in [
        json!({"name": {"givenName": "x"}}),
        json!({"userName": ""}),
        json!({"userName": 7}),
        json!({"userName": "a", "active": "sometimes"}),
        json!({"userName": "a", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
        json!({"userName": "a", "USERNAME": "b"}),
    ] {
        let e = normalise_body(users(), &body).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{body}");
        assert_eq!(
            e.scim_type.map(|t| t.as_str().to_owned()).as_deref(),
            Some("invalidValue"),
            "{body}"
        );
    }
    let e = normalise_body(users(), &json!([1])).unwrap_err();
    assert_eq!(
        e.scim_type.map(|t| t.as_str().to_owned()).as_deref(),
        Some("invalidSyntax")
    );
}

#[test]
fn group_members_are_taken_apart_from_the_resource() {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group", "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
        "displayName": "Eng",
        "externalId": "g-ext",
        "members": [{"value": "u1"}, {"value": "g1", "type": "Group"}, {"value": "u1"}]
    });
    let n = normalise_body(groups(), &body).unwrap();
    assert!(n.resource.get("members").is_none());
    assert_eq!(n.members.map(|m| m.len()), Some(2));
    let e = normalise_body(groups(), &json!({"members": []})).unwrap_err();
    assert_eq!(e.status.as_u16(), 400);
}

fn stored_u1() -> Stored<'static> {
    Stored {
        id: "u1",
        version: 3,
        created_ms: 1_700_000_000_000,
        updated_ms: 1_700_000_001_500,
        location: "https://x/scim/v2/t/Users/u1".into(),
    }
}

/// Rendering stored text gives the very bytes rendering the parsed document does, and
/// declines (rather than guessing) what it cannot split.
#[test]
fn rendering_stored_text_matches_rendering_the_parsed_document() {
    let documents = [
        json!({"userName": "a", "password": "leaked?", "active": true}),
        json!({
            "userName": "Baé \"q\"", "active": false, "externalId": "x",
            "name": {"givenName": "G", "familyName": "F"},
            "emails": [{"value": "b@example.com", "type": "work", "primary": true}],
            ENTERPRISE_USER_URN: {"employeeNumber": "7", "manager": {"value": "m"}},
            // Whatever a stored document claims of these, the rendering decides them.
            "schemas": ["urn:x"], "id": "other", "meta": {"version": "W/\"9\""},
        }),
        json!({}),
    ];
    let stored = Stored {
        id: "id \"quoted\"",
        ..stored_u1()
    };
    for doc in documents {
        let text = serde_json::to_string(&doc).unwrap();
        let fast = render_text(users(), &text, &stored).expect("splits");
        let slow = serde_json::to_string(&render(users(), doc, &stored)).unwrap();
        assert_eq!(fast, slow);
    }
    // Not an object, or a key with an escape: left to `render`.
    for text in ["[1]", "null", r#"{"a\"b": 1}"#, "{"] {
        assert!(render_text(users(), text, &stored).is_none(), "{text}");
    }
}

#[test]
fn rendering_adds_id_meta_and_never_a_password() {
    let stored = json!({"userName": "a", "password": "leaked?", "active": true});
    let out = render(users(), stored, &stored_u1());
    assert!(out.get("password").is_none());
    assert_eq!(out["id"], json!("u1"));
    assert_eq!(out["meta"]["version"], json!("W/\"3\""));
    assert_eq!(out["meta"]["created"], json!("2023-11-14T22:13:20.000Z"));
    assert_eq!(
        out["meta"]["lastModified"],
        json!("2023-11-14T22:13:21.500Z")
    );
    assert_eq!(out["meta"]["resourceType"], json!("User"));
    assert_eq!(
        out["schemas"],
        json!(["urn:ietf:params:scim:schemas:core:2.0:User"])
    );
}

/// The hand-written timestamp is chrono's, at the edges of months, leap days, centuries and
/// the four-digit years, and at a spread of instants between them.
#[test]
fn timestamps_are_written_as_chrono_writes_them() {
    use chrono::{DateTime, SecondsFormat, Utc};
    let chrono_text = |ms: i64| {
        DateTime::<Utc>::from_timestamp_millis(ms)
            .unwrap_or_default()
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    };
    let mut instants = vec![
        0,
        -1,
        1,
        999,
        -1000,
        951_782_400_000,       // 2000-02-29
        4_107_542_400_000 - 1, // 2100-02-28T23:59:59.999
        -11_676_096_000_000,   // 1600-01-01
        -62_167_219_200_000,   // 0000-01-01, the first chrono writes without a sign
        -62_167_219_200_001,   // -0001-12-31T23:59:59.999
        253_402_300_799_999,   // 9999-12-31T23:59:59.999
        253_402_300_800_000,   // +10000-01-01
        i64::MIN,
        i64::MAX,
    ];
    // Every 997 hours and 7 ms from 1600 to 2400.
    let step = 997 * 3_600_000 + 7;
    instants.extend(
        (0..)
            .map(|i| -11_676_096_000_000 + i * step)
            .take_while(|&ms| ms < 13_574_563_200_000),
    );
    assert!(instants.len() > 7_000);
    for ms in instants {
        assert_eq!(rfc3339_millis(ms), chrono_text(ms), "{ms}");
    }
}

#[test]
fn etags_round_trip() {
    assert_eq!(parse_etag(&etag(42)), Some(42));
    assert_eq!(parse_etag("\"7\""), Some(7));
    assert_eq!(parse_etag("W/\"x\""), None);
    assert_eq!(parse_etag("*"), None);
}

#[test]
fn projection_keeps_always_returned_and_selects_sub_attributes() {
    let full = match json!({
        "schemas": ["s"], "id": "u1", "userName": "a", "active": true,
        "name": {"givenName": "A", "familyName": "B"},
        "emails": [{"value": "x", "type": "work"}],
        ENTERPRISE_USER_URN: {"department": "D", "manager": {"value": "m"}},
        "meta": {"version": "W/\"1\""}
    }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let p = Projection::parse(
        users(),
        &[
            "userName,name.givenName,emails.value".into(),
            "manager".into(),
        ],
        &[],
    )
    .unwrap();
    let out = p.apply(users(), full.clone());
    assert_eq!(
        serde_json::Value::Object(out),
        json!({
            "schemas": ["s"], "id": "u1", "userName": "a",
            "name": {"givenName": "A"},
            "emails": [{"value": "x"}],
            ENTERPRISE_USER_URN: {"manager": {"value": "m"}}
        })
    );
    let p = Projection::parse(
        users(),
        &[],
        &["ID".into(), "emails".into(), "meta".into(), "nope".into()],
    )
    .unwrap();
    let out = p.apply(users(), full);
    assert!(out.contains_key("id") && !out.contains_key("emails") && !out.contains_key("meta"));
    assert!(Projection::parse(users(), &["a".into()], &["b".into()]).is_err());
}

#[test]
fn members_are_wanted_unless_excluded_or_not_selected() {
    let g = groups();
    assert!(Projection::default().wants("members"));
    assert!(
        !Projection::parse(g, &[], &["members".into()])
            .unwrap()
            .wants("members")
    );
    assert!(
        !Projection::parse(g, &["displayName".into()], &[])
            .unwrap()
            .wants("members")
    );
    assert!(
        Projection::parse(g, &["members.value".into()], &[])
            .unwrap()
            .wants("members")
    );
    assert!(
        Projection::parse(g, &[], &["members.display".into()])
            .unwrap_or_default()
            .wants("members")
    );
}

#[test]
fn put_may_not_change_an_immutable_value() {
    // RFC 7643 defines no immutable top-level attribute for these types: nothing refused.
    let a = match json!({"userName": "a"}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let b = match json!({"userName": "b"}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    assert!(check_immutable(users(), &a, &b).is_ok());
}
