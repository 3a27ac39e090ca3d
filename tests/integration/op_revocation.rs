//! RFC 7009 revocation of registered grants and Global Token Revocation, against a local
//! OP that checks the exact requests: the grants API's security (other tenants' clients,
//! unknown users, no token in clear anywhere, expiry), and the channel's outcomes (200,
//! 400 `unsupported_token_type`, 503 with `Retry-After`), grant by grant.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App as ActixApp, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use deprov_core::TenantName;
use deprov_core::scim::EventKind;
use deprov_core::token::TokenHash;
use deprov_revocation::channels::global_token_revocation::GlobalTokenRevocation;
use deprov_revocation::channels::oauth_revocation::OAuthRevocation;
use deprov_revocation::channels::op_metadata::MetadataCache;
use deprov_revocation::keys::{KeyEncryptionKey, seal_grant};
use deprov_revocation::outbound::AddressPolicy;
use deprov_revocation::outbound::http::OutboundClient;
use deprov_revocation::worker::{RetryPolicy, Worker, WorkerConfig};
use deprov_server::ops::{OpContext, OpTargetRequest};
use deprov_store::entity::{event, grant};
use deprov_store::grants::NewGrant;
use deprov_store::op_targets::{KIND_GLOBAL_TOKEN_REVOCATION, KIND_OAUTH_REVOCATION};
use deprov_store::outbox::{self, EnqueueEvent};
use deprov_store::{Store, db_test, now_millis};
use reqwest::Method;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use serde_json::{Value, json};

use crate::scim_harness::{App, USER_URN, patch_ops};

const ADMIN: &str = "configured-admin-token-0123456789abcdef";

/// One request the OP received.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    content_type: String,
    authorization: String,
    body: String,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// A local OP: discovery, an RFC 7009 revocation endpoint answering by token, and a
/// Global Token Revocation endpoint.
struct Op {
    issuer: String,
    seen: Log,
    server: actix_web::dev::ServerHandle,
}

async fn record(req: &HttpRequest, body: &str, log: &Log) -> usize {
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let mut seen = log.lock().unwrap_or_else(|e| e.into_inner());
    seen.push(Seen {
        method: req.method().to_string(),
        path: req.path().to_owned(),
        content_type: header("content-type"),
        authorization: header("authorization"),
        body: body.to_owned(),
    });
    seen.iter().filter(|s| s.body == body).count()
}

impl Op {
    fn start() -> anyhow::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let issuer = format!("http://{}", listener.local_addr()?);
        let seen: Log = Arc::default();
        let state = web::Data::new((issuer.clone(), seen.clone()));
        let server = HttpServer::new(move || {
            ActixApp::new()
                .app_data(state.clone())
                .route(
                    "/.well-known/openid-configuration",
                    web::get().to(|s: web::Data<(String, Log)>| async move {
                        HttpResponse::Ok().json(json!({
                            "issuer": s.0,
                            "revocation_endpoint": format!("{}/token/revocation", s.0),
                        }))
                    }),
                )
                .route(
                    "/token/revocation",
                    web::post().to(
                        |req: HttpRequest, body: String, s: web::Data<(String, Log)>| async move {
                            let n = record(&req, &body, &s.1).await;
                            let token = url::form_urlencoded::parse(body.as_bytes())
                                .find(|(k, _)| k == "token")
                                .map(|(_, v)| v.into_owned())
                                .unwrap_or_default();
                            if token.matches('.').count() == 2 {
                                HttpResponse::BadRequest().json(json!({
                                    "error": "unsupported_token_type",
                                    "error_description": "Structured JWT Tokens cannot be revoked via the revocation_endpoint",
                                }))
                            } else if token.starts_with("busy") && n == 1 {
                                HttpResponse::ServiceUnavailable()
                                    .insert_header(("retry-after", "0"))
                                    .body("try later")
                            } else {
                                HttpResponse::Ok().finish()
                            }
                        },
                    ),
                )
                .route(
                    "/global-token-revocation",
                    web::post().to(
                        |req: HttpRequest, body: String, s: web::Data<(String, Log)>| async move {
                            record(&req, &body, &s.1).await;
                            HttpResponse::NoContent().finish()
                        },
                    ),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Ok(Self {
            issuer,
            seen,
            server: handle,
        })
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen
            .lock()
            .map(|s| s.iter().filter(|x| x.path == path).cloned().collect())
            .unwrap_or_default()
    }

    async fn stop(self) {
        self.server.stop(false).await;
    }
}

async fn admin(
    app: &App,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> anyhow::Result<(u16, Value)> {
    let mut req = app
        .client
        .request(method, format!("{}/admin/v1{path}", app.root))
        .bearer_auth(ADMIN);
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let text = res.text().await?;
    Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
}

/// Registers an `oauth_revocation` client through the admin API; returns its grants API
/// secret.
async fn add_op_client(
    app: &App,
    tenant: &str,
    issuer: &str,
    client_id: &str,
) -> anyhow::Result<String> {
    let (status, body) = admin(
        app,
        Method::POST,
        &format!("/tenants/{tenant}/ops"),
        Some(&json!({
            "kind": "oauth_revocation",
            "client_id": client_id,
            "config": {
                "issuer": issuer,
                "client_secret": "op-secret:with+odd %chars",
                "subject": "externalId",
            }
        })),
    )
    .await?;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["config"]["client_secret"], "[sealed]", "{body}");
    assert!(!body.to_string().contains("op-secret"), "{body}");
    Ok(body["grants_api_secret"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

fn basic(id: &str, secret: &str) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(id), enc(secret)))
    )
}

/// POSTs a form to the grants API.
async fn grants_post(
    app: &App,
    tenant: &str,
    path: &str,
    authorization: Option<&str>,
    form: &[(&str, &str)],
) -> anyhow::Result<(u16, Value, reqwest::header::HeaderMap)> {
    let body: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let mut req = app
        .client
        .post(format!("{}/api/v1/{tenant}/grants{path}", app.root))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        headers,
    ))
}

async fn create_user(app: &App, user_name: &str, external_id: &str) -> anyhow::Result<String> {
    let created = app
        .post(
            "/Users",
            &json!({"schemas": [USER_URN], "userName": user_name, "externalId": external_id, "active": true}),
        )
        .await?
        .expect(201);
    Ok(created.id())
}

db_test!(
    grants_api_refuses_other_tenants_unknown_users_and_never_shows_a_token,
    |store: Store, _url| async move {
        let op = Op::start()?;
        let app = App::start_with(store.clone(), |c| {
            c.admin_token = Some(deprov_core::Secret::new(ADMIN));
            c.allow_insecure_targets = true;
        })
        .await?;
        store
            .create_tenant(&TenantName::parse("other")?, "test")
            .await?;
        let secret = add_op_client(&app, "acme", &op.issuer, "app").await?;
        assert!(secret.starts_with("deprov_grants_"), "{secret}");
        let other_secret = add_op_client(&app, "other", &op.issuer, "app").await?;
        create_user(&app, "ada@example.com", "okta-ada").await?;
        let token = "rt-ZmFrZS1yZWZyZXNoLXRva2Vu-1234567890";
        let form = [
            ("token", token),
            ("token_type_hint", "refresh_token"),
            ("sub", "okta-ada"),
        ];

        // The same client_id in another tenant, with its own valid secret: refused here.
        let (status, body, _) =
            grants_post(&app, "acme", "", Some(&basic("app", &other_secret)), &form).await?;
        assert_eq!(status, 401, "{body}");
        assert_eq!(body["error"], "invalid_client");
        // And acme's secret at the other tenant's endpoint.
        let (status, _, headers) =
            grants_post(&app, "other", "", Some(&basic("app", &secret)), &form).await?;
        assert_eq!(status, 401);
        assert!(headers.get("www-authenticate").is_some());
        // No authentication, or two methods at once.
        assert_eq!(grants_post(&app, "acme", "", None, &form).await?.0, 401);
        let mut both = form.to_vec();
        both.push(("client_id", "app"));
        both.push(("client_secret", &secret));
        let (status, body, _) =
            grants_post(&app, "acme", "", Some(&basic("app", &secret)), &both).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );

        // An unknown user: a clear 400 naming the subject and the mapping.
        let (status, body, _) = grants_post(
            &app,
            "acme",
            "",
            Some(&basic("app", &secret)),
            &[("token", token), ("sub", "nobody")],
        )
        .await?;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"], "unknown_subject");
        let why = body["error_description"].as_str().unwrap_or_default();
        assert!(
            why.contains("nobody") && why.contains("externalId"),
            "{why}"
        );

        // Registered (Basic), idempotently; client_secret_post works too.
        let (status, first, _) =
            grants_post(&app, "acme", "", Some(&basic("app", &secret)), &form).await?;
        assert_eq!(status, 201, "{first}");
        let grant_id = first["grant_id"].as_str().unwrap_or_default().to_owned();
        let mut post_form = form.to_vec();
        post_form.push(("client_id", "app"));
        post_form.push(("client_secret", &secret));
        let (status, again, _) = grants_post(&app, "acme", "", None, &post_form).await?;
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["grant_id"], first["grant_id"]);

        // The token appears in no answer, no column, no audit entry.
        let (_, listed) = admin(&app, Method::GET, "/tenants/acme/ops/app/grants", None).await?;
        assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
        let (_, shown) = admin(&app, Method::GET, "/tenants/acme/ops/app", None).await?;
        let (_, audit) = admin(&app, Method::GET, "/audit", None).await?;
        for doc in [&first, &again, &listed, &shown, &audit] {
            assert!(!doc.to_string().contains(token), "{doc}");
            assert!(!doc.to_string().contains("op-secret"), "{doc}");
            assert!(!doc.to_string().contains(&secret), "{doc}");
        }
        let rows = grant::Entity::find().all(store.reader()).await?;
        assert_eq!(rows.len(), 1);
        assert!(!format!("{rows:?}").contains(token));
        assert_eq!(rows[0].token_hash, TokenHash::of(token).to_hex());

        // Expired on arrival: refused; expiring soon: purged once expired.
        let (status, _, _) = grants_post(
            &app,
            "acme",
            "",
            Some(&basic("app", &secret)),
            &[
                ("token", "rt-old"),
                ("sub", "okta-ada"),
                ("expires_at", "1000"),
            ],
        )
        .await?;
        assert_eq!(status, 400);
        let (status, _, _) = grants_post(
            &app,
            "acme",
            "",
            Some(&basic("app", &secret)),
            &[
                ("token", "rt-short"),
                ("sub", "okta-ada"),
                ("expires_in", "1"),
            ],
        )
        .await?;
        assert_eq!(status, 201);
        tokio::time::sleep(Duration::from_millis(2100)).await;
        assert_eq!(store.purge_expired_grants().await?, 1);
        assert_eq!(grant::Entity::find().all(store.reader()).await?.len(), 1);

        // Withdrawn by id, then unknown.
        let del = |id: String| {
            let req = app
                .client
                .delete(format!("{}/api/v1/acme/grants/{id}", app.root))
                .header("authorization", basic("app", &secret));
            async move { req.send().await.map(|r| r.status().as_u16()) }
        };
        assert_eq!(del(grant_id.clone()).await?, 204);
        assert_eq!(del(grant_id).await?, 404);

        // A de-provisioned user gets no new grant.
        let user = create_user(&app, "bob@example.com", "okta-bob").await?;
        app.patch(
            &format!("/Users/{user}"),
            &patch_ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await?
        .expect(200);
        let (status, body, _) = grants_post(
            &app,
            "acme",
            "",
            Some(&basic("app", &secret)),
            &[("token", "rt-bob"), ("sub", "okta-bob")],
        )
        .await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (409, Some("inactive_subject")),
            "{body}"
        );
        app.stop().await?;
        op.stop().await;
        Ok(())
    }
);

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        max_retry_after: Duration::from_millis(5),
        max_age: Duration::from_secs(3600),
    }
}

async fn deactivation(store: &Store, tenant_id: &str, user_id: &str) -> anyhow::Result<String> {
    let txn = store.begin_write().await?;
    let id = uuid::Uuid::now_v7().to_string();
    event::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant_id.to_owned()),
        kind: Set(EventKind::Deactivated.as_str().to_owned()),
        user_id: Set(user_id.to_owned()),
        user_snapshot: Set(json!({ "id": user_id, "userName": "ada", "emails": [{"value": "ada@example.com", "primary": true}] })),
        group_id: Set(None),
        group_display_name: Set(None),
        request_id: Set("req-1".into()),
        scim_method: Set("PATCH".into()),
        scim_path: Set("/scim/v2/acme/Users/x".into()),
        occurred_at: Set(now_millis()),
    }
    .insert(&txn)
    .await?;
    outbox::enqueue(
        &txn,
        tenant_id,
        &[EnqueueEvent {
            event_id: &id,
            kind: EventKind::Deactivated,
            user_id,
            group: None,
        }],
    )
    .await?;
    store.commit(txn).await?;
    Ok(id)
}

async fn drain(worker: &Worker, rounds: usize) -> anyhow::Result<()> {
    for _ in 0..rounds {
        if worker.run_once().await? == 0 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            if worker.run_once().await? == 0 {
                return Ok(());
            }
        }
    }
    Ok(())
}

db_test!(
    rfc7009_revokes_each_grant_retries_a_503_and_records_unsupported_token_type,
    |store: Store, _url| async move {
        let op = Op::start()?;
        let kek = KeyEncryptionKey::generate()?;
        let tenant = store
            .create_tenant(&TenantName::parse("acme")?, "test")
            .await?
            .tenant;
        let prepared = OpTargetRequest {
            kind: KIND_OAUTH_REVOCATION.into(),
            client_id: "my app".into(),
            groups: vec![],
            enabled: true,
            config: json!({"issuer": op.issuer, "client_secret": "p:ss w+rd", "subject": "id"}),
        }
        .prepare(OpContext {
            kek: &kek,
            policy: AddressPolicy::AllowInsecure,
            tenant_id: &tenant.id,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let target = store
            .add_target("acme", prepared.target, prepared.audit, "test")
            .await?;
        let gtr = OpTargetRequest {
            kind: KIND_GLOBAL_TOKEN_REVOCATION.into(),
            client_id: "deprov".into(),
            groups: vec![],
            enabled: true,
            config: json!({
                "endpoint": format!("{}/global-token-revocation", op.issuer),
                "bearer_token": "gtr-bearer-secret",
            }),
        }
        .prepare(OpContext {
            kek: &kek,
            policy: AddressPolicy::AllowInsecure,
            tenant_id: &tenant.id,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        store
            .add_target("acme", gtr.target, gtr.audit, "test")
            .await?;
        let user = "u-1";
        for (token, hint) in [
            ("rt-good", Some("refresh_token")),
            (
                "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln",
                Some("access_token"),
            ),
            ("busy-token", None),
        ] {
            let id = uuid::Uuid::now_v7().to_string();
            store
                .insert_grant(NewGrant {
                    token_sealed: seal_grant(&kek, &tenant.id, &id, token)?,
                    id,
                    tenant_id: tenant.id.clone(),
                    target_id: target.id.clone(),
                    user_id: user.into(),
                    subject: user.into(),
                    token_hash: TokenHash::of(token).to_hex(),
                    token_type_hint: hint.map(str::to_owned),
                    expires_at: None,
                })
                .await?;
        }
        let event_id = deactivation(&store, &tenant.id, user).await?;
        let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(2))?;
        let worker = Worker::new(
            store.clone(),
            WorkerConfig {
                owner: "w".into(),
                retry: fast_retries(),
                ..WorkerConfig::default()
            },
        )
        .with_channel(
            KIND_OAUTH_REVOCATION,
            Arc::new(OAuthRevocation::new(
                store.clone(),
                kek.clone(),
                client.clone(),
                Arc::new(MetadataCache::new(client.clone(), Duration::from_secs(60))),
            )),
        )
        .with_channel(
            KIND_GLOBAL_TOKEN_REVOCATION,
            Arc::new(GlobalTokenRevocation::new(kek.clone(), client)),
        );
        drain(&worker, 10).await?;

        // The exact RFC 7009 request: POST, form-encoded, Basic of the form-encoded pair.
        let revocations = op.seen("/token/revocation");
        assert!(!revocations.is_empty());
        for r in &revocations {
            assert_eq!(r.method, "POST");
            assert_eq!(r.content_type, "application/x-www-form-urlencoded");
            assert_eq!(r.authorization, basic("my app", "p:ss w+rd"));
            assert_eq!(
                r.authorization, "Basic bXkrYXBwOnAlM0Fzcyt3JTJCcmQ=",
                "RFC 6749 §2.3.1: my+app:p%3Ass+w%2Brd"
            );
        }
        let bodies: Vec<&str> = revocations.iter().map(|r| r.body.as_str()).collect();
        assert!(
            bodies.contains(&"token=rt-good&token_type_hint=refresh_token"),
            "{bodies:?}"
        );
        assert!(bodies.contains(&"token=busy-token"), "{bodies:?}");
        // The good grant was revoked once (deleted at once, not re-sent by the retry); the
        // busy one twice (503, then 200); the JWT each attempt.
        assert_eq!(bodies.iter().filter(|b| b.contains("rt-good")).count(), 1);
        assert_eq!(
            bodies.iter().filter(|b| b.contains("busy-token")).count(),
            2
        );

        let trail = store
            .event_trail(&event_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trail"))?;
        let by_kind = |kind: &str| {
            trail
                .deliveries
                .iter()
                .find(|d| d.delivery.target_kind == kind)
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("no {kind} delivery"))
        };
        let d = by_kind(KIND_OAUTH_REVOCATION)?;
        assert_eq!(d.delivery.status, "dead", "{d:?}");
        let statuses: Vec<Option<i64>> = d.attempts.iter().map(|a| a.http_status).collect();
        assert_eq!(statuses, vec![Some(503), Some(400)]);
        let last = d.delivery.last_error.clone().unwrap_or_default();
        assert!(
            last.contains("HTTP 400") && last.contains("unsupported_token_type"),
            "{last}"
        );
        let excerpt = d.attempts[1].response_excerpt.clone().unwrap_or_default();
        assert!(excerpt.contains("unsupported_token_type"), "{excerpt}");
        for a in &d.attempts {
            let text = format!("{a:?}");
            assert!(
                !text.contains("rt-good") && !text.contains("busy-token") && !text.contains("eyJ"),
                "{text}"
            );
        }
        // Only the refused JWT is still held, with its error.
        let left = grant::Entity::find().all(store.reader()).await?;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].token_type_hint.as_deref(), Some("access_token"));
        assert!(
            left[0]
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("unsupported_token_type")
        );

        // Global Token Revocation: the RFC 9493 subject as JSON, the bearer token, 204.
        let g = by_kind(KIND_GLOBAL_TOKEN_REVOCATION)?;
        assert_eq!(g.delivery.status, "delivered");
        let gtr_seen = op.seen("/global-token-revocation");
        assert_eq!(gtr_seen.len(), 1);
        assert_eq!(gtr_seen[0].content_type, "application/json");
        assert_eq!(gtr_seen[0].authorization, "Bearer gtr-bearer-secret");
        let sent: Value = serde_json::from_str(&gtr_seen[0].body)?;
        assert_eq!(
            sent,
            json!({"sub_id": {"format": "email", "email": "ada@example.com"}})
        );
        op.stop().await;
        Ok(())
    }
);

db_test!(
    group_bound_op_clients_hear_only_their_members_and_no_grant_means_nothing_sent,
    |store: Store, _url| async move {
        let op = Op::start()?;
        let kek = KeyEncryptionKey::generate()?;
        let tenant = store
            .create_tenant(&TenantName::parse("acme")?, "test")
            .await?
            .tenant;
        for (client_id, groups) in [("bound", vec!["engineering".to_owned()]), ("wide", vec![])] {
            let prepared = OpTargetRequest {
                kind: KIND_OAUTH_REVOCATION.into(),
                client_id: client_id.into(),
                groups,
                enabled: true,
                config: json!({"issuer": op.issuer, "client_secret": "s", "auth_method": "client_secret_post"}),
            }
            .prepare(OpContext {
                kek: &kek,
                policy: AddressPolicy::AllowInsecure,
                tenant_id: &tenant.id,
            })
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            store
                .add_target("acme", prepared.target, prepared.audit, "test")
                .await?;
        }
        // The user is in no group: only the tenant-wide client is reached.
        let event_id = deactivation(&store, &tenant.id, "u-2").await?;
        let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(2))?;
        let worker = Worker::new(
            store.clone(),
            WorkerConfig {
                owner: "w".into(),
                retry: fast_retries(),
                ..WorkerConfig::default()
            },
        )
        .with_channel(
            KIND_OAUTH_REVOCATION,
            Arc::new(OAuthRevocation::new(
                store.clone(),
                kek.clone(),
                client.clone(),
                Arc::new(MetadataCache::new(client, Duration::from_secs(60))),
            )),
        );
        drain(&worker, 5).await?;
        let trail = store
            .event_trail(&event_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trail"))?;
        assert_eq!(trail.deliveries.len(), 1);
        let d = &trail.deliveries[0];
        assert_eq!(d.client_id.as_deref(), Some("wide"));
        assert_eq!(d.delivery.status, "delivered");
        let note = d.attempts[0].response_excerpt.clone().unwrap_or_default();
        assert!(note.contains("no grant"), "{note}");
        // No grant held: the OP was not even asked for its metadata.
        assert!(op.seen.lock().map(|s| s.is_empty()).unwrap_or(false));
        op.stop().await;
        Ok(())
    }
);

/// An ES256 JWT signed with p256 directly (not with the library deprov verifies with).
fn es256_jwt(key: &p256::ecdsa::SigningKey, claims: &Value) -> anyhow::Result<String> {
    use p256::ecdsa::signature::Signer as _;
    let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
    let input = format!(
        "{}.{}",
        b64(json!({"alg": "ES256", "typ": "JWT"}).to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    Ok(format!("{input}.{}", b64(&sig.to_bytes())))
}

/// Verifies an ES256 JWT with p256 directly; returns its claims.
fn es256_verify(key: &p256::ecdsa::VerifyingKey, jwt: &str) -> anyhow::Result<Value> {
    use p256::ecdsa::signature::Verifier as _;
    let b64 = |v: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(v);
    let (input, sig) = jwt
        .rsplit_once('.')
        .ok_or_else(|| anyhow::anyhow!("not a JWT"))?;
    let sig = p256::ecdsa::Signature::from_slice(&b64(sig)?)?;
    key.verify(input.as_bytes(), &sig)?;
    let header: Value = serde_json::from_slice(&b64(input.split('.').next().unwrap_or(""))?)?;
    anyhow::ensure!(header["alg"] == "ES256", "{header}");
    let payload = input.split('.').nth(1).unwrap_or("");
    Ok(serde_json::from_slice(&b64(payload)?)?)
}

fn p256_key() -> anyhow::Result<(p256::SecretKey, String, String)> {
    use p256::elliptic_curve::Generate as _;
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let secret = p256::SecretKey::try_generate_from_rng(&mut getrandom::SysRng)
        .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let private = secret.to_pkcs8_pem(LineEnding::LF)?.to_string();
    let public = secret.public_key().to_public_key_pem(LineEnding::LF)?;
    Ok((secret, private, public))
}

db_test!(
    private_key_jwt_authenticates_the_app_to_deprov_and_deprov_to_the_op,
    |store: Store, _url| async move {
        let op = Op::start()?;
        let app = App::start_with(store.clone(), |c| {
            c.admin_token = Some(deprov_core::Secret::new(ADMIN));
            c.allow_insecure_targets = true;
            c.delivery.worker = true;
        })
        .await?;
        let (app_key, _, app_public) = p256_key()?;
        let (op_key, op_private, _) = p256_key()?;
        let (status, body) = admin(
            &app,
            Method::POST,
            "/tenants/acme/ops",
            Some(&json!({
                "kind": "oauth_revocation",
                "client_id": "pkj",
                "config": {
                    "issuer": op.issuer,
                    "auth_method": "private_key_jwt",
                    "private_key": op_private,
                    "private_key_alg": "ES256",
                    "kid": "op-key-1",
                    "subject": "externalId",
                    "api_public_key": app_public,
                    "api_public_key_alg": "ES256",
                }
            })),
        )
        .await?;
        assert_eq!(status, 201, "{body}");
        assert!(body.get("grants_api_secret").is_none(), "{body}");
        assert_eq!(body["config"]["private_key"], "[sealed]");
        assert!(!body.to_string().contains("PRIVATE KEY"), "{body}");
        let user = create_user(&app, "ada@example.com", "okta-ada").await?;

        let audience = format!("{}/api/v1/acme/grants", app.root);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs();
        let claims = |aud: &str, jti: &str| json!({"iss": "pkj", "sub": "pkj", "aud": aud, "iat": now, "exp": now + 60, "jti": jti});
        let signing = p256::ecdsa::SigningKey::from(&app_key);
        let assertion = es256_jwt(&signing, &claims(&audience, "jti-1"))?;
        let form = |assertion: &str| {
            vec![
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_owned(),
                ),
                ("client_assertion", assertion.to_owned()),
                ("token", "rt-pkj-1".to_owned()),
                ("token_type_hint", "refresh_token".to_owned()),
                ("sub", "okta-ada".to_owned()),
            ]
        };
        let app_ref = &app;
        let post = |f: Vec<(&'static str, String)>| async move {
            let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            grants_post(app_ref, "acme", "", None, &pairs).await
        };
        let (status, body, _) = post(form(&assertion)).await?;
        assert_eq!(status, 201, "{body}");
        // The same assertion again is a replay.
        let (status, body, _) = post(form(&assertion)).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client")),
            "{body}"
        );
        // Another audience (another tenant's endpoint), or a key that is not registered.
        let other_aud = es256_jwt(
            &signing,
            &claims(&format!("{}/api/v1/other/grants", app.root), "jti-2"),
        )?;
        assert_eq!(post(form(&other_aud)).await?.0, 401);
        let stranger = p256::ecdsa::SigningKey::from(&p256_key()?.0);
        assert_eq!(
            post(form(&es256_jwt(&stranger, &claims(&audience, "jti-3"))?))
                .await?
                .0,
            401
        );

        // Deactivation: deprov authenticates at the OP with its own assertion for "pkj".
        app.patch(
            &format!("/Users/{user}"),
            &patch_ops(json!([{"op": "Replace", "path": "active", "value": "False"}])),
        )
        .await?
        .expect(200);
        let mut seen = Vec::new();
        for _ in 0..100 {
            seen = op.seen("/token/revocation");
            if !seen.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen.len(), 1, "{seen:?}");
        let r = &seen[0];
        assert_eq!(
            r.authorization, "",
            "private_key_jwt sends no Authorization header"
        );
        let fields: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(r.body.as_bytes())
                .into_owned()
                .collect();
        assert_eq!(fields.get("token").map(String::as_str), Some("rt-pkj-1"));
        assert_eq!(fields.get("client_id").map(String::as_str), Some("pkj"));
        assert_eq!(
            fields.get("client_assertion_type").map(String::as_str),
            Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        );
        let sent = es256_verify(
            &p256::ecdsa::VerifyingKey::from(&p256::ecdsa::SigningKey::from(&op_key)),
            fields
                .get("client_assertion")
                .map(String::as_str)
                .unwrap_or(""),
        )?;
        assert_eq!(sent["iss"], "pkj");
        assert_eq!(sent["sub"], "pkj");
        assert_eq!(sent["aud"], op.issuer);
        assert!(sent["jti"].as_str().is_some_and(|j| !j.is_empty()));
        let exp = sent["exp"].as_u64().unwrap_or(0);
        assert!(exp > now && exp <= now + 120, "{sent}");
        // Revoked, so no longer held.
        for _ in 0..100 {
            if grant::Entity::find().all(store.reader()).await?.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(grant::Entity::find().all(store.reader()).await?.is_empty());
        app.stop().await?;
        op.stop().await;
        Ok(())
    }
);

db_test!(
    many_grants_are_revoked_over_several_attempts_within_the_lease,
    |store: Store, _url| async move {
        let op = Op::start()?;
        let kek = KeyEncryptionKey::generate()?;
        let tenant = store
            .create_tenant(&TenantName::parse("acme")?, "test")
            .await?
            .tenant;
        let prepared = OpTargetRequest {
            kind: KIND_OAUTH_REVOCATION.into(),
            client_id: "app".into(),
            groups: vec![],
            enabled: true,
            config: json!({"issuer": op.issuer, "client_secret": "s", "subject": "id"}),
        }
        .prepare(OpContext {
            kek: &kek,
            policy: AddressPolicy::AllowInsecure,
            tenant_id: &tenant.id,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let target = store
            .add_target("acme", prepared.target, prepared.audit, "test")
            .await?;
        for n in 0..30 {
            let id = uuid::Uuid::now_v7().to_string();
            let token = format!("rt-{n}");
            store
                .insert_grant(NewGrant {
                    token_sealed: seal_grant(&kek, &tenant.id, &id, &token)?,
                    id,
                    tenant_id: tenant.id.clone(),
                    target_id: target.id.clone(),
                    user_id: "u-1".into(),
                    subject: "u-1".into(),
                    token_hash: TokenHash::of(&token).to_hex(),
                    token_type_hint: None,
                    expires_at: None,
                })
                .await?;
        }
        let event_id = deactivation(&store, &tenant.id, "u-1").await?;
        let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(2))?;
        let worker = Worker::new(
            store.clone(),
            WorkerConfig {
                owner: "w".into(),
                retry: fast_retries(),
                ..WorkerConfig::default()
            },
        )
        .with_channel(
            KIND_OAUTH_REVOCATION,
            Arc::new(OAuthRevocation::new(
                store.clone(),
                kek.clone(),
                client.clone(),
                Arc::new(MetadataCache::new(client, Duration::from_secs(60))),
            )),
        );
        drain(&worker, 10).await?;
        let trail = store
            .event_trail(&event_id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no trail"))?;
        let d = &trail.deliveries[0];
        assert_eq!(d.delivery.status, "delivered", "{d:?}");
        assert_eq!(d.attempts.len(), 2);
        assert_eq!(
            d.attempts[0].error.as_deref(),
            Some("5 grant(s) left for the next attempt")
        );
        assert_eq!(op.seen("/token/revocation").len(), 30);
        assert!(grant::Entity::find().all(store.reader()).await?.is_empty());
        op.stop().await;
        Ok(())
    }
);

db_test!(
    admin_api_checks_each_kind_seals_provider_secrets_and_names_the_bad_field,
    |store: Store, _url| async move {
        let app = App::start_with(store.clone(), |c| {
            c.admin_token = Some(deprov_core::Secret::new(ADMIN));
            c.allow_insecure_targets = true;
        })
        .await?;
        let create = |body: Value| {
            let app = &app;
            async move { admin(app, Method::POST, "/tenants/acme/ops", Some(&body)).await }
        };
        for (body, field) in [
            (
                json!({"kind": "ldap", "client_id": "x", "config": {}}),
                "kind",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": "x", "config": {"client_secret": "s"}}),
                "config.issuer",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": "x", "config": {"issuer": "http://127.0.0.1:1"}}),
                "config.client_secret",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": "x", "config": {"issuer": "http://127.0.0.1:1", "client_secret": "s", "subject": "no spaces"}}),
                "config.subject",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": "x", "config": {"issuer": "http://127.0.0.1:1", "client_secret": "s", "colour": "blue"}}),
                "config.colour",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": "x", "config": {"issuer": "http://169.254.169.254", "client_secret": "s"}}),
                "config.issuer",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": "x", "config": {"issuer": "http://127.0.0.1:1", "auth_method": "private_key_jwt", "private_key": "not a key"}}),
                "config.private_key",
            ),
            (
                json!({"kind": "global_token_revocation", "client_id": "x", "config": {"endpoint": "http://127.0.0.1:1/gtr"}}),
                "config.bearer_token",
            ),
            (
                json!({"kind": "global_token_revocation", "client_id": "x", "config": {"endpoint": "http://127.0.0.1:1/gtr", "bearer_token": "t", "subject_format": "iss_sub"}}),
                "config.subject_issuer",
            ),
            (
                json!({"kind": "oauth_revocation", "client_id": " ", "config": {}}),
                "client_id",
            ),
        ] {
            let (status, problem) = create(body.clone()).await?;
            assert_eq!(status, 400, "{body} → {problem}");
            assert_eq!(problem["field"], field, "{body} → {problem}");
            assert!(!problem.to_string().contains("\"s\""), "{problem}");
        }

        // A provider kind: {"$secret": …} members are sealed, the rest kept as given.
        let (status, kc) = create(json!({
            "kind": "keycloak",
            "client_id": "deprov-admin",
            "groups": ["engineering"],
            "config": {"base_url": "http://127.0.0.1:1", "realm": "acme", "client_id": "deprov-admin", "client_secret": {"$secret": "kc-secret-value"}},
        }))
        .await?;
        assert_eq!(status, 201, "{kc}");
        assert_eq!(kc["config"]["client_secret"], "[sealed]");
        assert_eq!(kc["config"]["realm"], "acme");
        assert_eq!(kc["groups"], json!(["engineering"]));
        let stored = store
            .find_target("acme", &["keycloak"], "deprov-admin")
            .await?;
        let sealed = stored.config["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(!sealed.is_empty() && !sealed.contains("kc-secret-value"));
        // Sealed per the shared convention: base64 of the KEK ciphertext, bound to tenant
        // and member (checked by opening it with the deployment's key elsewhere).
        assert!(
            base64::engine::general_purpose::STANDARD
                .decode(&sealed)
                .is_ok()
        );

        // Duplicates conflict; list, show and delete by client_id.
        let (status, _) = create(json!({
            "kind": "keycloak",
            "client_id": "deprov-admin",
            "config": {"base_url": "http://127.0.0.1:1", "realm": "acme", "client_id": "deprov-admin", "client_secret": {"$secret": "x"}},
        }))
        .await?;
        assert_eq!(status, 409);
        let (status, listed) = admin(&app, Method::GET, "/tenants/acme/ops", None).await?;
        assert_eq!(status, 200);
        assert_eq!(listed.as_array().map(Vec::len), Some(1));
        assert!(!listed.to_string().contains("kc-secret-value"));
        let (status, patched) = admin(
            &app,
            Method::PATCH,
            "/tenants/acme/ops/deprov-admin",
            Some(&json!({"enabled": false})),
        )
        .await?;
        assert_eq!(
            (status, &patched["enabled"]),
            (200, &json!(false)),
            "{patched}"
        );
        let (status, _) =
            admin(&app, Method::DELETE, "/tenants/acme/ops/deprov-admin", None).await?;
        assert_eq!(status, 200);
        let (status, _) = admin(&app, Method::GET, "/tenants/acme/ops/deprov-admin", None).await?;
        assert_eq!(status, 404);
        let (_, audit) = admin(&app, Method::GET, "/audit", None).await?;
        assert!(!audit.to_string().contains("kc-secret-value"), "{audit}");
        app.stop().await?;
        Ok(())
    }
);

db_test!(
    grants_api_takes_json_and_withdraws_by_token,
    |store: Store, _url| async move {
        let op = Op::start()?;
        let app = App::start_with(store.clone(), |c| {
            c.admin_token = Some(deprov_core::Secret::new(ADMIN));
            c.allow_insecure_targets = true;
        })
        .await?;
        let secret = add_op_client(&app, "acme", &op.issuer, "app").await?;
        create_user(&app, "ada@example.com", "okta-ada").await?;
        let res = app
            .client
            .post(format!("{}/api/v1/acme/grants", app.root))
            .header("authorization", basic("app", &secret))
            .header("content-type", "application/json")
            .body(json!({"token": "at-json-1", "token_type_hint": "access_token", "sub": "okta-ada", "expires_in": 3600}).to_string())
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 201);
        let body: Value = serde_json::from_str(&res.text().await?)?;
        let expires = body["expires_at"].as_i64().unwrap_or(0);
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_secs(),
        )?;
        assert!((now + 3590..=now + 3610).contains(&expires), "{body}");
        // A hint that is not a hint, and a body that is neither form nor JSON.
        let (status, _, _) = grants_post(
            &app,
            "acme",
            "",
            Some(&basic("app", &secret)),
            &[
                ("token", "t"),
                ("sub", "okta-ada"),
                ("token_type_hint", "Refresh Token!"),
            ],
        )
        .await?;
        assert_eq!(status, 400);
        let res = app
            .client
            .post(format!("{}/api/v1/acme/grants", app.root))
            .header("authorization", basic("app", &secret))
            .header("content-type", "text/plain")
            .body("token=x")
            .send()
            .await?;
        assert_eq!(res.status().as_u16(), 415);
        // Withdrawn by the token itself; withdrawing an unknown token is not an error.
        let (status, _, _) = grants_post(
            &app,
            "acme",
            "/withdraw",
            Some(&basic("app", &secret)),
            &[("token", "at-json-1")],
        )
        .await?;
        assert_eq!(status, 204);
        assert!(grant::Entity::find().all(store.reader()).await?.is_empty());
        let (status, _, _) = grants_post(
            &app,
            "acme",
            "/withdraw",
            Some(&basic("app", &secret)),
            &[("token", "never-seen")],
        )
        .await?;
        assert_eq!(status, 204);
        app.stop().await?;
        op.stop().await;
        Ok(())
    }
);
