use super::*;
use crate::schema::{ENTERPRISE_USER_URN, catalog};
use deprov_core::scim::{CompareOp, Filter, FilterValue};

const LIMITS: FilterLimits = FilterLimits {
    max_length: 4096,
    max_depth: 16,
};

fn user(raw: &str) -> Result<Filter, ScimError> {
    resolve_filter(&catalog().unwrap().user, raw, LIMITS)
}

fn group(raw: &str) -> Result<Filter, ScimError> {
    resolve_filter(&catalog().unwrap().group, raw, LIMITS)
}

fn scim_type(e: &ScimError) -> &str {
    e.scim_type.as_ref().map(|t| t.as_str()).unwrap_or("")
}

fn compare(f: &Filter) -> (&[String], CompareOp, &FilterValue, bool) {
    match f {
        Filter::Compare { attr, op, value } => (&attr.path, *op, value, attr.case_exact),
        other => panic!("not a comparison: {other:?}"),
    }
}

#[test]
fn okta_and_entra_lookups_resolve_to_canonical_paths() {
    let f = user(r#"userName eq "bjensen@example.com""#).unwrap();
    let (path, op, value, case_exact) = compare(&f);
    assert_eq!(path, ["userName"]);
    assert_eq!(op, CompareOp::Eq);
    assert_eq!(value, &FilterValue::String("bjensen@example.com".into()));
    assert!(!case_exact);

    let f = user(r#"EXTERNALID EQ "00u1""#).unwrap();
    let (path, _, _, case_exact) = compare(&f);
    assert_eq!(path, ["externalId"]);
    assert!(case_exact);

    let f = group(r#"displayName eq "Admins""#).unwrap();
    assert_eq!(compare(&f).0, ["displayName"]);
}

#[test]
fn quoted_booleans_are_booleans() {
    for raw in [
        r#"active eq "True""#,
        "active eq true",
        r#"Active EQ "true""#,
    ] {
        let f = user(raw).unwrap();
        assert_eq!(compare(&f).2, &FilterValue::Bool(true), "{raw}");
    }
    let e = user(r#"active eq "maybe""#).unwrap_err();
    assert_eq!(scim_type(&e), "invalidFilter");
    let e = user("active gt true").unwrap_err();
    assert_eq!(scim_type(&e), "invalidFilter");
}

#[test]
fn entra_value_path_with_sub_attribute_is_rewritten_to_the_rfc_form() {
    let f = user(r#"emails[type eq "work"].value eq "a@x.com""#).unwrap();
    let Filter::ValuePath { attr, filter } = f else {
        panic!("{f:?}")
    };
    assert_eq!(attr.path, ["emails"]);
    let Filter::And(a, b) = *filter else { panic!() };
    assert_eq!(compare(&a).0, ["type"]);
    assert_eq!(compare(&b).0, ["value"]);
    assert_eq!(compare(&b).2, &FilterValue::String("a@x.com".into()));
}

#[test]
fn rewriting_leaves_string_literals_and_plain_filters_alone() {
    let plain = r#"userName eq "a].b eq c""#;
    assert_eq!(rewrite_value_path_sub_attr(plain), plain);
    assert_eq!(
        rewrite_value_path_sub_attr(r#"emails[type eq "work"].value pr and active eq true"#),
        r#"emails[(type eq "work") and value pr] and active eq true"#
    );
    assert_eq!(
        rewrite_value_path_sub_attr(r#"emails[type eq "w\"]."].value sw "x]"  or x pr"#),
        r#"emails[(type eq "w\"].") and value sw "x]"]  or x pr"#
    );
    // Not the shape: left for the parser to refuse.
    assert_eq!(
        rewrite_value_path_sub_attr("emails[type eq 1]."),
        "emails[type eq 1]."
    );
}

#[test]
fn complex_attributes_compare_their_value() {
    let f = user(r#"manager eq "boss""#).unwrap();
    assert_eq!(compare(&f).0, [ENTERPRISE_USER_URN, "manager", "value"]);
    let f = user(r#"emails co "@example.com""#).unwrap();
    let Filter::Compare { attr, .. } = &f else {
        panic!()
    };
    assert_eq!(attr.path, ["emails", "value"]);
    assert_eq!(attr.multi_valued_at, Some(0));
    let f =
        user(r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber eq "7""#)
            .unwrap();
    assert_eq!(compare(&f).0, [ENTERPRISE_USER_URN, "employeeNumber"]);
}

#[test]
fn the_full_grammar_resolves() {
    let f = user(
        r#"not (userName sw "a" or title pr) and (meta.lastModified gt "2011-05-13T04:42:34Z")"#,
    )
    .unwrap();
    assert!(matches!(f, Filter::And(_, _)));
    let f = user(r#"id eq "x" and manager eq "y""#).unwrap();
    assert!(matches!(f, Filter::And(_, _)));
    let f = group(r#"members[value eq "u1"]"#).unwrap();
    assert!(matches!(f, Filter::ValuePath { .. }));
}

#[test]
fn unknown_attributes_and_bad_syntax_are_invalid_filters() {
    for raw in [
        r#"nope eq "x""#,
        r#"emails[nope eq "x"]"#,
        r#"userName eq"#,
        r#"userName eq "x" garbage"#,
        "",
        r#"name eq "x""#,
        r#"userName eq 5"#,
        r#"meta.created eq "yesterday""#,
        r#"userName eq "x"))"#,
    ] {
        let e = user(raw).unwrap_err();
        assert_eq!(e.status.as_u16(), 400, "{raw}");
        assert_eq!(scim_type(&e), "invalidFilter", "{raw}: {e}");
    }
}

#[test]
fn limits_are_enforced() {
    let long = format!(r#"userName eq "{}""#, "a".repeat(5000));
    assert_eq!(scim_type(&user(&long).unwrap_err()), "invalidFilter");
    let mut deep = "userName pr".to_owned();
    for _ in 0..20 {
        deep = format!("not ({deep})");
    }
    assert_eq!(scim_type(&user(&deep).unwrap_err()), "invalidFilter");
    let many = vec![r#"userName eq "x""#; 1100].join(" or ");
    let e = resolve_filter(
        &catalog().unwrap().user,
        &many,
        FilterLimits {
            max_length: 1 << 20,
            max_depth: 16,
        },
    )
    .unwrap_err();
    assert_eq!(scim_type(&e), "tooMany");
}

#[test]
fn sort_resolves_like_a_filter_attribute() {
    let s = &catalog().unwrap().user;
    assert_eq!(resolve_sort(s, "USERNAME").unwrap().path, ["userName"]);
    assert_eq!(resolve_sort(s, "emails").unwrap().path, ["emails", "value"]);
    assert_eq!(
        resolve_sort(s, "name.familyName").unwrap().path,
        ["name", "familyName"]
    );
    assert_eq!(
        resolve_sort(s, "meta.created").unwrap().path,
        ["meta", "created"]
    );
    assert_eq!(resolve_sort(s, "nope").unwrap_err().status.as_u16(), 400);
}
