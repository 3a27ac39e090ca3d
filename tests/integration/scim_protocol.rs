//! The SCIM protocol rules that no IdP replay covers on its own: authentication, tenant
//! isolation on every route, discovery served from `schemas/`, errors as RFC 7644 §3.12
//! bodies (never a 500 for bad input), ETags, paging, projection and request ids.

use deprov_store::{Store, db_test};
use reqwest::Method;
use serde_json::{Value, json};

use crate::scim_harness::{App, ENTERPRISE, GROUP_URN, USER_URN, patch_ops, q};

fn user(name: &str) -> Value {
    json!({"schemas": [USER_URN], "userName": name, "active": true, "emails": [{"value": name, "type": "work"}]})
}

fn schemas_file(name: &str) -> anyhow::Result<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../schemas")
        .join(name);
    Ok(serde_json::from_str(&std::fs::read_to_string(path)?)?)
}

fn without_meta(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("meta");
    }
    v
}

db_test!(
    scim_auth_bearer_basic_and_challenges,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let url = format!("{}/Users", app.base);
        let none = app
            .call_with(Method::GET, &url, None, &[])
            .await?
            .expect_error(401, None);
        let challenges: Vec<String> = none
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect();
        assert!(
            challenges
                .iter()
                .any(|c| c.starts_with("Bearer realm=\"deprov\"")),
            "{challenges:?}"
        );
        assert!(
            challenges.iter().any(|c| c.starts_with("Basic")),
            "{challenges:?}"
        );
        app.call_with(
            Method::GET,
            &url,
            None,
            &[("authorization", "Bearer deprov_scim_nope")],
        )
        .await?
        .expect_error(401, None);
        app.call_with(Method::GET, &url, None, &[("authorization", "Bearer")])
            .await?
            .expect_error(401, None);
        use base64::Engine as _;
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("okta:{}", app.token));
        app.call_with(
            Method::GET,
            &url,
            None,
            &[("authorization", &format!("Basic {basic}"))],
        )
        .await?
        .expect(200);
        let wrong = base64::engine::general_purpose::STANDARD.encode("okta:wrong");
        app.call_with(
            Method::GET,
            &url,
            None,
            &[("authorization", &format!("Basic {wrong}"))],
        )
        .await?
        .expect_error(401, None);
        // An unknown tenant looks exactly like a wrong token.
        let ghost = format!("{}/scim/v2/ghost/Users", app.root);
        app.call_with(
            Method::GET,
            &ghost,
            None,
            &[("authorization", &format!("Bearer {}", app.token))],
        )
        .await?
        .expect_error(401, None);
        app.stop().await
    }
);

db_test!(
    scim_tenant_isolation_on_every_route,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let uid = app
            .post("/Users", &user("alice@acme.test"))
            .await?
            .expect(201)
            .id();
        let gid = app.post("/Groups", &json!({"schemas": [GROUP_URN], "displayName": "Acme", "members": [{"value": uid}]})).await?.expect(201).id();
        let (other_base, other_token) = app.other_tenant("globex").await?;
        let auth = format!("Bearer {other_token}");
        let h = [("authorization", auth.as_str())];
        let put_user = user("alice@acme.test");
        let put_group = json!({"schemas": [GROUP_URN], "displayName": "Mine"});
        let deactivate = patch_ops(json!([{"op": "replace", "path": "active", "value": false}]));
        let remove_all = patch_ops(json!([{"op": "remove", "path": "members"}]));
        // The other tenant's token on the other tenant's base: acme's resources do not exist.
        for (method, path, body) in [
            (Method::GET, format!("/Users/{uid}"), None),
            (Method::PUT, format!("/Users/{uid}"), Some(&put_user)),
            (Method::PATCH, format!("/Users/{uid}"), Some(&deactivate)),
            (Method::DELETE, format!("/Users/{uid}"), None),
            (Method::GET, format!("/Groups/{gid}"), None),
            (Method::PUT, format!("/Groups/{gid}"), Some(&put_group)),
            (Method::PATCH, format!("/Groups/{gid}"), Some(&remove_all)),
            (Method::DELETE, format!("/Groups/{gid}"), None),
        ] {
            app.call_with(method.clone(), &format!("{other_base}{path}"), body, &h)
                .await?
                .expect_error(404, None);
        }
        for path in [
            "/Users".to_owned(),
            format!("/Users?filter={}", q("userName eq \"alice@acme.test\"")),
            format!("/Users?filter={}", q(&format!("id eq \"{uid}\""))),
            "/Groups".to_owned(),
            format!("/Groups?filter={}", q("displayName eq \"Acme\"")),
        ] {
            let ans = app
                .call_with(Method::GET, &format!("{other_base}{path}"), None, &h)
                .await?
                .expect(200);
            assert_eq!(ans.body["totalResults"], json!(0), "{path}");
        }
        for path in ["/.search", "/Users/.search", "/Groups/.search"] {
            let ans = app.call_with(Method::POST, &format!("{other_base}{path}"), Some(&json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]})), &h).await?.expect(200);
            assert_eq!(ans.body["totalResults"], json!(0), "{path}");
        }
        // A group of the other tenant cannot take acme's user as a member.
        let ans = app
        .call_with(Method::POST, &format!("{other_base}/Groups"), Some(&json!({"schemas": [GROUP_URN], "displayName": "Steal", "members": [{"value": uid}]})), &h)
        .await?;
        assert_eq!(ans.status, 400, "{}", ans.text);
        // The other tenant's token on acme's base: 401, for every route.
        for path in [
            "/Users",
            "/Groups",
            "/ServiceProviderConfig",
            "/Schemas",
            "/ResourceTypes",
            &format!("/Users/{uid}"),
        ] {
            app.call_with(Method::GET, &format!("{}{path}", app.base), None, &h)
                .await?
                .expect_error(401, None);
        }
        // Acme is untouched and nothing was recorded.
        let got = app.get(&format!("/Users/{uid}")).await?.expect(200);
        assert_eq!(got.body["active"], json!(true));
        assert!(app.events().await?.is_empty());
        let g = app.get(&format!("/Groups/{gid}")).await?.expect(200);
        assert_eq!(g.body["members"][0]["value"], json!(uid));
        app.stop().await
    }
);

db_test!(
    scim_discovery_serves_the_schema_files,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let spc = app.get("/ServiceProviderConfig").await?.expect(200);
        assert_eq!(spc.body["patch"]["supported"], json!(true));
        assert_eq!(spc.body["bulk"]["supported"], json!(false));
        assert_eq!(spc.body["filter"]["supported"], json!(true));
        assert_eq!(spc.body["filter"]["maxResults"], json!(1000));
        assert_eq!(spc.body["changePassword"]["supported"], json!(false));
        assert_eq!(spc.body["sort"]["supported"], json!(true));
        assert_eq!(spc.body["etag"]["supported"], json!(true));
        assert_eq!(
            spc.body["meta"]["location"],
            json!(format!("{}/ServiceProviderConfig", app.base))
        );
        // Apart from meta and the limits filled in at run time, exactly the file.
        let mut served = without_meta(spc.body.clone());
        served["filter"]["maxResults"] = json!(0);
        served["bulk"]["maxPayloadSize"] = json!(0);
        served["bulk"]["maxOperations"] = json!(0);
        assert_eq!(served, schemas_file("ServiceProviderConfig.json")?);

        let list = app.get("/Schemas").await?.expect(200);
        assert_eq!(list.body["totalResults"], json!(3));
        for (file, urn) in [
            ("User.json", USER_URN),
            ("Group.json", GROUP_URN),
            ("EnterpriseUser.json", ENTERPRISE),
        ] {
            let one = app.get(&format!("/Schemas/{urn}")).await?.expect(200);
            assert_eq!(
                one.body["meta"]["location"],
                json!(format!("{}/Schemas/{urn}", app.base))
            );
            assert_eq!(one.body["meta"]["resourceType"], json!("Schema"));
            assert_eq!(
                without_meta(one.body),
                schemas_file(file)?,
                "{file} drifted"
            );
            let in_list = list.body["Resources"]
                .as_array()
                .and_then(|a| a.iter().find(|d| d["id"] == json!(urn)))
                .cloned();
            assert_eq!(in_list.map(without_meta), Some(schemas_file(file)?));
        }
        let upper = app
            .get(&format!("/Schemas/{}", USER_URN.to_uppercase()))
            .await?
            .expect(200);
        assert_eq!(upper.body["id"], json!(USER_URN));
        let types = app.get("/ResourceTypes").await?.expect(200);
        assert_eq!(types.body["totalResults"], json!(2));
        let file = schemas_file("ResourceTypes.json")?;
        let served: Vec<Value> = types.body["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(without_meta)
            .collect();
        assert_eq!(Value::Array(served), file);
        let user_type = app.get("/ResourceTypes/User").await?.expect(200);
        assert_eq!(
            user_type.body["meta"]["location"],
            json!(format!("{}/ResourceTypes/User", app.base))
        );
        app.get("/ResourceTypes/Nope")
            .await?
            .expect_error(404, None);
        app.get("/Schemas/urn:nope").await?.expect_error(404, None);
        for path in [
            "/ServiceProviderConfig",
            "/Schemas",
            "/ResourceTypes",
            "/ResourceTypes/User",
            &format!("/Schemas/{USER_URN}"),
        ] {
            for method in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
                app.call(method.clone(), path, Some(&json!({})))
                    .await?
                    .expect_error(405, None);
            }
        }
        app.get("/Nope").await?.expect_error(404, None);
        app.get("/Users/x/y").await?.expect_error(404, None);
        app.call(Method::DELETE, "/Users", None)
            .await?
            .expect_error(405, None);
        app.stop().await
    }
);

db_test!(
    scim_errors_are_scim_bodies_never_500,
    |store: Store, _url| async move {
        let app = App::start_with(store, |c| c.scim.max_payload_bytes = 64 * 1024).await?;
        let id = app
            .post("/Users", &user("bob@x.test"))
            .await?
            .expect(201)
            .id();
        let url = |p: &str| format!("{}{p}", app.base);
        let bearer = format!("Bearer {}", app.token);
        let raw = |method: Method, path: String, body: &'static str, ct: &'static str| {
            let client = app.client.clone();
            let bearer = bearer.clone();
            async move {
                let res = client
                    .request(method, path)
                    .header("authorization", bearer)
                    .header("content-type", ct)
                    .body(body)
                    .send()
                    .await?;
                let status = res.status().as_u16();
                let ct = res
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let text = res.text().await?;
                anyhow::Ok((status, ct, text))
            }
        };
        for (body, ct) in [
            ("{", "application/scim+json"),
            ("", "application/json"),
            ("[1,2]", "application/json"),
            ("nul", "application/scim+json"),
        ] {
            let (status, ctype, text) = raw(Method::POST, url("/Users"), body, ct).await?;
            assert_eq!(status, 400, "{body}: {text}");
            assert_eq!(ctype.as_deref(), Some("application/scim+json"));
            assert!(text.contains("invalidSyntax"), "{text}");
        }
        let (status, _, text) = raw(
            Method::POST,
            url("/Users"),
            "{\"userName\":\"a\"}",
            "text/plain",
        )
        .await?;
        assert_eq!(status, 415, "{text}");
        let big = json!({"userName": "big", "nickName": "x".repeat(100 * 1024)});
        app.post("/Users", &big).await?.expect_error(413, None);
        app.get(&format!("/Users?filter={}", q("userName eq")))
            .await?
            .expect_error(400, Some("invalidFilter"));
        app.get(&format!("/Users?filter={}", q("nope eq \"x\"")))
            .await?
            .expect_error(400, Some("invalidFilter"));
        app.get("/Users?count=abc")
            .await?
            .expect_error(400, Some("invalidValue"));
        app.get("/Users?sortBy=nope")
            .await?
            .expect_error(400, Some("invalidValue"));
        app.post("/Users", &json!({"schemas": [USER_URN]}))
            .await?
            .expect_error(400, Some("invalidValue"));
        app.post("/Groups", &json!({"schemas": [GROUP_URN], "members": []}))
            .await?
            .expect_error(400, Some("invalidValue"));
        app.post(
            "/Groups",
            &json!({"displayName": "g", "members": [{"value": "not-a-user"}]}),
        )
        .await?
        .expect_error(400, Some("invalidValue"));
        // PATCH: unknown path is invalidPath and nothing is applied (atomic).
        app.patch(
        &format!("/Users/{id}"),
        &patch_ops(json!([{"op": "replace", "path": "active", "value": false}, {"op": "replace", "path": "nope", "value": 1}])),
    )
    .await?
    .expect_error(400, Some("invalidPath"));
        assert_eq!(
            app.get(&format!("/Users/{id}")).await?.expect(200).body["active"],
            json!(true)
        );
        assert!(app.events().await?.is_empty());
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "replace", "path": "id", "value": "x"}])),
        )
        .await?
        .expect_error(400, Some("mutability"));
        app.patch(
            &format!("/Users/{id}"),
            &patch_ops(json!([{"op": "replace", "path": "active", "value": "nah"}])),
        )
        .await?
        .expect_error(400, Some("invalidValue"));
        app.patch(&format!("/Users/{id}"), &json!({"Operations": 5}))
            .await?
            .expect_error(400, Some("invalidSyntax"));
        app.patch(
            "/Users/missing",
            &patch_ops(json!([{"op": "replace", "path": "active", "value": false}])),
        )
        .await?
        .expect_error(404, None);
        // A spray of odd inputs: every answer is a 4xx SCIM body or a success, never a 5xx.
        let filters = [
            "",
            " ",
            "(",
            ")",
            "[",
            "]",
            "\"",
            "userName eq \"\\u0000\"",
            "not not",
            "a[b[c eq 1]]",
            "emails[type eq \"work\"].",
            "meta.created gt 5",
            "userName eq \"x\" and (",
            "name.givenName.x eq \"y\"",
            "urn:x:y eq 1",
            "émails eq \"x\"",
            "active eq TRUE",
            "members[value eq \"x\"]",
            "userName sw \"%\"",
            "userName co \"_\"",
            "userName eq \"'; DROP TABLE users; --\"",
            "x509Certificates.value eq \"a\"",
        ];
        for f in filters {
            for ty in ["Users", "Groups"] {
                let ans = app.get(&format!("/{ty}?filter={}&sortBy=meta.created&sortOrder=descending&startIndex=-4&count=-1", q(f))).await?;
                assert!(ans.status < 500, "{f}: {}", ans.text);
                if ans.status >= 400 {
                    assert_eq!(
                        ans.body["schemas"][0],
                        json!(crate::scim_harness::ERROR_URN),
                        "{f}"
                    );
                }
            }
        }
        app.post("/Users", &json!({"userName": "nul\u{0}"}))
            .await?
            .expect_error(400, Some("invalidValue"));
        app.get("/Users/%00").await?.expect_error(404, None);
        app.delete("/Groups/%00").await?.expect_error(404, None);
        let bodies = [
            json!(null),
            json!(1),
            json!("s"),
            json!([]),
            json!({"Operations": []}),
            json!({"Operations": [null]}),
            json!({"Operations": [{"op": "add"}]}),
            json!({"Operations": [{"op": "add", "path": 1}]}),
            json!({"Operations": [{"op": "add", "path": "emails[", "value": 1}]}),
            json!({"Operations": [{"op": "add", "path": "emails", "value": {"value": {"nested": true}}}]}),
            json!({"Operations": [{"op": "replace", "value": {"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": 3}}]}),
            json!({"Operations": [{"op": "replace", "value": {"name": {"givenName": ["a"]}}}]}),
            json!({"Operations": [{"op": "remove", "path": "emails[value eq \"x\"].nope"}]}),
            json!({"Operations": [{"op": "replace", "path": "userName", "value": null}]}),
            json!({"Operations": [{"op": "remove", "path": "members[value eq \"\u{0}\"]"}]}),
            json!({"Operations": [{"op": "add", "path": "nickName", "value": "\u{0}"}]}),
            json!({"userName": "a", "members": [{"value": "\u{0}"}]}),
        ];
        for b in &bodies {
            for path in [
                format!("/Users/{id}"),
                "/Users".to_owned(),
                "/Groups".to_owned(),
            ] {
                let method = if path.ends_with(&id) {
                    Method::PATCH
                } else {
                    Method::POST
                };
                let ans = app.call(method, &path, Some(b)).await?;
                assert!(ans.status < 500, "{b} on {path}: {}", ans.text);
            }
        }
        app.stop().await
    }
);

db_test!(
    scim_etags_and_conditional_requests,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let created = app.post("/Users", &user("etag@x.test")).await?.expect(201);
        let id = created.id();
        let tag = created.header("etag").unwrap_or_default();
        assert!(tag.starts_with("W/\""), "{tag}");
        let path = format!("{}/Users/{id}", app.base);
        let bearer = format!("Bearer {}", app.token);
        let auth = ("authorization", bearer.as_str());
        let ans = app
            .call_with(Method::GET, &path, None, &[auth, ("if-none-match", &tag)])
            .await?;
        assert_eq!(ans.status, 304);
        app.call_with(
            Method::GET,
            &path,
            None,
            &[auth, ("if-none-match", "W/\"999\"")],
        )
        .await?
        .expect(200);
        let body = user("etag@x.test");
        app.call_with(
            Method::PUT,
            &path,
            Some(&body),
            &[auth, ("if-match", "W/\"999\"")],
        )
        .await?
        .expect_error(412, None);
        let put = app
            .call_with(Method::PUT, &path, Some(&body), &[auth, ("if-match", &tag)])
            .await?
            .expect(200);
        let tag2 = put.header("etag").unwrap_or_default();
        assert_ne!(tag, tag2);
        let deactivate = patch_ops(json!([{"op": "replace", "path": "active", "value": false}]));
        app.call_with(
            Method::PATCH,
            &path,
            Some(&deactivate),
            &[auth, ("if-match", &tag)],
        )
        .await?
        .expect_error(412, None);
        assert!(
            app.events().await?.is_empty(),
            "a refused PATCH writes no event"
        );
        app.call_with(
            Method::PATCH,
            &path,
            Some(&deactivate),
            &[auth, ("if-match", "*")],
        )
        .await?
        .expect(200);
        app.call_with(Method::DELETE, &path, None, &[auth, ("if-match", &tag)])
            .await?
            .expect_error(412, None);
        let current = app
            .get(&format!("/Users/{id}"))
            .await?
            .expect(200)
            .header("etag")
            .unwrap_or_default();
        app.call_with(Method::DELETE, &path, None, &[auth, ("if-match", &current)])
            .await?
            .expect(204);
        app.stop().await
    }
);

db_test!(
    scim_paging_sorting_projection_and_search,
    |store: Store, _url| async move {
        let app = App::start_with(store, |c| c.scim.max_results = 3).await?;
        for i in 0..7 {
            app.post("/Users", &user(&format!("user{i}@x.test")))
                .await?
                .expect(201);
        }
        // count above maxResults is capped, not refused; pages are stable and disjoint.
        let mut seen = Vec::new();
        let mut start = 1;
        loop {
            let page = app
                .get(&format!("/Users?startIndex={start}&count=100"))
                .await?
                .expect(200);
            assert_eq!(page.body["totalResults"], json!(7));
            assert_eq!(page.body["startIndex"], json!(start));
            let items = page.body["Resources"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            assert!(items.len() <= 3);
            assert_eq!(page.body["itemsPerPage"], json!(items.len()));
            if items.is_empty() {
                break;
            }
            seen.extend(
                items
                    .iter()
                    .map(|r| r["id"].as_str().unwrap_or_default().to_owned()),
            );
            start += items.len();
        }
        let mut unique = seen.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 7, "{seen:?}");
        let zero = app.get("/Users?count=0").await?.expect(200);
        assert_eq!(zero.body["totalResults"], json!(7));
        assert_eq!(zero.body["Resources"], json!([]));
        let sorted = app
            .get("/Users?sortBy=userName&sortOrder=descending&count=2")
            .await?
            .expect(200);
        assert_eq!(
            sorted.body["Resources"][0]["userName"],
            json!("user6@x.test")
        );
        assert_eq!(
            sorted.body["Resources"][1]["userName"],
            json!("user5@x.test")
        );
        // attributes: id and schemas always, nothing else unasked.
        let only = app
            .get(&format!(
                "/Users?attributes=userName&filter={}",
                q("userName eq \"user1@x.test\"")
            ))
            .await?
            .expect(200);
        let r = &only.body["Resources"][0];
        let mut keys: Vec<&str> = r
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort();
        assert_eq!(keys, ["id", "schemas", "userName"]);
        let without = app
            .get(&format!(
                "/Users?excludedAttributes=emails,meta&filter={}",
                q("userName eq \"user1@x.test\"")
            ))
            .await?
            .expect(200);
        assert!(without.body["Resources"][0].get("emails").is_none());
        assert!(without.body["Resources"][0].get("meta").is_none());
        assert!(without.body["Resources"][0].get("userName").is_some());
        // .search, per type and at the root.
        let search = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": "userName sw \"user\"", "startIndex": 1, "count": 2, "attributes": ["userName"]});
        let ans = app.post("/Users/.search", &search).await?.expect(200);
        assert_eq!(ans.body["totalResults"], json!(7));
        assert_eq!(ans.body["itemsPerPage"], json!(2));
        app.post(
            "/Groups",
            &json!({"schemas": [GROUP_URN], "displayName": "G"}),
        )
        .await?
        .expect(201);
        let root = app
            .post("/.search", &json!({"filter": "displayName pr"}))
            .await?
            .expect(200);
        assert_eq!(root.body["totalResults"], json!(1), "{}", root.text);
        let all = app
            .post("/.search", &json!({"startIndex": 7, "count": 3}))
            .await?
            .expect(200);
        assert_eq!(all.body["totalResults"], json!(8));
        let items = all.body["Resources"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(items.len(), 2, "{}", all.text);
        assert_eq!(items[1]["displayName"], json!("G"));
        app.stop().await
    }
);

db_test!(
    scim_request_ids_are_echoed_or_generated,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let url = format!("{}/Users", app.base);
        let bearer = format!("Bearer {}", app.token);
        let ans = app
            .call_with(
                Method::GET,
                &url,
                None,
                &[("authorization", &bearer), ("x-request-id", "abc-123")],
            )
            .await?
            .expect(200);
        assert_eq!(ans.header("x-request-id").as_deref(), Some("abc-123"));
        let long = "x".repeat(500);
        let ans = app
            .call_with(
                Method::GET,
                &url,
                None,
                &[("authorization", &bearer), ("x-request-id", &long)],
            )
            .await?
            .expect(200);
        let generated = ans.header("x-request-id").unwrap_or_default();
        assert_eq!(generated.len(), 36, "{generated}");
        let ans = app
            .call_with(Method::GET, &url, None, &[])
            .await?
            .expect_error(401, None);
        assert!(
            ans.header("x-request-id").is_some(),
            "errors carry the id too"
        );
        app.stop().await
    }
);

db_test!(
    scim_user_put_replaces_and_ignores_read_only,
    |store: Store, _url| async move {
        let app = App::start(store).await?;
        let created = app.post("/Users", &json!({"schemas": [USER_URN], "userName": "p@x.test", "title": "T", "nickName": "N", "active": false})).await?.expect(201);
        let id = created.id();
        // readOnly id/meta/groups in a PUT are ignored; omitted attributes are cleared; an
        // omitted `active` keeps its value.
        let put = app
        .put(
            &format!("/Users/{id}"),
            &json!({"schemas": [USER_URN], "id": "other", "meta": {"version": "W/\"9\""}, "groups": [{"value": "g"}], "userName": "P@x.test", "title": "T2"}),
        )
        .await?
        .expect(200);
        assert_eq!(put.body["id"], json!(id));
        assert_eq!(put.body["userName"], json!("P@x.test"));
        assert_eq!(put.body["title"], json!("T2"));
        assert!(put.body.get("nickName").is_none());
        assert!(put.body.get("groups").is_none());
        assert_eq!(put.body["active"], json!(false));
        assert!(
            app.events().await?.is_empty(),
            "a user created inactive was never active"
        );
        app.stop().await
    }
);
