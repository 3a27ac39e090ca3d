//! The admin API (`/admin/v1`) against the real app: authentication (configured, generated
//! and stored admin tokens; SCIM tokens refused), every route's happy path and its bad
//! inputs as RFC 9457 problems, re-driving a dead letter, tenant isolation, audit records,
//! and the OpenAPI document: served as generated, and listing exactly the routes there are.

use std::collections::BTreeSet;

use deprov_server::admin::views::EventTrailView;
use deprov_server::admin::{BASE_PATH, ROUTES};
use deprov_store::outbox::{AttemptRecord, Settle};
use deprov_store::{Store, db_test, now_millis};
use reqwest::Method;
use serde_json::{Value, json};

use crate::scim_harness::{Answer, App, USER_URN, patch_ops};

/// The configured admin token of these tests (at least 32 characters).
const CONFIGURED: &str = "configured-admin-token-0123456789abcdef";

/// The app with tenant `acme`, a configured admin token, and http targets allowed.
async fn start(store: Store) -> anyhow::Result<App> {
    App::start_with(store, |c| {
        c.admin_token = Some(deprov_core::Secret::new(CONFIGURED));
        c.allow_insecure_targets = true;
    })
    .await
}

/// A request to `/admin/v1{path}` with `token` (none when `None`).
async fn call(
    app: &App,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<Answer> {
    let mut req = app
        .client
        .request(method, format!("{}{BASE_PATH}{path}", app.root));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok(Answer {
        status,
        headers,
        body,
        text,
    })
}

async fn get(app: &App, path: &str) -> anyhow::Result<Answer> {
    call(app, Some(CONFIGURED), Method::GET, path, None).await
}

async fn post(app: &App, path: &str, body: &Value) -> anyhow::Result<Answer> {
    call(app, Some(CONFIGURED), Method::POST, path, Some(body)).await
}

/// Asserts an RFC 9457 problem with this status; returns its `field`.
#[track_caller]
fn problem(answer: &Answer, status: u16) -> Option<String> {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(
        answer.header("content-type").as_deref(),
        Some("application/problem+json"),
        "{}",
        answer.text
    );
    assert_eq!(answer.body["status"], json!(status), "{}", answer.text);
    assert_eq!(answer.body["type"], "about:blank", "{}", answer.text);
    assert!(answer.body["title"].is_string(), "{}", answer.text);
    assert!(answer.body["detail"].is_string(), "{}", answer.text);
    answer.body["field"].as_str().map(str::to_owned)
}

/// Registers relying party `client_id` for `tenant` over the API.
async fn add_rp(app: &App, tenant: &str, client_id: &str) -> anyhow::Result<Value> {
    let ans = post(
        app,
        &format!("/tenants/{tenant}/relying-parties"),
        &json!({
            "client_id": client_id,
            "backchannel_logout_uri": "http://127.0.0.1:9/bcl",
            "subject": "userName",
            "alg": "ES256",
        }),
    )
    .await?
    .expect(201);
    Ok(ans.body)
}

/// Provisions `user` over SCIM with `token` at `base` and deactivates them: one event, one
/// delivery per relying party of the tenant. Returns the user's id.
pub(crate) async fn deactivate(
    app: &App,
    base: &str,
    token: &str,
    user: &str,
) -> anyhow::Result<String> {
    let auth = format!("Bearer {token}");
    let created = app
        .call_with(
            Method::POST,
            &format!("{base}/Users"),
            Some(&json!({"schemas": [USER_URN], "userName": user, "active": true})),
            &[("authorization", &auth)],
        )
        .await?
        .expect(201);
    let id = created.id();
    app.call_with(
        Method::PATCH,
        &format!("{base}/Users/{id}"),
        Some(&patch_ops(
            json!([{"op": "replace", "path": "active", "value": false}]),
        )),
        &[("authorization", &auth)],
    )
    .await?
    .expect(200);
    Ok(id)
}

/// Makes every due delivery a dead letter, as a worker does on a 400.
pub(crate) async fn bury_all(store: &Store) -> anyhow::Result<Vec<String>> {
    let claimed = store
        .claim_due("test-worker", 60_000, 100, 100, &Default::default())
        .await?;
    let mut ids = Vec::new();
    for c in claimed {
        store
            .settle(
                &c.delivery.id,
                "test-worker",
                AttemptRecord {
                    started_at: now_millis(),
                    latency_ms: 3,
                    http_status: Some(400),
                    error: Some("HTTP 400: nope".into()),
                    response_excerpt: Some("nope".into()),
                },
                Settle::Dead,
                Some("HTTP 400: nope".into()),
            )
            .await?;
        ids.push(c.delivery.id);
    }
    Ok(ids)
}

/// The audit records written, newest first, as `(actor, action)`.
async fn audit(app: &App) -> anyhow::Result<Vec<(String, String)>> {
    let ans = get(app, "/audit?limit=1000").await?.expect(200);
    Ok(ans.body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["action"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect())
}

db_test!(
    requests_without_a_valid_admin_token_get_401_problems,
    |store: Store, _url| async move {
        let app = start(store).await?;
        let revoked = post(&app, "/admin-tokens", &json!({})).await?.expect(201);
        post(
            &app,
            &format!(
                "/admin-tokens/{}/revoke",
                revoked.body["id"].as_str().unwrap_or("")
            ),
            &json!({}),
        )
        .await?
        .expect(200);
        let revoked = revoked.body["admin_token"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let cases: Vec<(&str, Option<&str>)> = vec![
            ("no token", None),
            (
                "wrong token",
                Some("deprov_admin_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
            ),
            ("a SCIM token", Some(app.token.as_str())),
            ("a revoked admin token", Some(revoked.as_str())),
            ("the configured token's prefix", Some(&CONFIGURED[..31])),
        ];
        for (what, token) in cases {
            for (method, path) in [(Method::GET, "/tenants"), (Method::POST, "/keys/rotate")] {
                let ans = call(
                    &app,
                    token,
                    method.clone(),
                    path,
                    Some(&json!({"alg": "x"})),
                )
                .await?;
                assert_eq!(ans.status, 401, "{what}: {method} {path}: {}", ans.text);
                problem(&ans, 401);
                let challenge = ans.header("www-authenticate").unwrap_or_default();
                assert!(
                    challenge.starts_with("Bearer realm=\"deprov-admin\""),
                    "{what}: {challenge}"
                );
            }
        }
        // A Basic header is no bearer token either.
        let basic = app
            .client
            .get(format!("{}{BASE_PATH}/tenants", app.root))
            .header("authorization", format!("Basic {CONFIGURED}"))
            .send()
            .await?;
        assert_eq!(basic.status().as_u16(), 401);
        // And an admin token is not a SCIM token.
        let scim = app
            .call_with(
                Method::GET,
                &format!("{}/Users", app.base),
                None,
                &[("authorization", &format!("Bearer {CONFIGURED}"))],
            )
            .await?;
        assert_eq!(scim.status, 401, "{}", scim.text);
        let stored = post(&app, "/admin-tokens", &json!({})).await?.expect(201);
        let stored = stored.body["admin_token"].as_str().unwrap_or("").to_owned();
        let scim = app
            .call_with(
                Method::GET,
                &format!("{}/Users", app.base),
                None,
                &[("authorization", &format!("Bearer {stored}"))],
            )
            .await?;
        assert_eq!(scim.status, 401, "{}", scim.text);
        app.stop().await
    }
);

db_test!(
    configured_generated_and_issued_admin_tokens_work,
    |store: Store, _url| async move {
        let app = start(store.clone()).await?;
        get(&app, "/tenants").await?.expect(200);
        // First start without DEPROV_ADMIN_TOKEN: one token is generated, once.
        let generated = store
            .ensure_first_admin_token()
            .await?
            .ok_or_else(|| anyhow::anyhow!("no admin token generated"))?;
        assert!(store.ensure_first_admin_token().await?.is_none());
        let generated = generated.token.expose().to_owned();
        assert!(generated.starts_with("deprov_admin_"));
        call(&app, Some(&generated), Method::GET, "/tenants", None)
            .await?
            .expect(200);
        // A token issued over the API works at once, is listed by hint only, and stops
        // working when revoked.
        let issued = call(
            &app,
            Some(&generated),
            Method::POST,
            "/admin-tokens",
            Some(&json!({"label": "ci"})),
        )
        .await?
        .expect(201);
        let token = issued.body["admin_token"].as_str().unwrap_or("").to_owned();
        let id = issued.body["id"].as_str().unwrap_or("").to_owned();
        call(&app, Some(&token), Method::GET, "/keys", None)
            .await?
            .expect(200);
        let list = get(&app, "/admin-tokens").await?.expect(200);
        assert_eq!(list.body.as_array().map(Vec::len), Some(2), "{}", list.text);
        assert!(!list.text.contains(&token) && !list.text.contains(&generated));
        assert!(!list.text.contains("hash"), "{}", list.text);
        let revoked = call(
            &app,
            Some(&token),
            Method::POST,
            &format!("/admin-tokens/{id}/revoke"),
            None,
        )
        .await?
        .expect(200);
        assert!(revoked.body["revoked_at"].is_i64());
        problem(
            &call(&app, Some(&token), Method::GET, "/keys", None).await?,
            401,
        );
        problem(
            &post(&app, "/admin-tokens/nope/revoke", &json!({})).await?,
            404,
        );
        // Who did what: the configured token and each stored one by its hint.
        let actions = audit(&app).await?;
        let hint = |t: &str| format!("admin:{}…", &t[.."deprov_admin_".len() + 4]);
        assert!(
            actions.contains(&(hint(&generated), "admin_token.issue".into())),
            "{actions:?}"
        );
        assert!(
            actions.contains(&(hint(&token), "admin_token.revoke".into())),
            "{actions:?}"
        );
        assert!(
            actions.contains(&("system".into(), "admin_token.issue".into())),
            "{actions:?}"
        );
        app.stop().await
    }
);

db_test!(
    tenants_and_their_scim_tokens_round_trip,
    |store: Store, _url| async move {
        let app = start(store).await?;
        let created = post(&app, "/tenants", &json!({"name": "globex"}))
            .await?
            .expect(201);
        let scim_token = created.body["scim_token"].as_str().unwrap_or("").to_owned();
        assert!(scim_token.starts_with("deprov_scim_"), "{}", created.text);
        let base = created.body["scim_base_url"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        assert_eq!(base, format!("{}/scim/v2/globex", app.root));
        let users = |token: String| {
            let (app, base) = (&app, base.clone());
            async move {
                app.call_with(
                    Method::GET,
                    &format!("{base}/Users"),
                    None,
                    &[("authorization", &format!("Bearer {token}"))],
                )
                .await
            }
        };
        users(scim_token.clone()).await?.expect(200);

        let list = get(&app, "/tenants").await?.expect(200);
        let names: Vec<&str> = list
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|t| t["tenant"].as_str())
            .collect();
        assert_eq!(names, vec!["acme", "globex"]);
        let shown = get(&app, "/tenants/globex").await?.expect(200);
        assert_eq!(shown.body["tenant_id"], created.body["tenant_id"]);
        problem(&get(&app, "/tenants/nosuch").await?, 404);

        // Bad input names the field; a duplicate is a conflict.
        assert_eq!(
            problem(
                &post(&app, "/tenants", &json!({"name": "Bad_Name"})).await?,
                400
            )
            .as_deref(),
            Some("name")
        );
        assert_eq!(
            problem(&post(&app, "/tenants", &json!({})).await?, 400).as_deref(),
            Some("name")
        );
        assert_eq!(
            problem(&post(&app, "/tenants", &json!({"name": 7})).await?, 400).as_deref(),
            Some("name")
        );
        assert_eq!(
            problem(
                &post(&app, "/tenants", &json!({"name": "x", "color": "red"})).await?,
                400
            )
            .as_deref(),
            Some("color")
        );
        problem(
            &post(&app, "/tenants", &json!({"name": "globex"})).await?,
            409,
        );
        problem(
            &call(&app, Some(CONFIGURED), Method::POST, "/tenants", None).await?,
            400,
        );

        // Rotation: issue another (an empty body is allowed), list, revoke the first.
        let issued = call(
            &app,
            Some(CONFIGURED),
            Method::POST,
            "/tenants/globex/tokens",
            None,
        )
        .await?
        .expect(201);
        let second = issued.body["scim_token"].as_str().unwrap_or("").to_owned();
        users(second.clone()).await?.expect(200);
        post(
            &app,
            "/tenants/globex/tokens",
            &json!({"label": "okta-prod"}),
        )
        .await?
        .expect(201);
        problem(
            &post(&app, "/tenants/globex/tokens", &json!({"label": 1})).await?,
            400,
        );
        problem(
            &post(&app, "/tenants/nosuch/tokens", &json!({})).await?,
            404,
        );
        let tokens = get(&app, "/tenants/globex/tokens").await?.expect(200);
        let rows = tokens.body.as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len(), 3, "{}", tokens.text);
        assert!(!tokens.text.contains(&scim_token) && !tokens.text.contains(&second));
        assert!(rows.iter().all(|r| {
            r["hint"]
                .as_str()
                .is_some_and(|h| h.starts_with("deprov_scim_"))
        }));
        assert_eq!(rows[2]["label"], "okta-prod");
        let first_id = created.body["scim_token_id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        post(
            &app,
            &format!("/tenants/globex/tokens/{first_id}/revoke"),
            &json!({}),
        )
        .await?
        .expect(200);
        assert_eq!(users(scim_token).await?.status, 401);
        users(second).await?.expect(200);
        // A token of globex is not acme's to revoke.
        problem(
            &post(
                &app,
                &format!("/tenants/acme/tokens/{first_id}/revoke"),
                &json!({}),
            )
            .await?,
            404,
        );

        let actions = audit(&app).await?;
        for action in ["tenant.create", "scim_token.issue", "scim_token.revoke"] {
            assert!(
                actions.contains(&("admin:DEPROV_ADMIN_TOKEN".into(), action.into())),
                "{action}: {actions:?}"
            );
        }
        app.stop().await
    }
);

db_test!(
    relying_parties_are_validated_like_the_cli_and_stay_in_their_tenant,
    |store: Store, _url| async move {
        let app = start(store).await?;
        post(&app, "/tenants", &json!({"name": "globex"}))
            .await?
            .expect(201);
        let rp = add_rp(&app, "acme", "wiki").await?;
        let id = rp["id"].as_str().unwrap_or("").to_owned();
        assert_eq!(rp["client_id"], "wiki");
        assert_eq!(rp["tenant"], "acme");
        assert_eq!(rp["subject"], "userName");
        assert_eq!(rp["alg"], "ES256");
        assert_eq!(rp["enabled"], true);
        assert_eq!(rp["groups"], json!([]));
        let defaults = post(
            &app,
            "/tenants/acme/relying-parties",
            &json!({"client_id": "crm", "backchannel_logout_uri": "https://crm.example.com/bcl", "groups": ["Sales"]}),
        )
        .await?
        .expect(201);
        assert_eq!(defaults.body["subject"], "externalId|id");
        assert_eq!(defaults.body["alg"], "RS256");
        assert_eq!(defaults.body["groups"], json!(["Sales"]));

        let good = json!({"client_id": "x", "backchannel_logout_uri": "https://x.example.com/bcl"});
        let with = |k: &str, v: Value| {
            let mut b = good.clone();
            b[k] = v;
            b
        };
        let cases = [
            (
                with("backchannel_logout_uri", json!("http://169.254.169.254/")),
                "backchannel_logout_uri",
            ),
            (
                with(
                    "backchannel_logout_uri",
                    json!("https://x.example.com/#frag"),
                ),
                "backchannel_logout_uri",
            ),
            (
                with("backchannel_logout_uri", json!("not a url")),
                "backchannel_logout_uri",
            ),
            (with("subject", json!("no such attribute!")), "subject"),
            (with("alg", json!("HS256")), "alg"),
            (with("client_id", json!("  ")), "client_id"),
            (with("issuer", json!("relative/path")), "issuer"),
            (with("groups", json!(["ok", ""])), "groups[1]"),
            (with("enabled", json!("yes")), "enabled"),
            (with("require_sid", json!(1)), "require_sid"),
            (with("color", json!("red")), "color"),
            (
                json!({"backchannel_logout_uri": "https://x.example.com/bcl"}),
                "client_id",
            ),
        ];
        for (body, field) in cases {
            let ans = post(&app, "/tenants/acme/relying-parties", &body).await?;
            assert_eq!(
                problem(&ans, 400).as_deref(),
                Some(field),
                "{body}: {}",
                ans.text
            );
        }
        post(&app, "/tenants/acme/relying-parties", &good)
            .await?
            .expect(201);
        problem(
            &post(
                &app,
                "/tenants/acme/relying-parties",
                &with("client_id", json!("wiki")),
            )
            .await?,
            409,
        );
        problem(
            &post(&app, "/tenants/acme/relying-parties", &good).await?,
            409,
        );
        problem(
            &post(&app, "/tenants/nosuch/relying-parties", &good).await?,
            404,
        );

        // Show by id and by client_id; another tenant's path does not reach it.
        let by_id = get(&app, &format!("/tenants/acme/relying-parties/{id}"))
            .await?
            .expect(200);
        assert_eq!(by_id.body, rp);
        get(&app, "/tenants/acme/relying-parties/wiki")
            .await?
            .expect(200);
        problem(
            &get(&app, &format!("/tenants/globex/relying-parties/{id}")).await?,
            404,
        );
        problem(
            &get(&app, "/tenants/globex/relying-parties/wiki").await?,
            404,
        );
        let globex = get(&app, "/tenants/globex/relying-parties")
            .await?
            .expect(200);
        assert_eq!(globex.body, json!([]));
        let acme = get(&app, "/tenants/acme/relying-parties")
            .await?
            .expect(200);
        assert_eq!(acme.body.as_array().map(Vec::len), Some(3));

        // Disable and enable.
        let patch = |body: Value, path: String| {
            let app = &app;
            async move { call(app, Some(CONFIGURED), Method::PATCH, &path, Some(&body)).await }
        };
        let off = patch(
            json!({"enabled": false}),
            format!("/tenants/acme/relying-parties/{id}"),
        )
        .await?
        .expect(200);
        assert_eq!(off.body["enabled"], false);
        assert_eq!(
            get(&app, "/tenants/acme/relying-parties/wiki").await?.body["enabled"],
            false
        );
        patch(
            json!({"enabled": true}),
            "/tenants/acme/relying-parties/wiki".into(),
        )
        .await?
        .expect(200);
        assert_eq!(
            problem(
                &patch(
                    json!({"enabled": "no"}),
                    "/tenants/acme/relying-parties/wiki".into()
                )
                .await?,
                400
            )
            .as_deref(),
            Some("enabled")
        );
        assert_eq!(
            problem(
                &patch(
                    json!({"client_id": "y"}),
                    "/tenants/acme/relying-parties/wiki".into()
                )
                .await?,
                400
            )
            .as_deref(),
            Some("client_id")
        );
        problem(
            &patch(
                json!({"enabled": false}),
                format!("/tenants/globex/relying-parties/{id}"),
            )
            .await?,
            404,
        );

        // Remove: gone from its tenant; another tenant cannot remove it.
        problem(
            &call(
                &app,
                Some(CONFIGURED),
                Method::DELETE,
                &format!("/tenants/globex/relying-parties/{id}"),
                None,
            )
            .await?,
            404,
        );
        call(
            &app,
            Some(CONFIGURED),
            Method::DELETE,
            &format!("/tenants/acme/relying-parties/{id}"),
            None,
        )
        .await?
        .expect(200);
        problem(
            &get(&app, &format!("/tenants/acme/relying-parties/{id}")).await?,
            404,
        );

        let actions = audit(&app).await?;
        for action in [
            "target.add",
            "target.disable",
            "target.enable",
            "target.remove",
        ] {
            assert!(
                actions.contains(&("admin:DEPROV_ADMIN_TOKEN".into(), action.into())),
                "{action}: {actions:?}"
            );
        }
        app.stop().await
    }
);

db_test!(
    events_and_deliveries_filter_page_and_stay_in_their_tenant,
    |store: Store, _url| async move {
        let app = start(store.clone()).await?;
        let globex = post(&app, "/tenants", &json!({"name": "globex"}))
            .await?
            .expect(201);
        let globex_token = globex.body["scim_token"].as_str().unwrap_or("").to_owned();
        let globex_base = globex.body["scim_base_url"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        add_rp(&app, "acme", "wiki").await?;
        add_rp(&app, "globex", "crm").await?;
        for user in ["ada", "bob", "cy"] {
            deactivate(&app, &app.base, &app.token, user).await?;
        }
        deactivate(&app, &globex_base, &globex_token, "dee").await?;

        let all = get(&app, "/events").await?.expect(200);
        assert_eq!(all.body["total"], 4, "{}", all.text);
        let acme = get(&app, "/events?tenant=acme").await?.expect(200);
        assert_eq!(acme.body["total"], 3);
        let items = acme.body["items"].as_array().cloned().unwrap_or_default();
        assert!(
            items.iter().all(|e| e["tenant_id"] == json!(app.tenant_id)),
            "{}",
            acme.text
        );
        assert!(
            items
                .iter()
                .all(|e| e["deliveries"] == 1 && e["kind"] == "deactivated")
        );
        let only_globex = get(&app, "/events?tenant=globex").await?.expect(200);
        assert_eq!(only_globex.body["items"][0]["user_name"], "dee");
        // Pages: newest first, no overlap.
        let p1 = get(&app, "/events?tenant=acme&limit=2").await?.expect(200);
        let p2 = get(&app, "/events?tenant=acme&limit=2&offset=2")
            .await?
            .expect(200);
        let names = |a: &Answer| -> Vec<String> {
            a.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["user_name"].as_str().map(str::to_owned))
                .collect()
        };
        assert_eq!(names(&p1), vec!["cy", "bob"]);
        assert_eq!(names(&p2), vec!["ada"]);
        assert_eq!(p2.body["total"], 3);

        // The trail is the CLI's document.
        let event_id = p2.body["items"][0]["id"].as_str().unwrap_or("").to_owned();
        let trail = get(&app, &format!("/events/{event_id}")).await?.expect(200);
        let stored = store
            .event_trail(&event_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trail"))?;
        assert_eq!(
            trail.body,
            serde_json::to_value(EventTrailView::from(&stored))?
        );
        assert_eq!(trail.body["user"]["userName"], "ada");
        assert_eq!(trail.body["scim_request"]["method"], "PATCH");
        assert_eq!(trail.body["deliveries"][0]["client_id"], "wiki");
        assert_eq!(trail.body["deliveries"][0]["status"], "pending");
        problem(&get(&app, "/events/nosuch").await?, 404);

        let pending = get(&app, "/deliveries?status=pending&tenant=acme")
            .await?
            .expect(200);
        assert_eq!(pending.body["total"], 3, "{}", pending.text);
        assert!(
            pending.body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .all(|d| d["tenant_id"] == json!(app.tenant_id) && d["status"] == "pending")
        );
        let page = get(&app, "/deliveries?limit=1&offset=1").await?.expect(200);
        assert_eq!(page.body["total"], 4);
        assert_eq!(page.body["items"].as_array().map(Vec::len), Some(1));
        let none = get(&app, "/deliveries?status=dead").await?.expect(200);
        assert_eq!(none.body, json!({"total": 0, "items": []}));
        let one = page.body["items"][0]["id"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        get(&app, &format!("/deliveries/{one}")).await?.expect(200);
        problem(&get(&app, "/deliveries/nosuch").await?, 404);

        // Bad query parameters name themselves; an unknown tenant is not found.
        for (path, field) in [
            ("/deliveries?status=lost", "status"),
            ("/deliveries?limit=0", "limit"),
            ("/deliveries?limit=1001", "limit"),
            ("/deliveries?limit=ten", "limit"),
            ("/events?offset=-1", "offset"),
            ("/events?tenat=acme", "tenat"),
            ("/audit?limit=x", "limit"),
        ] {
            let ans = get(&app, path).await?;
            assert_eq!(
                problem(&ans, 400).as_deref(),
                Some(field),
                "{path}: {}",
                ans.text
            );
        }
        problem(&get(&app, "/events?tenant=nosuch").await?, 404);
        problem(&get(&app, "/deliveries?tenant=nosuch").await?, 404);
        app.stop().await
    }
);

db_test!(
    a_dead_letter_is_redriven_and_a_waiting_delivery_cancelled_through_the_api,
    |store: Store, _url| async move {
        let app = start(store.clone()).await?;
        let globex = post(&app, "/tenants", &json!({"name": "globex"}))
            .await?
            .expect(201);
        add_rp(&app, "acme", "wiki").await?;
        add_rp(&app, "globex", "crm").await?;
        deactivate(&app, &app.base, &app.token, "ada").await?;
        deactivate(&app, &app.base, &app.token, "bob").await?;
        deactivate(
            &app,
            globex.body["scim_base_url"].as_str().unwrap_or(""),
            globex.body["scim_token"].as_str().unwrap_or(""),
            "cy",
        )
        .await?;
        let dead = bury_all(&store).await?;
        assert_eq!(dead.len(), 3);
        let listed = get(&app, "/deliveries?status=dead").await?.expect(200);
        assert_eq!(listed.body["total"], 3);
        assert_eq!(listed.body["items"][0]["last_error"], "HTTP 400: nope");

        // One by id.
        let ans = post(&app, &format!("/deliveries/{}/retry", dead[0]), &json!({}))
            .await?
            .expect(200);
        assert_eq!(ans.body["status"], "retrying", "{}", ans.text);
        assert!(ans.body["redriven_at"].is_i64());
        // It is due again: a worker claims it.
        let claimed = store
            .claim_due("w", 60_000, 10, 10, &Default::default())
            .await?;
        assert_eq!(
            claimed
                .iter()
                .map(|c| c.delivery.id.clone())
                .collect::<Vec<_>>(),
            vec![dead[0].clone()]
        );
        problem(
            &post(&app, &format!("/deliveries/{}/retry", dead[0]), &json!({})).await?,
            409,
        );
        problem(
            &post(&app, "/deliveries/nosuch/retry", &json!({})).await?,
            404,
        );

        // Every dead letter of one tenant, then of all.
        let acme = post(&app, "/deliveries/retry-dead?tenant=acme", &json!({}))
            .await?
            .expect(200);
        assert_eq!(acme.body, json!({"redriven": 1}));
        let rest = call(
            &app,
            Some(CONFIGURED),
            Method::POST,
            "/deliveries/retry-dead",
            None,
        )
        .await?
        .expect(200);
        assert_eq!(rest.body, json!({"redriven": 1}));
        problem(
            &post(&app, "/deliveries/retry-dead?tenant=nosuch", &json!({})).await?,
            404,
        );
        assert_eq!(
            problem(
                &post(&app, "/deliveries/retry-dead?tenat=acme", &json!({})).await?,
                400
            )
            .as_deref(),
            Some("tenat")
        );
        assert_eq!(store.queue_stats().await?.dead, 0);

        // Cancel a waiting one; a finished one cannot be.
        let ans = post(&app, &format!("/deliveries/{}/cancel", dead[1]), &json!({}))
            .await?
            .expect(200);
        assert_eq!(ans.body["status"], "cancelled");
        assert!(ans.body["completed_at"].is_i64());
        problem(
            &post(&app, &format!("/deliveries/{}/cancel", dead[1]), &json!({})).await?,
            409,
        );
        problem(
            &post(&app, "/deliveries/nosuch/cancel", &json!({})).await?,
            404,
        );
        assert!(
            store
                .claim_due("w2", 60_000, 10, 10, &Default::default())
                .await?
                .iter()
                .all(|c| c.delivery.id != dead[1])
        );

        let actions = audit(&app).await?;
        let redrives = actions.iter().filter(|a| a.1 == "delivery.redrive").count();
        assert_eq!(redrives, 3, "{actions:?}");
        assert!(actions.contains(&("admin:DEPROV_ADMIN_TOKEN".into(), "delivery.cancel".into())));
        app.stop().await
    }
);

db_test!(
    keys_are_listed_and_rotated,
    |store: Store, _url| async move {
        let app = start(store).await?;
        let keys = get(&app, "/keys").await?.expect(200);
        let rs256: Vec<&Value> = keys
            .body
            .as_array()
            .into_iter()
            .flatten()
            .filter(|k| k["alg"] == "RS256" && k["status"] == "active")
            .collect();
        assert_eq!(rs256.len(), 1, "{}", keys.text);
        assert!(rs256[0]["public_jwk"]["n"].is_string());
        assert!(!keys.text.contains("private"), "{}", keys.text);
        let old = rs256[0]["kid"].clone();
        let rotated = post(&app, "/keys/rotate", &json!({"alg": "ES256"}))
            .await?
            .expect(201);
        assert_eq!(rotated.body["new"]["alg"], "ES256");
        let rotated = post(&app, "/keys/rotate", &json!({"alg": "RS256"}))
            .await?
            .expect(201);
        assert_eq!(rotated.body["retired"][0]["kid"], old);
        assert_eq!(rotated.body["retired"][0]["status"], "retired");
        assert_eq!(
            problem(
                &post(&app, "/keys/rotate", &json!({"alg": "HS256"})).await?,
                400
            )
            .as_deref(),
            Some("alg")
        );
        assert_eq!(
            problem(&post(&app, "/keys/rotate", &json!({})).await?, 400).as_deref(),
            Some("alg")
        );
        problem(&post(&app, "/keys/rotate", &json!([1])).await?, 400);
        let actions = audit(&app).await?;
        assert_eq!(
            actions
                .iter()
                .filter(|a| a.0 == "admin:DEPROV_ADMIN_TOKEN" && a.1 == "signing_key.rotate")
                .count(),
            2
        );
        app.stop().await
    }
);

db_test!(
    bad_bodies_and_unknown_routes_are_problems_never_500s,
    |store: Store, _url| async move {
        let app = start(store).await?;
        for raw in [
            "{",
            "nul",
            "\"just a string\"",
            "[]",
            "{\"name\": \"a\"} trailing",
        ] {
            let ans = app
                .client
                .post(format!("{}{BASE_PATH}/tenants", app.root))
                .bearer_auth(CONFIGURED)
                .header("content-type", "application/json")
                .body(raw)
                .send()
                .await?;
            let status = ans.status().as_u16();
            let ct = ans
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            assert_eq!(status, 400, "{raw}");
            assert_eq!(ct.as_deref(), Some("application/problem+json"), "{raw}");
        }
        let huge = json!({"name": "x".repeat(100 * 1024)});
        problem(&post(&app, "/tenants", &huge).await?, 413);
        let nowhere = get(&app, "/nowhere").await?;
        problem(&nowhere, 404);
        assert!(
            nowhere.body["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("no route"))
        );
        // A path that exists, with a method it does not take.
        let wrong = call(&app, Some(CONFIGURED), Method::PUT, "/tenants/acme", None).await?;
        problem(&wrong, 405);
        assert_eq!(wrong.header("allow").as_deref(), Some("GET"));
        let wrong = call(&app, Some(CONFIGURED), Method::DELETE, "/tenants", None).await?;
        problem(&wrong, 405);
        assert_eq!(wrong.header("allow").as_deref(), Some("GET, POST"));
        // Anonymous callers learn nothing, not even which routes exist.
        problem(&call(&app, None, Method::GET, "/nowhere", None).await?, 401);
        app.stop().await
    }
);

/// `{name}` segments of an OpenAPI path.
fn path_params(path: &str) -> BTreeSet<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_owned)
        .collect()
}

db_test!(
    the_openapi_document_is_served_as_generated_and_lists_exactly_the_routes,
    |store: Store, _url| async move {
        let app = start(store).await?;
        // Served without authentication, identical to the generated document.
        let served = call(&app, None, Method::GET, "/openapi.json", None)
            .await?
            .expect(200);
        let generated = serde_json::to_value(deprov_server::admin::openapi())?;
        assert_eq!(served.body, generated);
        assert!(
            served.body["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
        assert_eq!(served.body["servers"][0]["url"], BASE_PATH);
        assert!(served.body["components"]["securitySchemes"]["admin_token"].is_object());

        // (method, path) in the document == the registered routes.
        let methods = [
            "get", "put", "post", "delete", "patch", "options", "head", "trace",
        ];
        let paths = served.body["paths"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut documented = BTreeSet::new();
        let mut operation_ids = BTreeSet::new();
        for (path, item) in &paths {
            for m in methods {
                if let Some(op) = item.get(m) {
                    documented.insert((m.to_owned(), path.clone()));
                    let id = op["operationId"].as_str().unwrap_or_default().to_owned();
                    assert!(
                        operation_ids.insert(id.clone()),
                        "{m} {path}: operationId {id:?} is not unique"
                    );
                    // Every path parameter is documented, and no other.
                    let declared: BTreeSet<String> = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|p| p["in"] == "path")
                        .filter_map(|p| p["name"].as_str().map(str::to_owned))
                        .collect();
                    assert_eq!(declared, path_params(path), "{m} {path}");
                    for status in ["200", "401"] {
                        let has = op["responses"].get(status).is_some()
                            || (status == "200" && op["responses"].get("201").is_some());
                        assert!(has, "{m} {path} documents no {status}");
                    }
                }
            }
        }
        let registered: BTreeSet<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| ((*m).to_owned(), (*p).to_owned()))
            .collect();
        let undocumented: Vec<_> = registered.difference(&documented).collect();
        let unregistered: Vec<_> = documented.difference(&registered).collect();
        assert!(
            undocumented.is_empty() && unregistered.is_empty(),
            "routes without their document: {undocumented:?}; documented routes that are not registered: {unregistered:?}"
        );

        // And each answers: not a routing miss with a token, 401 without one.
        for (method, path) in &registered {
            let concrete = path
                .replace("{tenant}", "acme")
                .replace("{token_id}", "t0")
                .replace("{rp}", "r0")
                .replace("{op}", "o0")
                .replace("{id}", "x0");
            let m = Method::from_bytes(method.to_uppercase().as_bytes())?;
            let body = json!({});
            let ans = call(&app, Some(CONFIGURED), m.clone(), &concrete, Some(&body)).await?;
            assert!(
                ans.status != 405 && ans.status < 500,
                "{method} {path}: {}",
                ans.text
            );
            let detail = ans.body["detail"].as_str().unwrap_or_default();
            assert!(
                !detail.starts_with("no route"),
                "{method} {path} is not routed: {detail}"
            );
            let anonymous = call(&app, None, m, &concrete, Some(&body)).await?;
            assert_eq!(
                anonymous.status, 401,
                "{method} {path} answers without a token"
            );
        }
        app.stop().await
    }
);
