//! Microsoft Entra ID's provisioning, replayed in both PATCH dialects of INTEROP.md: the
//! default one (capitalised ops, string booleans, members removed by value list) and the
//! `aadOptscim062020` one (lower case, path-less multi-attribute replace, members removed
//! by filter path).

use deprov_core::scim::EventKind;
use deprov_store::{Store, db_test};
use serde_json::{Value, json};

use crate::scim_harness::{App, ENTERPRISE, GROUP_URN, USER_URN, patch_ops, q};
use crate::scim_okta::bind_group;

fn entra_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "UserName": user_name,
        "Active": "True",
        "DisplayName": "Bob Amazing",
        "schemas": [USER_URN, ENTERPRISE],
        "externalId": external_id,
        "name": {"formatted": "Bob Amazing", "familyName": "Amazing", "givenName": "Bob"},
        "emails": [{"Primary": true, "type": "home", "value": format!("home.{user_name}")}],
        "addresses": [{"formatted": null, "streetAddress": "1 Main St", "type": "work"}],
        "phoneNumbers": null,
        "title": null,
        "manager": null,
        "roles": [],
        "meta": {"resourceType": "User"},
        ENTERPRISE: {"department": "Eng"}
    })
}

async fn member_ids(app: &App, gid: &str) -> anyhow::Result<Vec<String>> {
    let g = app
        .store
        .get_group(&app.tenant_id, gid, true)
        .await?
        .ok_or_else(|| anyhow::anyhow!("group"))?;
    let mut ids: Vec<String> = g
        .members
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.value)
        .collect();
    ids.sort();
    Ok(ids)
}

async fn stored_user(app: &App, id: &str) -> anyhow::Result<Value> {
    Ok(app
        .store
        .get_user(&app.tenant_id, id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("user"))?
        .resource
        .to_value()?)
}

db_test!(
    entra_default_dialect_replay,
    |store: Store, _url| async move {
        let app = App::start(store).await?;

        // Test connection: a random userName, expecting 200 and an empty list.
        let probe = app
            .get(&format!(
                "/Users?filter={}",
                q("userName eq \"6f1e1c52-8d1c-4b1e-9a53-1f0f5c7e2a11\"")
            ))
            .await?
            .expect(200);
        assert_eq!(probe.body["totalResults"], json!(0));
        assert_eq!(
            probe.header("content-type").as_deref(),
            Some("application/scim+json")
        );

        // Create, PascalCase and string booleans included.
        let boss = app
            .post("/Users", &entra_user("boss@contoso.com", "e-boss"))
            .await?
            .expect(201)
            .id();
        let created = app
            .post("/Users", &entra_user("bob@contoso.com", "e-bob"))
            .await?
            .expect(201);
        let id = created.id();
        assert_eq!(created.body["userName"], json!("bob@contoso.com"));
        assert_eq!(created.body["active"], json!(true));
        assert_eq!(created.body[ENTERPRISE]["department"], json!("Eng"));
        assert!(created.body.get("phoneNumbers").is_none());

        // Attribute updates, one op per attribute, capitalised.
        let ans = app
        .patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "bob@contoso.com"},
                {"op": "Replace", "path": "name.familyName", "value": "Amazing-Smith"},
                {"op": "Add", "path": "nickName", "value": "Bobby"},
                {"op": "Replace", "path": format!("{ENTERPRISE}:employeeNumber"), "value": "1001"}
            ])),
        )
        .await?
        .expect(200);
        assert_eq!(ans.body["nickName"], json!("Bobby"));
        let stored = stored_user(&app, &id).await?;
        assert_eq!(stored["name"]["familyName"], json!("Amazing-Smith"));
        assert_eq!(stored[ENTERPRISE]["employeeNumber"], json!("1001"));
        let emails = stored["emails"].as_array().cloned().unwrap_or_default();
        assert!(
            emails
                .iter()
                .any(|e| e["type"] == json!("work") && e["value"] == json!("bob@contoso.com")),
            "{emails:?}"
        );
        // And the work email is now a filter Entra can use.
        let found = app
            .get(&format!(
                "/Users?filter={}",
                q("emails[type eq \"work\"].value eq \"BOB@contoso.com\"")
            ))
            .await?
            .expect(200);
        assert_eq!(found.body["totalResults"], json!(1));

        // Manager: a reference check by filter, then Add with a bare-string id.
        let check = format!(
            "/Users?filter={}",
            q(&format!("id eq \"{id}\" and manager eq \"{boss}\""))
        );
        assert_eq!(
            app.get(&check).await?.expect(200).body["totalResults"],
            json!(0)
        );
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(
                json!([{"op": "Add", "path": format!("{ENTERPRISE}:manager"), "value": boss}]),
            ),
        )
        .await?
        .expect(200);
        assert_eq!(
            stored_user(&app, &id).await?[ENTERPRISE]["manager"],
            json!({"value": boss})
        );
        assert_eq!(
            app.get(&check).await?.expect(200).body["totalResults"],
            json!(1)
        );
        assert!(app.events().await?.is_empty());

        // Disable: Replace active "False". One event; still visible, with active false.
        let ans = app
            .patch(
                &format!("/Users/{id}"),
                &patch_ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
            )
            .await?
            .expect(200);
        assert_eq!(ans.body["active"], json!(false));
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await?
        .expect(200);
        assert_eq!(
            app.event_kinds().await?,
            vec![(EventKind::Deactivated, id.clone())]
        );
        let look = app
            .get(&format!(
                "/Users?filter={}",
                q("userName eq \"Bob@Contoso.com\"")
            ))
            .await?
            .expect(200);
        assert_eq!(look.body["Resources"][0]["active"], json!(false));

        // Groups: create with Entra's extra schema URN; read without members.
        let u2 = app
            .post("/Users", &entra_user("carol@contoso.com", "e-carol"))
            .await?
            .expect(201)
            .id();
        let group = app
        .post(
            "/Groups",
            &json!({
                "externalId": "8aa1a0c0-c4c3-4bc0-b4a5-2ef676900159",
                "displayName": "Group1DisplayName",
                "schemas": [GROUP_URN, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "meta": {"resourceType": "Group"}
            }),
        )
        .await?
        .expect(201);
        let gid = group.id();
        bind_group(&app, &gid).await?;
        let listed = app
            .get(&format!(
                "/Groups?excludedAttributes=members&filter={}",
                q("displayName eq \"group1displayname\"")
            ))
            .await?
            .expect(200);
        assert_eq!(listed.body["totalResults"], json!(1));
        assert!(listed.body["Resources"][0].get("members").is_none());

        // Add members (with $ref null), then remove one by value list: only that one goes.
        app.patch(
        &format!("/Groups/{gid}"),
        &patch_ops(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": id}, {"$ref": null, "value": u2}]}])),
    )
    .await?
    .expect(204);
        let one = app
            .get(&format!("/Groups/{gid}?excludedAttributes=members"))
            .await?
            .expect(200);
        assert!(one.body.get("members").is_none());
        assert_eq!(one.body["displayName"], json!("Group1DisplayName"));
        app.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(json!([{"op": "Remove", "path": "members", "value": [{"value": u2}]}])),
        )
        .await?
        .expect(204);
        assert_eq!(member_ids(&app, &gid).await?, vec![id.clone()]);
        let removed: Vec<_> = app
            .event_kinds()
            .await?
            .into_iter()
            .filter(|(k, _)| *k == EventKind::RemovedFromGroup)
            .collect();
        assert_eq!(removed, vec![(EventKind::RemovedFromGroup, u2.clone())]);

        // Rename.
        app.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(json!([{"op": "Replace", "path": "displayName", "value": "Renamed"}])),
        )
        .await?
        .expect(204);
        assert_eq!(
            app.get(&format!("/Groups/{gid}")).await?.expect(200).body["displayName"],
            json!("Renamed")
        );
        assert_eq!(member_ids(&app, &gid).await?, vec![id.clone()]);

        // Hard delete of the user: 204, then 404; one Deleted event.
        app.delete(&format!("/Users/{id}")).await?.expect(204);
        app.get(&format!("/Users/{id}"))
            .await?
            .expect_error(404, None);
        app.delete(&format!("/Users/{id}"))
            .await?
            .expect_error(404, None);
        let deleted: Vec<_> = app
            .event_kinds()
            .await?
            .into_iter()
            .filter(|(k, _)| *k == EventKind::Deleted)
            .collect();
        assert_eq!(deleted, vec![(EventKind::Deleted, id.clone())]);

        app.delete(&format!("/Groups/{gid}")).await?.expect(204);
        app.get(&format!("/Groups/{gid}"))
            .await?
            .expect_error(404, None);
        app.stop().await
    }
);

db_test!(
    entra_aadoptscim062020_dialect_replay,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let id = app
            .post("/Users", &entra_user("dan@contoso.com", "e-dan"))
            .await?
            .expect(201)
            .id();
        let other = app
            .post("/Users", &entra_user("eve@contoso.com", "e-eve"))
            .await?
            .expect(201)
            .id();

        // A filtered-path op plus one path-less replace with dotted and URN keys.
        app.patch(
        &format!("/Users/{id}"),
        &patch_ops(json!([
            {"op": "replace", "path": "emails[type eq \"work\"].value", "value": "dan@contoso.com"},
            {"op": "replace", "value": {
                "displayName": "Daniel",
                "name.givenName": "Daniel",
                "name.familyName": "Smith",
                format!("{ENTERPRISE}:employeeNumber"): "2002"
            }}
        ])),
    )
    .await?
    .expect(200);
        let stored = stored_user(&app, &id).await?;
        assert_eq!(stored["displayName"], json!("Daniel"));
        assert_eq!(stored["name"]["givenName"], json!("Daniel"));
        assert_eq!(stored["name"]["familyName"], json!("Smith"));
        assert_eq!(stored[ENTERPRISE]["employeeNumber"], json!("2002"));
        assert_eq!(
            stored[ENTERPRISE]["department"],
            json!("Eng"),
            "untouched attributes stay"
        );

        // Manager as an object this time, and a remove.
        app.patch(&format!("/Users/{id}"), &patch_ops(json!([{"op": "add", "path": format!("{ENTERPRISE}:manager"), "value": {"value": other}}])))
        .await?
        .expect(200);
        assert_eq!(
            stored_user(&app, &id).await?[ENTERPRISE]["manager"]["value"],
            json!(other)
        );
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "remove", "path": format!("{ENTERPRISE}:manager")}])),
        )
        .await?
        .expect(200);
        assert!(
            stored_user(&app, &id).await?[ENTERPRISE]
                .get("manager")
                .is_none()
        );

        // Disable with a JSON boolean.
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await?
        .expect(200);
        assert_eq!(
            app.event_kinds().await?,
            vec![(EventKind::Deactivated, id.clone())]
        );

        // Members: add, then remove by filter path without a value.
        let gid = app
            .post(
                "/Groups",
                &json!({"schemas": [GROUP_URN], "displayName": "Sales"}),
            )
            .await?
            .expect(201)
            .id();
        bind_group(&app, &gid).await?;
        app.patch(&format!("/Groups/{gid}"), &patch_ops(json!([{"op": "add", "path": "members", "value": [{"value": id}, {"value": other}]}])))
        .await?
        .expect(204);
        app.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(json!([{"op": "remove", "path": format!("members[value eq \"{other}\"]")}])),
        )
        .await?
        .expect(204);
        assert_eq!(member_ids(&app, &gid).await?, vec![id.clone()]);
        let removed: Vec<_> = app
            .event_kinds()
            .await?
            .into_iter()
            .filter(|(k, _)| *k == EventKind::RemovedFromGroup)
            .collect();
        assert_eq!(removed, vec![(EventKind::RemovedFromGroup, other.clone())]);

        // A group PATCH that asks for attributes gets the resource.
        let ans = app
            .patch(
                &format!("/Groups/{gid}?attributes=displayName,members"),
                &patch_ops(json!([{"op": "replace", "value": {"displayName": "Sales EU"}}])),
            )
            .await?
            .expect(200);
        assert_eq!(ans.body["displayName"], json!("Sales EU"));
        assert_eq!(ans.body["members"][0]["value"], json!(id));

        app.stop().await
    }
);
