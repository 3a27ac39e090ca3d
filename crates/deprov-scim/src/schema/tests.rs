use super::*;

fn cat() -> &'static Catalog {
    match catalog() {
        Ok(c) => c,
        Err(e) => panic!("the schema documents must load: {e}"),
    }
}

#[test]
fn documents_load_and_describe_both_resource_types() {
    let c = cat();
    assert_eq!(c.user.core.id, USER_URN);
    assert_eq!(c.group.core.id, GROUP_URN);
    assert_eq!(c.user.extensions.len(), 1);
    assert_eq!(c.user.extensions[0].id, ENTERPRISE_USER_URN);
    assert_eq!(c.documents.len(), 3);
    assert_eq!(c.resource_types.len(), 2);
}

#[test]
fn lookups_ignore_case_and_answer_with_the_canonical_name() {
    let c = cat();
    let found = c.user.find(None, "USERNAME").map(|f| f.attr.name.clone());
    assert_eq!(found.as_deref(), Some("userName"));
    let found = c
        .user
        .find(Some("URN:IETF:PARAMS:SCIM:SCHEMAS:CORE:2.0:USER"), "active");
    assert_eq!(found.map(|f| f.attr.kind), Some(AttrType::Boolean));
    assert!(c.user.find(None, "nope").is_none());
    assert!(c.user.find(Some("urn:example:other"), "userName").is_none());
}

#[test]
fn extension_attributes_resolve_with_and_without_their_urn() {
    let c = cat();
    let with = c.user.find(Some(ENTERPRISE_USER_URN), "employeeNumber");
    let without = c.user.find(None, "Manager");
    assert_eq!(
        with.and_then(|f| f.extension).map(|e| e.id.as_str()),
        Some(ENTERPRISE_USER_URN)
    );
    let Some(manager) = without else {
        panic!("manager resolves unqualified")
    };
    assert_eq!(
        manager.path(manager.attr.sub("value")),
        vec![
            ENTERPRISE_USER_URN.to_owned(),
            "manager".to_owned(),
            "value".to_owned()
        ]
    );
}

#[test]
fn attribute_properties_come_from_the_documents() {
    let c = cat();
    let get = |n: &str| c.user.find(None, n).map(|f| f.attr.clone());
    let Some(user_name) = get("userName") else {
        panic!()
    };
    assert!(user_name.required && !user_name.case_exact);
    assert_eq!(user_name.uniqueness, Uniqueness::Server);
    let Some(password) = get("password") else {
        panic!()
    };
    assert_eq!(password.mutability, Mutability::WriteOnly);
    assert_eq!(password.returned, Returned::Never);
    let Some(groups) = get("groups") else {
        panic!()
    };
    assert_eq!(groups.mutability, Mutability::ReadOnly);
    let Some(emails) = get("emails") else {
        panic!()
    };
    assert!(emails.multi_valued && emails.is_complex());
    assert_eq!(emails.sub("TYPE").map(|s| s.name.as_str()), Some("type"));
    let Some(id) = get("id") else { panic!() };
    assert!(id.case_exact && id.returned == Returned::Always);
    let Some(members) = c.group.find(None, "members").map(|f| f.attr.clone()) else {
        panic!()
    };
    assert_eq!(
        members.sub("value").map(|s| s.mutability),
        Some(Mutability::Immutable)
    );
}

#[test]
fn attr_refs_mark_the_multi_valued_segment() {
    let c = cat();
    let Some(emails) = c.user.find(None, "emails") else {
        panic!()
    };
    let r = emails.attr_ref(emails.attr.sub("value"));
    assert_eq!(r.path, vec!["emails".to_owned(), "value".to_owned()]);
    assert_eq!(r.multi_valued_at, Some(0));
    assert!(!r.case_exact);
    let Some(name) = c.user.find(None, "name") else {
        panic!()
    };
    assert_eq!(
        name.attr_ref(name.attr.sub("givenName")).multi_valued_at,
        None
    );
}

#[test]
fn attribute_paths_parse_with_urns_and_sub_attributes() {
    let Some(p) =
        parse_attr_path("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value")
    else {
        panic!()
    };
    assert_eq!(p.uri.as_deref(), Some(ENTERPRISE_USER_URN));
    assert_eq!(
        (p.name.as_str(), p.sub_attr.as_deref()),
        ("manager", Some("value"))
    );
    assert!(parse_attr_path("emails[type eq \"work\"]").is_none());
}
