//! Okta's provisioning, replayed as INTEROP.md describes it: each step asserts the HTTP
//! answer, the stored state and the de-provisioning events written.

use deprov_core::scim::EventKind;
use deprov_core::{SigningAlgorithm, SubjectMapping};
use deprov_store::targets::NewRelyingParty;
use deprov_store::{Store, db_test};
use serde_json::{Value, json};

use crate::scim_harness::{App, USER_URN, patch_ops, q};

fn okta_user(user_name: &str, external_id: &str, active: bool) -> Value {
    json!({
        "schemas": [USER_URN],
        "userName": user_name,
        "name": {"givenName": "Isabella", "familyName": "Hill"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Isabella Hill",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": active
    })
}

pub async fn bind_group(app: &App, group_id: &str) -> anyhow::Result<()> {
    app.store
        .add_relying_party(
            "acme",
            NewRelyingParty {
                client_id: format!("rp-{group_id}"),
                backchannel_logout_uri: url::Url::parse("https://rp.example.com/bcl")?,
                subject: SubjectMapping::UserName,
                alg: SigningAlgorithm::ES256,
                require_sid: false,
                issuer: None,
                kid: None,
                groups: vec![group_id.to_owned()],
                enabled: true,
            },
            "test",
        )
        .await?;
    Ok(())
}

db_test!(
    okta_user_lifecycle_replay,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let name = "isabella@example.com";

        // Lookup before create: an empty ListResponse, integers throughout.
        let look = app
            .get(&format!(
                "/Users?filter={}&startIndex=1&count=100",
                q(&format!("userName eq \"{name}\""))
            ))
            .await?
            .expect(200);
        assert_eq!(look.body["totalResults"], json!(0));
        assert_eq!(look.body["Resources"], json!([]));
        assert_eq!(look.body["startIndex"], json!(1));
        assert_eq!(look.body["itemsPerPage"], json!(0));

        // Create: 201 with the full resource, Location and ETag; no password anywhere.
        let created = app
            .post("/Users", &okta_user(name, "00u1", true))
            .await?
            .expect(201);
        let id = created.id();
        assert!(!id.is_empty());
        assert_eq!(
            created.header("location"),
            Some(format!("{}/Users/{id}", app.base))
        );
        assert_eq!(
            created.header("etag"),
            created.body["meta"]["version"].as_str().map(str::to_owned)
        );
        assert_eq!(created.body["userName"], json!(name));
        assert_eq!(created.body["active"], json!(true));
        assert!(created.body.get("password").is_none());
        assert!(!created.text.contains("1mz050nq"));
        assert_eq!(created.body["meta"]["resourceType"], json!("User"));
        let stored = app
            .store
            .get_user(&app.tenant_id, &id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("stored"))?;
        assert!(stored.resource.to_value()?.get("password").is_none());
        assert_eq!(stored.external_id.as_deref(), Some("00u1"));

        // A duplicate userName (any case) is 409 uniqueness.
        app.post("/Users", &okta_user("ISABELLA@example.com", "00u2", true))
            .await?
            .expect_error(409, Some("uniqueness"));

        // The lookup now finds it, case-insensitively.
        let look = app
            .get(&format!(
                "/Users?filter={}&startIndex=1&count=100",
                q("userName eq \"ISABELLA@EXAMPLE.COM\"")
            ))
            .await?
            .expect(200);
        assert_eq!(look.body["totalResults"], json!(1));
        assert_eq!(look.body["Resources"][0]["id"], json!(id));

        // Profile update: GET then full PUT.
        let got = app.get(&format!("/Users/{id}")).await?.expect(200);
        let mut body = got.body.clone();
        body["name"]["familyName"] = json!("Hill-Jones");
        body["title"] = json!("Engineer");
        let put = app.put(&format!("/Users/{id}"), &body).await?.expect(200);
        assert_eq!(put.body["name"]["familyName"], json!("Hill-Jones"));
        assert_eq!(put.body["title"], json!("Engineer"));
        assert_eq!(put.body["id"], json!(id));
        assert!(
            app.events().await?.is_empty(),
            "a profile update is not de-provisioning"
        );

        // Deactivate: path-less replace {active:false}. Exactly one event, carrying the request id.
        let deactivate = patch_ops(json!([{"op": "replace", "value": {"active": false}}]));
        let ans = app
            .call_with(
                reqwest::Method::PATCH,
                &format!("{}/Users/{id}", app.base),
                Some(&deactivate),
                &[
                    ("authorization", &format!("Bearer {}", app.token)),
                    ("x-request-id", "okta-deactivate-1"),
                ],
            )
            .await?
            .expect(200);
        assert_eq!(ans.body["active"], json!(false));
        assert_eq!(
            ans.header("x-request-id").as_deref(),
            Some("okta-deactivate-1")
        );
        let events = app.events().await?;
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::Deactivated);
        assert_eq!(events[0].user_id, id);
        assert_eq!(events[0].request_id, "okta-deactivate-1");
        assert_eq!(events[0].scim_method, "PATCH");

        // Repeating it changes nothing and writes nothing.
        app.patch(&format!("/Users/{id}"), &deactivate)
            .await?
            .expect(200);
        assert_eq!(app.events().await?.len(), 1);

        // The inactive user stays visible to GET and filters.
        let got = app.get(&format!("/Users/{id}")).await?.expect(200);
        assert_eq!(got.body["active"], json!(false));
        let look = app
            .get(&format!(
                "/Users?filter={}",
                q(&format!("userName eq \"{name}\""))
            ))
            .await?
            .expect(200);
        assert_eq!(look.body["Resources"][0]["active"], json!(false));

        // Reactivate: a re-activated event, nothing to revoke.
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "replace", "value": {"active": true}}])),
        )
        .await?
        .expect(200);
        // AIW apps deactivate with a full PUT.
        let mut body = app.get(&format!("/Users/{id}")).await?.expect(200).body;
        body["active"] = json!(false);
        app.put(&format!("/Users/{id}"), &body).await?.expect(200);
        let kinds: Vec<EventKind> = app
            .event_kinds()
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::Deactivated,
                EventKind::Reactivated,
                EventKind::Deactivated
            ]
        );

        // Re-assignment re-POSTs the user: restored with the same id, not 409.
        let again = app.post("/Users", &okta_user(name, "00u1", true)).await?;
        assert!(again.status == 201 || again.status == 200, "{}", again.text);
        assert_eq!(again.id(), id);
        assert_eq!(again.body["active"], json!(true));
        let kinds: Vec<EventKind> = app
            .event_kinds()
            .await?
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(kinds.last(), Some(&EventKind::Reactivated));
        assert_eq!(kinds.iter().filter(|k| k.revokes()).count(), 2);

        app.stop().await
    }
);

db_test!(
    okta_group_push_mixed_add_and_remove,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let mut users = Vec::new();
        for n in ["u1", "u2", "u3"] {
            users.push(
                app.post("/Users", &okta_user(&format!("{n}@example.com"), n, true))
                    .await?
                    .expect(201)
                    .id(),
            );
        }
        let (u1, u2, u3) = (users[0].clone(), users[1].clone(), users[2].clone());

        let group = app
        .post("/Groups", &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "Eng", "members": []}))
        .await?
        .expect(201);
        let gid = group.id();
        assert_eq!(group.body["displayName"], json!("Eng"));
        bind_group(&app, &gid).await?;

        let members = |app: &App, gid: String| {
            let store = app.store.clone();
            let tenant = app.tenant_id.clone();
            async move {
                let g = store
                    .get_group(&tenant, &gid, true)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("group"))?;
                let mut ids: Vec<String> = g
                    .members
                    .unwrap_or_default()
                    .into_iter()
                    .map(|m| m.value)
                    .collect();
                ids.sort();
                anyhow::Ok(ids)
            }
        };
        let sorted = |mut v: Vec<String>| {
            v.sort();
            v
        };

        // Rename re-sent with every membership change, plus the add list.
        app.patch(
        &format!("/Groups/{gid}"),
        &patch_ops(json!([
            {"op": "replace", "value": {"id": gid, "displayName": "Eng"}},
            {"op": "add", "path": "members", "value": [{"value": u1, "display": "u1"}, {"value": u2, "display": "u2"}]}
        ])),
    )
    .await?
    .expect(204);
        assert_eq!(
            members(&app, gid.clone()).await?,
            sorted(vec![u1.clone(), u2.clone()])
        );

        // One PATCH mixing remove by filter and add by list.
        app.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(json!([
                {"op": "replace", "value": {"id": gid, "displayName": "Eng"}},
                {"op": "remove", "path": format!("members[value eq \"{u1}\"]")},
                {"op": "add", "path": "members", "value": [{"value": u3}]}
            ])),
        )
        .await?
        .expect(204);
        assert_eq!(
            members(&app, gid.clone()).await?,
            sorted(vec![u2.clone(), u3.clone()])
        );
        assert_eq!(
            app.event_kinds().await?,
            vec![(EventKind::RemovedFromGroup, u1.clone())]
        );

        // Full push: replace members.
        app.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(json!([{"op": "replace", "path": "members", "value": [{"value": u3}]}])),
        )
        .await?
        .expect(204);
        assert_eq!(members(&app, gid.clone()).await?, vec![u3.clone()]);
        let events = app.event_kinds().await?;
        assert_eq!(events.len(), 2);
        assert_eq!(events[1], (EventKind::RemovedFromGroup, u2.clone()));

        // Rename (path-less, with the id) keeps members and writes no event.
        app.patch(
            &format!("/Groups/{gid}"),
            &patch_ops(
                json!([{"op": "replace", "value": {"id": gid, "displayName": "Engineering"}}]),
            ),
        )
        .await?
        .expect(204);
        let got = app.get(&format!("/Groups/{gid}")).await?.expect(200);
        assert_eq!(got.body["displayName"], json!("Engineering"));
        assert_eq!(got.body["members"][0]["value"], json!(u3));
        assert_eq!(app.events().await?.len(), 2);

        // Deleting the group removes its last member: one more event.
        app.delete(&format!("/Groups/{gid}")).await?.expect(204);
        app.get(&format!("/Groups/{gid}"))
            .await?
            .expect_error(404, None);
        let events = app.event_kinds().await?;
        assert_eq!(events.len(), 3);
        assert_eq!(events[2], (EventKind::RemovedFromGroup, u3.clone()));

        app.stop().await
    }
);
