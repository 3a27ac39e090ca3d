//! Each adapter against a local stand-in for its provider that records every request, so
//! the tests check the exact requests the provider documents (method, path, query,
//! `Authorization`, content type, body; for token endpoints the form and the client
//! authentication) and answer with the provider's documented shapes, errors and rate limits.

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use deprov_core::SigningAlgorithm;
use deprov_store::entity::{delivery, event, target};
use deprov_store::outbox::Claimed;
use serde_json::{Value, json};

use super::*;
use crate::keys::SigningKey;
use crate::worker::{Verdict, classify};

// ---------------------------------------------------------------------------------------
// The stand-in provider.

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    /// As sent, percent-encoding included.
    path: String,
    query: String,
    headers: HashMap<String, String>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map(String::as_str).unwrap_or("")
    }

    fn form(&self) -> HashMap<String, String> {
        url::form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    fn is(&self, method: &str, path: &str) -> bool {
        self.method == method && self.path == path
    }
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: vec![("content-type", "application/json".to_owned())],
        body: if body.is_null() {
            String::new()
        } else {
            body.to_string()
        },
        delay: Duration::ZERO,
    }
}

fn empty(status: u16) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body: String::new(),
        delay: Duration::ZERO,
    }
}

impl Answer {
    fn with(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }

    fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

/// Decides the answer to a request, given how many earlier requests had the same method
/// and path.
type Script = Arc<dyn Fn(&Seen, usize) -> Answer + Send + Sync>;

struct State {
    seen: Mutex<Vec<Seen>>,
    script: Script,
}

struct Provider {
    base: String,
    state: web::Data<State>,
    handle: ServerHandle,
}

impl Provider {
    fn start(script: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = web::Data::new(State {
            seen: Mutex::default(),
            script: Arc::new(script),
        });
        let data = state.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self {
            base,
            state,
            handle,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    fn count(&self, method: &str, path: &str) -> usize {
        self.seen().iter().filter(|s| s.is(method, path)).count()
    }

    async fn stop(self) {
        self.handle.stop(false).await;
    }
}

async fn record(req: HttpRequest, body: web::Bytes, state: web::Data<State>) -> HttpResponse {
    let seen = Seen {
        method: req.method().to_string(),
        path: req.uri().path().to_owned(),
        query: req.uri().query().unwrap_or("").to_owned(),
        headers: req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let answer = {
        let mut all = state.seen.lock().unwrap();
        let before = all
            .iter()
            .filter(|s| s.method == seen.method && s.path == seen.path)
            .count();
        all.push(seen.clone());
        (state.script)(&seen, before)
    };
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response =
        HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).unwrap());
    for (name, value) in answer.headers {
        response.insert_header((name, value));
    }
    response.body(answer.body)
}

// ---------------------------------------------------------------------------------------
// Deliveries without a database.

const TENANT: &str = "tenant-1";

fn kek() -> Arc<KeyEncryptionKey> {
    Arc::new(KeyEncryptionKey::generate().unwrap())
}

fn admin(kek: &Arc<KeyEncryptionKey>) -> ProviderAdmin {
    let client = OutboundClient::new(AddressPolicy::AllowInsecure, Duration::from_secs(5)).unwrap();
    ProviderAdmin::new(KeyEncryptionKey::clone(kek), client)
}

fn channel(admin: &ProviderAdmin, kind: &str) -> Arc<dyn Channel> {
    admin
        .channels()
        .into_iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, c)| c)
        .unwrap()
}

fn sealed(kek: &KeyEncryptionKey, field: &str, secret: &str) -> String {
    seal_secret(kek, TENANT, field, secret).unwrap()
}

fn claimed(kind: &str, config: Value, user: Value) -> Claimed {
    let user_id = user["id"].as_str().unwrap_or("u-1").to_owned();
    Claimed {
        delivery: delivery::Model {
            id: uuid::Uuid::now_v7().to_string(),
            event_id: "ev-1".into(),
            tenant_id: TENANT.into(),
            target_id: "target-1".into(),
            target_kind: kind.into(),
            status: "pending".into(),
            attempt_count: 0,
            next_attempt_at: 0,
            lease_owner: None,
            lease_expires_at: None,
            last_error: None,
            created_at: 0,
            updated_at: 0,
            completed_at: None,
            redriven_at: None,
        },
        event: Arc::new(event::Model {
            id: "ev-1".into(),
            tenant_id: TENANT.into(),
            kind: "deactivated".into(),
            user_id,
            user_snapshot: user,
            group_id: None,
            group_display_name: None,
            request_id: "req-1".into(),
            scim_method: "PATCH".into(),
            scim_path: "/Users/u-1".into(),
            occurred_at: 0,
        }),
        target: Some(Arc::new(target::Model {
            id: "target-1".into(),
            tenant_id: TENANT.into(),
            kind: kind.into(),
            client_id: String::new(),
            config,
            enabled: true,
            created_at: 0,
            updated_at: 1,
        })),
    }
}

fn user(id: &str, external_id: &str, user_name: &str) -> Value {
    json!({
        "id": id,
        "externalId": external_id,
        "userName": user_name,
        "emails": [{"value": user_name, "primary": true}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"employeeNumber": "701984"},
        "active": false
    })
}

/// The exchange of an answered delivery (panics otherwise: a failed test).
fn exchange(performed: &Performed) -> &Exchange {
    match performed {
        Performed::Answered(ex) => ex,
        other => panic!("expected an answer, got {other:?}"),
    }
}

fn verdict(performed: &Performed) -> Verdict {
    classify(exchange(performed).status)
}

fn excerpt(performed: &Performed) -> String {
    exchange(performed).body_excerpt.clone().unwrap_or_default()
}

fn token_answer(token: &str, expires_in: u64) -> Answer {
    answer(
        200,
        json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in}),
    )
}

fn basic(id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

// ---------------------------------------------------------------------------------------
// Keycloak

const KC_TOKEN: &str = "/realms/acme/protocol/openid-connect/token";

fn keycloak_config(kek: &KeyEncryptionKey, base: &str, extra: Value) -> Value {
    let mut config = json!({
        "base_url": base,
        "realm": "acme",
        "client_id": "deprov",
        "client_secret": sealed(kek, "client_secret", "kc-s3cret"),
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    config
}

/// Keycloak as documented: token by client credentials with HTTP Basic; user search
/// answering an array of `UserRepresentation`; PUT and logout answering 204.
fn keycloak_script(seen: &Seen, _before: usize) -> Answer {
    match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", KC_TOKEN) => {
            if seen.header("authorization") != basic("deprov", "kc-s3cret") {
                return answer(
                    401,
                    json!({"error": "invalid_client", "error_description": "Invalid client or Invalid client credentials"}),
                );
            }
            token_answer("kc-token-1", 300)
        }
        ("GET", "/admin/realms/acme/users") => {
            if seen.query.contains("username=ada%40example.com")
                || seen.query.contains("q=employeeNumber%3A701984")
            {
                answer(
                    200,
                    json!([{"id": "8f7c5a0e-kc", "username": "ada@example.com", "enabled": true}]),
                )
            } else {
                answer(200, json!([]))
            }
        }
        ("PUT", "/admin/realms/acme/users/8f7c5a0e-kc") => empty(204),
        ("POST", "/admin/realms/acme/users/8f7c5a0e-kc/logout") => empty(204),
        _ => answer(404, json!({"error": "User not found"})),
    }
}

#[tokio::test]
async fn keycloak_finds_by_username_disables_then_logs_out_with_documented_requests() {
    let kek = kek();
    let kc = Provider::start(keycloak_script);
    let admin = admin(&kek);
    let config = keycloak_config(&kek, &kc.base, json!({"disable_user": true}));
    let done = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            config,
            user("u-1", "00u1", "ada@example.com"),
        ))
        .await;
    assert_eq!(exchange(&done).status, Some(204), "{done:?}");
    assert_eq!(verdict(&done), Verdict::Delivered);

    let seen = kc.seen();
    let order: Vec<(String, String)> = seen
        .iter()
        .map(|s| (s.method.clone(), s.path.clone()))
        .collect();
    assert_eq!(
        order,
        [
            ("POST", KC_TOKEN),
            ("GET", "/admin/realms/acme/users"),
            ("PUT", "/admin/realms/acme/users/8f7c5a0e-kc"),
            ("POST", "/admin/realms/acme/users/8f7c5a0e-kc/logout"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
    let token = &seen[0];
    assert_eq!(
        token.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(token.header("authorization"), basic("deprov", "kc-s3cret"));
    assert_eq!(token.body, "grant_type=client_credentials");
    let search = &seen[1];
    assert_eq!(
        search.query,
        "username=ada%40example.com&exact=true&briefRepresentation=true"
    );
    assert_eq!(search.header("authorization"), "Bearer kc-token-1");
    assert_eq!(search.header("accept"), "application/json");
    let disable = &seen[2];
    assert_eq!(disable.header("content-type"), "application/json");
    assert_eq!(
        serde_json::from_str::<Value>(&disable.body).unwrap(),
        json!({"enabled": false})
    );
    assert_eq!(disable.header("authorization"), "Bearer kc-token-1");
    let logout = &seen[3];
    assert_eq!(logout.body, "");
    assert_eq!(logout.header("content-length"), "0");
    assert_eq!(logout.header("authorization"), "Bearer kc-token-1");
    kc.stop().await;
}

#[tokio::test]
async fn keycloak_searches_a_custom_attribute_with_q_and_skips_the_disable_unless_asked() {
    let kek = kek();
    let kc = Provider::start(keycloak_script);
    let admin = admin(&kek);
    let config = keycloak_config(
        &kek,
        &kc.base,
        json!({
            "find_user_by": "attribute",
            "attribute": "employeeNumber",
            "scim_attribute": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"
        }),
    );
    let done = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            config,
            user("u-1", "00u1", "someone-else"),
        ))
        .await;
    assert_eq!(verdict(&done), Verdict::Delivered, "{done:?}");
    let seen = kc.seen();
    assert_eq!(
        seen[1].query,
        "q=employeeNumber%3A701984&exact=true&briefRepresentation=true"
    );
    assert_eq!(kc.count("PUT", "/admin/realms/acme/users/8f7c5a0e-kc"), 0);
    assert_eq!(
        kc.count("POST", "/admin/realms/acme/users/8f7c5a0e-kc/logout"),
        1
    );
    kc.stop().await;
}

#[tokio::test]
async fn keycloak_user_not_found_cancels_with_a_note_or_dead_letters_when_configured() {
    let kek = kek();
    let kc = Provider::start(keycloak_script);
    let admin = admin(&kek);
    let who = user("u-2", "00u2", "nobody@example.com");
    let skip = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            keycloak_config(&kek, &kc.base, json!({})),
            who.clone(),
        ))
        .await;
    match &skip {
        Performed::Cancel(note) => {
            assert!(
                note.contains("keycloak has no user with username \"nobody@example.com\""),
                "{note}"
            );
        }
        other => panic!("{other:?}"),
    }
    let fail = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            keycloak_config(&kek, &kc.base, json!({"on_missing_user": "fail"})),
            who,
        ))
        .await;
    assert!(
        matches!(&fail, Performed::Refused(n) if n.contains("no user with")),
        "{fail:?}"
    );
    assert_eq!(
        kc.seen()
            .iter()
            .filter(|s| s.path.ends_with("/logout"))
            .count(),
        0
    );
    kc.stop().await;
}

#[tokio::test]
async fn keycloak_refetches_the_token_once_on_401_and_gives_up_on_a_second() {
    let kek = kek();
    // The first token is refused by the API; the second works.
    let kc =
        Provider::start(
            |seen: &Seen, before| match (seen.method.as_str(), seen.path.as_str()) {
                ("POST", KC_TOKEN) => token_answer(&format!("kc-token-{}", before + 1), 300),
                ("POST", "/admin/realms/acme/users/kc-id/logout") => {
                    if seen.header("authorization") == "Bearer kc-token-1" {
                        answer(401, json!({"error": "HTTP 401 Unauthorized"}))
                    } else {
                        empty(204)
                    }
                }
                _ => empty(500),
            },
        );
    let admin = admin(&kek);
    let config = keycloak_config(
        &kek,
        &kc.base,
        json!({"find_user_by": "id", "scim_attribute": "externalId"}),
    );
    let done = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            config.clone(),
            user("u-1", "kc-id", "ada"),
        ))
        .await;
    assert_eq!(verdict(&done), Verdict::Delivered, "{done:?}");
    assert_eq!(kc.count("POST", KC_TOKEN), 2);
    assert_eq!(kc.count("POST", "/admin/realms/acme/users/kc-id/logout"), 2);
    kc.stop().await;

    // An API that refuses every token: one refetch, then the 401 is permanent.
    let kc = Provider::start(|seen: &Seen, before| match seen.path.as_str() {
        KC_TOKEN => token_answer(&format!("kc-token-{}", before + 1), 300),
        _ => answer(401, json!({"error": "HTTP 401 Unauthorized"})),
    });
    let config = keycloak_config(
        &kek,
        &kc.base,
        json!({"find_user_by": "id", "scim_attribute": "externalId"}),
    );
    let refused = channel(&admin, KEYCLOAK)
        .perform(&claimed(KEYCLOAK, config, user("u-1", "kc-id", "ada")))
        .await;
    assert_eq!(exchange(&refused).status, Some(401));
    assert_eq!(verdict(&refused), Verdict::Permanent);
    assert!(
        excerpt(&refused).starts_with("[keycloak: log out the user]"),
        "{refused:?}"
    );
    assert_eq!(kc.count("POST", KC_TOKEN), 2);
    kc.stop().await;
}

#[tokio::test]
async fn keycloak_invalid_client_at_the_token_endpoint_is_permanent_and_says_so() {
    let kek = kek();
    let kc = Provider::start(keycloak_script);
    let admin = admin(&kek);
    let mut config = keycloak_config(&kek, &kc.base, json!({}));
    config["client_secret"] = json!(sealed(&kek, "client_secret", "wrong"));
    let done = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            config,
            user("u-1", "00u1", "ada@example.com"),
        ))
        .await;
    assert_eq!(exchange(&done).status, Some(401));
    assert_eq!(verdict(&done), Verdict::Permanent);
    let text = excerpt(&done);
    assert!(
        text.starts_with("[keycloak: get an access token]"),
        "{text}"
    );
    assert!(text.contains("check the client id and secret"), "{text}");
    assert!(text.contains("invalid_client"), "{text}");
    assert_eq!(kc.count("GET", "/admin/realms/acme/users"), 0);
    kc.stop().await;
}

#[tokio::test]
async fn keycloak_token_endpoint_outage_is_retried_shared_by_waiters_then_asked_again() {
    let kek = kek();
    let kc = Provider::start(|seen: &Seen, before| match seen.path.as_str() {
        KC_TOKEN if before == 0 => answer(503, json!({"error": "temporarily_unavailable"}))
            .after(Duration::from_millis(200)),
        KC_TOKEN => token_answer("kc-token", 300),
        _ => answer(500, json!({"error": "unknown_error"})),
    });
    let admin = admin(&kek);
    let config = keycloak_config(
        &kek,
        &kc.base,
        json!({"find_user_by": "id", "scim_attribute": "externalId"}),
    );
    let c = claimed(KEYCLOAK, config, user("u-1", "kc-id", "ada"));
    let keycloak = channel(&admin, KEYCLOAK);
    let first = futures_util::future::join_all((0..4).map(|_| keycloak.perform(&c))).await;
    for p in &first {
        assert_eq!(exchange(p).status, Some(503));
        assert_eq!(verdict(p), Verdict::Retryable, "{p:?}");
        assert!(excerpt(p).starts_with("[keycloak: get an access token]"));
    }
    assert_eq!(
        kc.count("POST", KC_TOKEN),
        1,
        "the waiters share the failed request"
    );
    tokio::time::sleep(Duration::from_millis(350)).await;
    // The token endpoint is asked again; now the API itself fails with a 5xx.
    let second = keycloak.perform(&c).await;
    assert_eq!(exchange(&second).status, Some(500));
    assert_eq!(verdict(&second), Verdict::Retryable);
    assert!(excerpt(&second).starts_with("[keycloak: log out the user]"));
    assert_eq!(kc.count("POST", KC_TOKEN), 2);
    kc.stop().await;
}

#[tokio::test]
async fn keycloak_unknown_id_is_a_missing_user_but_an_unknown_realm_is_a_dead_letter() {
    let kek = kek();
    let kc = Provider::start(|seen: &Seen, _| match seen.path.as_str() {
        KC_TOKEN => token_answer("kc-token", 300),
        "/admin/realms/acme/users/gone-id/logout" => {
            answer(404, json!({"error": "User not found"}))
        }
        _ => answer(404, json!({"error": "Realm not found."})),
    });
    let admin = admin(&kek);
    let by_id = |base: &str, realm: &str| {
        let mut c = keycloak_config(
            &kek,
            base,
            json!({"find_user_by": "id", "scim_attribute": "externalId"}),
        );
        c["realm"] = json!(realm);
        c
    };
    let gone = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            by_id(&kc.base, "acme"),
            user("u-1", "gone-id", "x"),
        ))
        .await;
    assert!(
        matches!(&gone, Performed::Cancel(n) if n.contains("keycloak has no user with id \"gone-id\"")),
        "{gone:?}"
    );
    let wrong_realm = channel(&admin, KEYCLOAK)
        .perform(&claimed(
            KEYCLOAK,
            by_id(&kc.base, "acme-typo"),
            user("u-1", "gone-id", "x"),
        ))
        .await;
    assert_eq!(exchange(&wrong_realm).status, Some(404));
    assert_eq!(verdict(&wrong_realm), Verdict::Permanent);
    assert!(
        excerpt(&wrong_realm).contains("Realm not found."),
        "{wrong_realm:?}"
    );
    kc.stop().await;
}

// ---------------------------------------------------------------------------------------
// Okta

const OKTA_TOKEN: &str = "/oauth2/v1/token";

fn okta_error(code: &str, summary: &str) -> Value {
    json!({
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae1a2b3c4d5e6",
        "errorCauses": []
    })
}

#[tokio::test]
async fn okta_private_key_jwt_token_then_revokes_sessions_and_oauth_tokens() {
    let kek = kek();
    let key = tokio::task::spawn_blocking(|| SigningKey::generate(SigningAlgorithm::RS256))
        .await
        .unwrap()
        .unwrap();
    let okta = Provider::start(
        |seen: &Seen, _| match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", OKTA_TOKEN) => answer(
                200,
                json!({"token_type": "Bearer", "expires_in": 3600, "access_token": "okta-at-1", "scope": "okta.users.manage"}),
            ),
            ("DELETE", "/api/v1/users/00u1ab2cd3EF4gh5i6/sessions") => empty(204),
            _ => answer(
                404,
                okta_error("E0000007", "Not found: Resource not found: x (User)"),
            ),
        },
    );
    let admin = admin(&kek);
    let config = json!({
        "org_url": okta.base,
        "client_id": "0oa1svc",
        "private_key": sealed(&kek, "private_key", &key.private_pkcs8_pem()),
        "key_id": "svc-key-1",
    });
    let done = channel(&admin, OKTA)
        .perform(&claimed(
            OKTA,
            config,
            user("u-1", "00u1ab2cd3EF4gh5i6", "ada@example.com"),
        ))
        .await;
    assert_eq!(exchange(&done).status, Some(204), "{done:?}");
    assert_eq!(verdict(&done), Verdict::Delivered);

    let seen = okta.seen();
    assert_eq!(seen.len(), 2);
    let token = &seen[0];
    assert!(token.is("POST", OKTA_TOKEN));
    assert_eq!(
        token.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    assert_eq!(
        token.header("authorization"),
        "",
        "private_key_jwt sends no client secret"
    );
    let form = token.form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["scope"], "okta.users.manage");
    assert_eq!(
        form["client_assertion_type"],
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    );
    assert_eq!(form.len(), 4);
    // The assertion, checked with the public key alone (RFC 7523 §3).
    let jwk = serde_json::to_value(key.public_jwk()).unwrap();
    let decoding = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap(),
        jwk["e"].as_str().unwrap(),
    )
    .unwrap();
    let token_url = format!("{}{OKTA_TOKEN}", okta.base);
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    validation.set_audience(&[&token_url]);
    validation.set_issuer(&["0oa1svc"]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    let decoded =
        jsonwebtoken::decode::<Value>(&form["client_assertion"], &decoding, &validation).unwrap();
    assert_eq!(decoded.header.kid.as_deref(), Some("svc-key-1"));
    let claims = decoded.claims;
    assert_eq!(claims["sub"], "0oa1svc");
    let lifetime = claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap();
    assert!(lifetime <= 3600, "{lifetime}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));

    let revoke = &seen[1];
    assert!(revoke.is("DELETE", "/api/v1/users/00u1ab2cd3EF4gh5i6/sessions"));
    assert_eq!(revoke.query, "oauthTokens=true");
    assert_eq!(revoke.header("authorization"), "Bearer okta-at-1");
    assert_eq!(revoke.header("accept"), "application/json");
    assert_eq!(revoke.body, "");
    okta.stop().await;
}

#[tokio::test]
async fn okta_an_unusable_private_key_is_a_dead_letter_that_says_so() {
    let kek = kek();
    let okta = Provider::start(|_: &Seen, _| empty(500));
    let admin = admin(&kek);
    let config = json!({
        "org_url": okta.base,
        "client_id": "0oa1svc",
        "private_key": sealed(&kek, "private_key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"),
    });
    let done = channel(&admin, OKTA)
        .perform(&claimed(OKTA, config, user("u-1", "00u1", "a")))
        .await;
    assert!(
        matches!(&done, Performed::Refused(n) if n.starts_with("okta: get an access token: the service app's private key")),
        "{done:?}"
    );
    assert!(okta.seen().is_empty());
    okta.stop().await;
}

#[tokio::test]
async fn okta_api_token_finds_the_user_by_login_then_revokes() {
    let kek = kek();
    let okta = Provider::start(|seen: &Seen, _| {
        if seen.header("authorization") != "SSWS 00aBcD-api-token" {
            return answer(401, okta_error("E0000011", "Invalid token provided"));
        }
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/api/v1/users/ada%40example.com") => answer(
                200,
                json!({
                    "id": "00ub0oNGTSWTBKOLGLNR",
                    "status": "ACTIVE",
                    "created": "2013-06-24T16:39:18.000Z",
                    // A real profile with custom attributes runs past the 2 KiB excerpt.
                    "profile": {"login": "ada@example.com", "email": "ada@example.com", "firstName": "Ada", "lastName": "Lovelace",
                                "costCenter": "x".repeat(6000)},
                    "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
                    "_links": {"self": {"href": "https://acme.okta.com/api/v1/users/00ub0oNGTSWTBKOLGLNR"}}
                }),
            ),
            ("DELETE", "/api/v1/users/00ub0oNGTSWTBKOLGLNR/sessions") => empty(204),
            _ => answer(
                404,
                okta_error("E0000007", "Not found: Resource not found: x (User)"),
            ),
        }
    });
    let admin = admin(&kek);
    let config = json!({
        "org_url": okta.base,
        "auth_method": "api_token",
        "api_token": sealed(&kek, "api_token", "00aBcD-api-token"),
        "find_user_by": "login",
        "scim_attribute": "userName",
    });
    let done = channel(&admin, OKTA)
        .perform(&claimed(OKTA, config, user("u-1", "", "ada@example.com")))
        .await;
    assert_eq!(exchange(&done).status, Some(204), "{done:?}");
    let seen = okta.seen();
    assert_eq!(seen.len(), 2, "no token request with an API token");
    assert_eq!(seen[1].query, "oauthTokens=true");
    assert!(
        seen.iter()
            .all(|s| s.header("authorization") == "SSWS 00aBcD-api-token")
    );
    okta.stop().await;
}

#[tokio::test]
async fn okta_429_is_retried_after_retry_after_and_other_4xx_are_permanent() {
    let kek = kek();
    let okta = Provider::start(|seen: &Seen, _| match seen.path.as_str() {
        "/api/v1/users/00u-limited/sessions" => answer(
            429,
            okta_error(
                "E0000047",
                "API call exceeded rate limit due to too many requests.",
            ),
        )
        .with("retry-after", "30")
        .with("x-rate-limit-limit", "600")
        .with("x-rate-limit-remaining", "0")
        .with("x-rate-limit-reset", "1767225600"),
        "/api/v1/users/00u-forbidden/sessions" => answer(
            403,
            okta_error(
                "E0000006",
                "You do not have permission to perform the requested action",
            ),
        ),
        _ => answer(
            404,
            okta_error("E0000007", "Not found: Resource not found: 00u-gone (User)"),
        ),
    });
    let admin = admin(&kek);
    let config = json!({
        "org_url": okta.base,
        "auth_method": "api_token",
        "api_token": sealed(&kek, "api_token", "tok"),
        "on_missing_user": "fail",
    });
    let okta_channel = channel(&admin, OKTA);
    let limited = okta_channel
        .perform(&claimed(
            OKTA,
            config.clone(),
            user("u-1", "00u-limited", "a"),
        ))
        .await;
    assert_eq!(verdict(&limited), Verdict::Retryable);
    assert_eq!(
        exchange(&limited).retry_after,
        Some(Duration::from_secs(30))
    );
    assert!(excerpt(&limited).contains("E0000047"));

    let forbidden = okta_channel
        .perform(&claimed(
            OKTA,
            config.clone(),
            user("u-1", "00u-forbidden", "a"),
        ))
        .await;
    assert_eq!(verdict(&forbidden), Verdict::Permanent);
    let text = excerpt(&forbidden);
    assert!(
        text.starts_with("[okta: revoke sessions]") && text.contains("E0000006"),
        "{text}"
    );

    let gone = okta_channel
        .perform(&claimed(OKTA, config, user("u-1", "00u-gone", "a")))
        .await;
    assert_eq!(exchange(&gone).status, Some(404));
    assert_eq!(verdict(&gone), Verdict::Permanent, "on_missing_user: fail");
    assert!(excerpt(&gone).contains("E0000007"));
    okta.stop().await;
}

// ---------------------------------------------------------------------------------------
// Microsoft Entra ID (Graph)

const ENTRA_TOKEN: &str = "/contoso.onmicrosoft.com/oauth2/v2.0/token";
const GRAPH_REVOKE: &str = "/v1.0/users/ada%40contoso.com/revokeSignInSessions";

fn entra_config(kek: &KeyEncryptionKey, base: &str) -> Value {
    json!({
        "tenant": "contoso.onmicrosoft.com",
        "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
        "client_secret": sealed(kek, "client_secret", "entra~s3cret"),
        "login_url": base,
        "graph_url": format!("{base}/v1.0"),
    })
}

fn graph_error(code: &str, message: &str) -> Value {
    json!({"error": {"code": code, "message": message, "innerError": {
        "date": "2026-12-02T10:00:00", "request-id": "b1b1", "client-request-id": "b1b1"}}})
}

/// Entra's token endpoint and Graph as documented; the token lives `expires_in` seconds.
fn entra_script(expires_in: u64, token_delay: Duration) -> impl Fn(&Seen, usize) -> Answer {
    move |seen: &Seen, before| match (seen.method.as_str(), seen.path.as_str()) {
        ("POST", ENTRA_TOKEN) => answer(
            200,
            json!({"token_type": "Bearer", "expires_in": expires_in, "ext_expires_in": expires_in,
                   "access_token": format!("eyJ0eXAi.graph-{}", before + 1)}),
        )
        .after(token_delay),
        ("POST", GRAPH_REVOKE) => answer(
            200,
            json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true}),
        ),
        ("POST", "/v1.0/users/busy%40contoso.com/revokeSignInSessions") => {
            answer(429, graph_error("TooManyRequests", "Too many requests"))
                .with("retry-after", "7")
        }
        ("POST", "/v1.0/users/down%40contoso.com/revokeSignInSessions") => answer(
            503,
            graph_error("serviceNotAvailable", "Service unavailable"),
        ),
        _ => answer(
            404,
            graph_error(
                "Request_ResourceNotFound",
                "Resource 'x' does not exist or one of its queried reference-property objects are not present.",
            ),
        ),
    }
}

#[tokio::test]
async fn entra_revokes_sign_in_sessions_with_a_graph_token_as_documented() {
    let kek = kek();
    let graph = Provider::start(entra_script(3599, Duration::ZERO));
    let admin = admin(&kek);
    let done = channel(&admin, ENTRA)
        .perform(&claimed(
            ENTRA,
            entra_config(&kek, &graph.base),
            user("u-1", "ada", "ada@contoso.com"),
        ))
        .await;
    assert_eq!(exchange(&done).status, Some(200), "{done:?}");
    assert_eq!(verdict(&done), Verdict::Delivered);
    assert!(excerpt(&done).contains("\"value\":true"));

    let seen = graph.seen();
    let token = &seen[0];
    assert!(token.is("POST", ENTRA_TOKEN));
    assert_eq!(
        token.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form = token.form();
    assert_eq!(form["client_id"], "6731de76-14a6-49ae-97bc-6eba6914391e");
    assert_eq!(form["scope"], "https://graph.microsoft.com/.default");
    assert_eq!(form["client_secret"], "entra~s3cret");
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form.len(), 4);
    let revoke = &seen[1];
    assert!(revoke.is("POST", GRAPH_REVOKE));
    assert_eq!(revoke.query, "");
    assert_eq!(revoke.header("authorization"), "Bearer eyJ0eXAi.graph-1");
    assert_eq!(revoke.header("content-length"), "0");
    assert_eq!(revoke.body, "");
    graph.stop().await;
}

// Graph answers 400 to `/users/$x@y.com`: such a UPN goes in parentheses and quotes, and
// a quote within it is doubled.
#[tokio::test]
async fn entra_a_upn_that_begins_with_a_dollar_is_a_quoted_key() {
    let kek = kek();
    let graph = Provider::start(|seen: &Seen, _| match seen.path.as_str() {
        ENTRA_TOKEN => token_answer("graph", 3599),
        "/v1.0/users('$o%27%27brien%40contoso.com')/revokeSignInSessions" => answer(
            200,
            json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": true}),
        ),
        _ => answer(
            400,
            graph_error("Request_BadRequest", "Invalid object identifier"),
        ),
    });
    let admin = admin(&kek);
    let done = channel(&admin, ENTRA)
        .perform(&claimed(
            ENTRA,
            entra_config(&kek, &graph.base),
            user("u-1", "x", "$o'brien@contoso.com"),
        ))
        .await;
    assert_eq!(verdict(&done), Verdict::Delivered, "{done:?}");
    let seen = graph.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    graph.stop().await;
}

#[tokio::test]
async fn entra_a_200_with_value_false_is_not_taken_as_revoked() {
    let kek = kek();
    let graph = Provider::start(|seen: &Seen, _| match seen.path.as_str() {
        ENTRA_TOKEN => token_answer("graph", 3599),
        _ => answer(
            200,
            json!({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Edm.Boolean", "value": false}),
        ),
    });
    let admin = admin(&kek);
    let done = channel(&admin, ENTRA)
        .perform(&claimed(
            ENTRA,
            entra_config(&kek, &graph.base),
            user("u-1", "x", "ada@contoso.com"),
        ))
        .await;
    assert_eq!(verdict(&done), Verdict::Retryable, "{done:?}");
    assert!(
        exchange(&done)
            .error
            .as_deref()
            .is_some_and(|e| e.contains("value\": false"))
    );
    graph.stop().await;
}

#[tokio::test]
async fn entra_concurrent_deliveries_share_one_token_request() {
    let kek = kek();
    let graph = Provider::start(entra_script(3599, Duration::from_millis(300)));
    let admin = admin(&kek);
    let entra = channel(&admin, ENTRA);
    // One target (one config) and eight users.
    let config = entra_config(&kek, &graph.base);
    let claims: Vec<Claimed> = (0..8)
        .map(|i| {
            claimed(
                ENTRA,
                config.clone(),
                user(&format!("u-{i}"), "x", "ada@contoso.com"),
            )
        })
        .collect();
    let results = futures_util::future::join_all(claims.iter().map(|c| entra.perform(c))).await;
    for r in &results {
        assert_eq!(verdict(r), Verdict::Delivered, "{r:?}");
    }
    // And a later one reuses it too.
    let later = entra.perform(&claims[0]).await;
    assert_eq!(verdict(&later), Verdict::Delivered);
    assert_eq!(graph.count("POST", ENTRA_TOKEN), 1);
    assert_eq!(graph.count("POST", GRAPH_REVOKE), 9);
    graph.stop().await;
}

#[tokio::test]
async fn entra_token_is_renewed_before_it_expires() {
    let kek = kek();
    // expires_in 1 s: renewed after half its life.
    let graph = Provider::start(entra_script(1, Duration::ZERO));
    let admin = admin(&kek);
    let entra = channel(&admin, ENTRA);
    let c = claimed(
        ENTRA,
        entra_config(&kek, &graph.base),
        user("u-1", "x", "ada@contoso.com"),
    );
    assert_eq!(verdict(&entra.perform(&c).await), Verdict::Delivered);
    assert_eq!(verdict(&entra.perform(&c).await), Verdict::Delivered);
    assert_eq!(graph.count("POST", ENTRA_TOKEN), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(verdict(&entra.perform(&c).await), Verdict::Delivered);
    assert_eq!(graph.count("POST", ENTRA_TOKEN), 2);
    let last = graph.seen().pop().unwrap();
    assert_eq!(last.header("authorization"), "Bearer eyJ0eXAi.graph-2");
    graph.stop().await;
}

#[tokio::test]
async fn entra_throttling_outage_missing_user_and_bad_secret() {
    let kek = kek();
    let graph = Provider::start(entra_script(3599, Duration::ZERO));
    let admin = admin(&kek);
    let entra = channel(&admin, ENTRA);
    let config = entra_config(&kek, &graph.base);

    let busy = entra
        .perform(&claimed(
            ENTRA,
            config.clone(),
            user("u-1", "x", "busy@contoso.com"),
        ))
        .await;
    assert_eq!(exchange(&busy).status, Some(429));
    assert_eq!(verdict(&busy), Verdict::Retryable);
    assert_eq!(exchange(&busy).retry_after, Some(Duration::from_secs(7)));
    assert!(excerpt(&busy).starts_with("[entra: revoke sign-in sessions]"));

    let down = entra
        .perform(&claimed(
            ENTRA,
            config.clone(),
            user("u-1", "x", "down@contoso.com"),
        ))
        .await;
    assert_eq!(verdict(&down), Verdict::Retryable);

    let gone = entra
        .perform(&claimed(
            ENTRA,
            config.clone(),
            user("u-1", "x", "gone@contoso.com"),
        ))
        .await;
    assert!(
        matches!(&gone, Performed::Cancel(n) if n.contains("entra has no user with id or userPrincipalName \"gone@contoso.com\"")),
        "{gone:?}"
    );

    let no_upn = entra
        .perform(&claimed(
            ENTRA,
            config,
            json!({"id": "u-9", "externalId": "x"}),
        ))
        .await;
    assert!(
        matches!(&no_upn, Performed::Refused(n) if n.contains("has no userName value")),
        "{no_upn:?}"
    );
    graph.stop().await;

    // AADSTS7000215: the secret is wrong. Documented as 401 invalid_client.
    let login = Provider::start(|_: &Seen, _| {
        answer(
            401,
            json!({
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                "error_codes": [7000215],
                "timestamp": "2026-12-02 10:00:00Z",
                "trace_id": "t", "correlation_id": "c"
            }),
        )
    });
    let refused = entra
        .perform(&claimed(
            ENTRA,
            entra_config(&kek, &login.base),
            user("u-1", "x", "ada@contoso.com"),
        ))
        .await;
    assert_eq!(verdict(&refused), Verdict::Permanent);
    let text = excerpt(&refused);
    assert!(
        text.starts_with(
            "[entra: get an access token] the provider refused deprov's client credentials"
        ),
        "{text}"
    );
    assert!(text.contains("AADSTS7000215"));
    assert_eq!(login.seen().len(), 1, "no Graph call without a token");
    login.stop().await;
}

// ---------------------------------------------------------------------------------------
// Auth0

fn auth0_config(kek: &KeyEncryptionKey, base: &str, extra: Value) -> Value {
    let mut config = json!({
        "domain": "acme.eu.auth0.com",
        "base_url": base,
        "client_id": "m2m-client",
        "client_secret": sealed(kek, "client_secret", "auth0-s3cret"),
    });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    config
}

fn auth0_error(status: u16, error: &str, message: &str, code: &str) -> Value {
    json!({"statusCode": status, "error": error, "message": message, "errorCode": code})
}

#[tokio::test]
async fn auth0_deletes_sessions_then_refresh_tokens() {
    let kek = kek();
    let auth0 = Provider::start(|seen: &Seen, _| {
        match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", "/oauth/token") => answer(
                200,
                json!({"access_token": "auth0-mgmt-1", "scope": "delete:sessions delete:refresh_tokens",
                   "expires_in": 86400, "token_type": "Bearer"}),
            ),
            ("DELETE", "/api/v2/users/auth0%7C5f7c8ec7c33c6c004bbafe82/sessions")
            | ("DELETE", "/api/v2/users/auth0%7C5f7c8ec7c33c6c004bbafe82/refresh-tokens") => {
                empty(202)
            }
            _ => answer(
                404,
                auth0_error(
                    404,
                    "Not Found",
                    "The user does not exist.",
                    "inexistent_user",
                ),
            ),
        }
    });
    let admin = admin(&kek);
    let done = channel(&admin, AUTH0)
        .perform(&claimed(
            AUTH0,
            auth0_config(&kek, &auth0.base, json!({})),
            user("u-1", "auth0|5f7c8ec7c33c6c004bbafe82", "ada@example.com"),
        ))
        .await;
    assert_eq!(exchange(&done).status, Some(202), "{done:?}");
    assert_eq!(verdict(&done), Verdict::Delivered);

    let seen = auth0.seen();
    assert_eq!(seen.len(), 3);
    let token = &seen[0];
    assert!(token.is("POST", "/oauth/token"));
    assert_eq!(
        token.header("content-type"),
        "application/x-www-form-urlencoded"
    );
    let form = token.form();
    assert_eq!(form["grant_type"], "client_credentials");
    assert_eq!(form["client_id"], "m2m-client");
    assert_eq!(form["client_secret"], "auth0-s3cret");
    assert_eq!(form["audience"], "https://acme.eu.auth0.com/api/v2/");
    assert_eq!(form.len(), 4);
    assert!(seen[1].is(
        "DELETE",
        "/api/v2/users/auth0%7C5f7c8ec7c33c6c004bbafe82/sessions"
    ));
    assert!(seen[2].is(
        "DELETE",
        "/api/v2/users/auth0%7C5f7c8ec7c33c6c004bbafe82/refresh-tokens"
    ));
    for call in &seen[1..] {
        assert_eq!(call.header("authorization"), "Bearer auth0-mgmt-1");
        assert_eq!(call.query, "");
        assert_eq!(call.body, "");
    }
    auth0.stop().await;
}

#[tokio::test]
async fn auth0_a_failed_second_call_is_retried_and_the_retry_redoes_both() {
    let kek = kek();
    let auth0 = Provider::start(|seen: &Seen, before| match seen.path.as_str() {
        "/oauth/token" => token_answer("auth0-mgmt", 86400),
        "/api/v2/users/auth0%7C1/sessions" => empty(202),
        "/api/v2/users/auth0%7C1/refresh-tokens" if before == 0 => answer(
            429,
            auth0_error(
                429,
                "Too Many Requests",
                "Global limit has been reached",
                "too_many_requests",
            ),
        )
        .with("retry-after", "12")
        .with("x-ratelimit-limit", "50")
        .with("x-ratelimit-remaining", "0")
        .with("x-ratelimit-reset", "1767225600"),
        "/api/v2/users/auth0%7C1/refresh-tokens" => empty(202),
        _ => empty(500),
    });
    let admin = admin(&kek);
    let c = claimed(
        AUTH0,
        auth0_config(&kek, &auth0.base, json!({})),
        user("u-1", "auth0|1", "a"),
    );
    let first = channel(&admin, AUTH0).perform(&c).await;
    assert_eq!(verdict(&first), Verdict::Retryable);
    assert_eq!(exchange(&first).retry_after, Some(Duration::from_secs(12)));
    assert!(
        excerpt(&first).starts_with("[auth0: delete refresh tokens]"),
        "{first:?}"
    );
    let retry = channel(&admin, AUTH0).perform(&c).await;
    assert_eq!(verdict(&retry), Verdict::Delivered, "{retry:?}");
    assert_eq!(auth0.count("DELETE", "/api/v2/users/auth0%7C1/sessions"), 2);
    assert_eq!(
        auth0.count("DELETE", "/api/v2/users/auth0%7C1/refresh-tokens"),
        2
    );
    auth0.stop().await;
}

#[tokio::test]
async fn auth0_by_email_revokes_every_user_holding_it_and_skips_unknown_users() {
    let kek = kek();
    let auth0 = Provider::start(|seen: &Seen, _| {
        match (seen.method.as_str(), seen.path.as_str()) {
            ("POST", "/oauth/token") => token_answer("auth0-mgmt", 86400),
            ("GET", "/api/v2/users-by-email") if seen.query == "email=ada%40example.com" => answer(
                200,
                json!([
                    {"user_id": "auth0|1", "email": "ada@example.com", "identities": [{"connection": "Username-Password-Authentication"}]},
                    {"user_id": "samlp|corp|ada@example.com", "email": "ada@example.com", "identities": [{"connection": "corp"}]}
                ]),
            ),
            ("GET", "/api/v2/users-by-email") => answer(200, json!([])),
            ("DELETE", _)
                if seen.path.starts_with("/api/v2/users/auth0%7C1/")
                    || seen
                        .path
                        .starts_with("/api/v2/users/samlp%7Ccorp%7Cada%40example.com/") =>
            {
                empty(202)
            }
            _ => answer(
                404,
                auth0_error(
                    404,
                    "Not Found",
                    "The user does not exist.",
                    "inexistent_user",
                ),
            ),
        }
    });
    let admin = admin(&kek);
    let by_email = auth0_config(
        &kek,
        &auth0.base,
        json!({"find_user_by": "email", "scim_attribute": "emails.primary"}),
    );
    let done = channel(&admin, AUTH0)
        .perform(&claimed(
            AUTH0,
            by_email.clone(),
            user("u-1", "x", "ada@example.com"),
        ))
        .await;
    assert_eq!(verdict(&done), Verdict::Delivered, "{done:?}");
    assert_eq!(
        auth0.seen().iter().filter(|s| s.method == "DELETE").count(),
        4
    );
    let nobody = channel(&admin, AUTH0)
        .perform(&claimed(
            AUTH0,
            by_email,
            user("u-2", "x", "nobody@example.com"),
        ))
        .await;
    assert!(matches!(&nobody, Performed::Cancel(_)), "{nobody:?}");
    let unknown_id = channel(&admin, AUTH0)
        .perform(&claimed(
            AUTH0,
            auth0_config(&kek, &auth0.base, json!({})),
            user("u-3", "auth0|404", "x"),
        ))
        .await;
    assert!(
        matches!(&unknown_id, Performed::Cancel(n) if n.contains("auth0 has no user with user_id \"auth0|404\"")),
        "{unknown_id:?}"
    );
    auth0.stop().await;
}

// ---------------------------------------------------------------------------------------
// Settings

#[test]
fn configs_are_validated_with_messages_that_say_what_to_fix() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let secret = sealed(&kek, "client_secret", "s");
    let dev = AddressPolicy::AllowInsecure;
    let strict = AddressPolicy::Strict;
    let err = |kind: &str, config: Value, policy| {
        validate_config_for(kind, &config, policy)
            .err()
            .unwrap_or_default()
    };

    let kc = json!({"base_url": "https://sso.example.com", "realm": "acme", "client_id": "deprov", "client_secret": secret});
    assert_eq!(validate_config_for(KEYCLOAK, &kc, strict), Ok(()));
    let mut plain = kc.clone();
    plain["client_secret"] = json!("not-sealed-secret");
    assert!(err(KEYCLOAK, plain, strict).contains("must be sealed"));
    let mut attr = kc.clone();
    attr["find_user_by"] = json!("attribute");
    assert!(err(KEYCLOAK, attr, strict).contains("attribute is required"));
    let mut typo = kc.clone();
    typo["disable_users"] = json!(true);
    assert!(err(KEYCLOAK, typo, strict).contains("unknown field `disable_users`"));
    let mut http = kc.clone();
    http["base_url"] = json!("http://127.0.0.1:8080");
    assert!(err(KEYCLOAK, http.clone(), strict).contains("must use https"));
    assert_eq!(validate_config_for(KEYCLOAK, &http, dev), Ok(()));
    // The shape-only hook leaves the policy to the caller.
    assert_eq!(validate_config(KEYCLOAK, &http), Ok(()));

    let okta =
        json!({"org_url": "https://acme.okta.com", "client_id": "0oa1", "private_key": secret});
    assert_eq!(validate_config_for(OKTA, &okta, strict), Ok(()));
    assert!(
        err(
            OKTA,
            json!({"org_url": "https://acme.okta.com", "client_id": "0oa1"}),
            strict
        )
        .contains("private_key is required")
    );
    assert!(
        err(
            OKTA,
            json!({"org_url": "https://acme.okta.com", "auth_method": "api_token"}),
            strict
        )
        .contains("api_token is required")
    );

    let entra =
        json!({"tenant": "contoso.onmicrosoft.com", "client_id": "c", "client_secret": secret});
    assert_eq!(validate_config_for(ENTRA, &entra, strict), Ok(()));
    let mut metadata = entra.clone();
    metadata["graph_url"] = json!("http://169.254.169.254/v1.0");
    assert!(err(ENTRA, metadata, dev).contains("never calls"));

    let auth0 = json!({"domain": "acme.eu.auth0.com", "client_id": "c", "client_secret": secret});
    assert_eq!(validate_config_for(AUTH0, &auth0, strict), Ok(()));
    let mut scheme = auth0.clone();
    scheme["domain"] = json!("https://acme.eu.auth0.com");
    assert!(err(AUTH0, scheme, strict).contains("must be a host name"));
    let mut mapping = auth0.clone();
    mapping["scim_attribute"] = json!("emails[type eq \"work\"]");
    assert!(err(AUTH0, mapping, strict).contains("scim_attribute"));

    assert!(err("ldap", json!({}), strict).contains("not a provider kind"));
}

#[test]
fn debug_output_never_shows_a_secret() {
    let kek = KeyEncryptionKey::generate().unwrap();
    let config: keycloak::KeycloakConfig = serde_json::from_value(json!({
        "base_url": "https://sso.example.com", "realm": "acme", "client_id": "deprov",
        "client_secret": sealed(&kek, "client_secret", "s")
    }))
    .unwrap();
    let shown = format!("{config:?}");
    assert!(shown.contains("Sealed(…)"), "{shown}");
    assert!(!shown.contains(&config.client_secret.0), "{shown}");
}

#[tokio::test]
async fn a_target_changed_after_the_token_was_cached_gets_a_new_token() {
    let kek = kek();
    let graph = Provider::start(entra_script(3599, Duration::ZERO));
    let admin = admin(&kek);
    let entra = channel(&admin, ENTRA);
    let mut c = claimed(
        ENTRA,
        entra_config(&kek, &graph.base),
        user("u-1", "x", "ada@contoso.com"),
    );
    assert_eq!(verdict(&entra.perform(&c).await), Verdict::Delivered);
    if let Some(t) = c.target.as_mut() {
        let t = Arc::make_mut(t);
        t.config["client_id"] = json!("a-new-client");
        t.updated_at = 2;
    }
    assert_eq!(verdict(&entra.perform(&c).await), Verdict::Delivered);
    assert_eq!(graph.count("POST", ENTRA_TOKEN), 2);
    graph.stop().await;
}

// ---------------------------------------------------------------------------------------
// Through the real worker and store, on SQLite and PostgreSQL.

mod through_the_worker {
    use deprov_core::TenantName;
    use deprov_core::scim::EventKind;
    use deprov_store::outbox::{self, EnqueueEvent};
    use deprov_store::{Store, db_test, now_millis};
    use sea_orm::{ActiveModelTrait, Set};

    use super::*;
    use crate::worker::{Worker, WorkerConfig};

    /// Writes a deactivation event and its deliveries in one transaction, as a SCIM
    /// change does.
    async fn deactivation(
        store: &Store,
        tenant_id: &str,
        snapshot: Value,
    ) -> anyhow::Result<String> {
        let txn = store.begin_write().await?;
        let id = uuid::Uuid::now_v7().to_string();
        let user_id = snapshot["id"].as_str().unwrap_or("u").to_owned();
        event::ActiveModel {
            id: Set(id.clone()),
            tenant_id: Set(tenant_id.to_owned()),
            kind: Set(EventKind::Deactivated.as_str().to_owned()),
            user_id: Set(user_id.clone()),
            user_snapshot: Set(snapshot),
            group_id: Set(None),
            group_display_name: Set(None),
            request_id: Set("req-1".into()),
            scim_method: Set("PATCH".into()),
            scim_path: Set(format!("/scim/v2/acme/Users/{user_id}")),
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
                user_id: &user_id,
                group: None,
            }],
        )
        .await?;
        store.commit(txn).await?;
        Ok(id)
    }

    db_test!(
        entra_deliveries_are_settled_by_the_worker_as_the_provider_answered,
        |store: Store, _url| async move {
            let kek = kek();
            let graph = Provider::start(entra_script(3599, Duration::ZERO));
            let tenant_id = store
                .create_tenant(&TenantName::parse("acme")?, "test")
                .await?
                .tenant
                .id;
            let now = now_millis();
            target::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                tenant_id: Set(tenant_id.clone()),
                kind: Set(ENTRA.to_owned()),
                client_id: Set("6731de76-14a6-49ae-97bc-6eba6914391e".to_owned()),
                config: Set(json!({
                    "tenant": "contoso.onmicrosoft.com",
                    "client_id": "6731de76-14a6-49ae-97bc-6eba6914391e",
                    "client_secret": seal_secret(&kek, &tenant_id, "client_secret", "entra~s3cret")?,
                    "login_url": graph.base,
                    "graph_url": format!("{}/v1.0", graph.base),
                })),
                enabled: Set(true),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(store.writer())
            .await?;
            let ok = deactivation(&store, &tenant_id, user("u-1", "x", "ada@contoso.com")).await?;
            let busy =
                deactivation(&store, &tenant_id, user("u-2", "x", "busy@contoso.com")).await?;
            let gone =
                deactivation(&store, &tenant_id, user("u-3", "x", "gone@contoso.com")).await?;

            let admin = admin(&kek);
            let worker = Worker::new(
                store.clone(),
                WorkerConfig {
                    owner: "w1".into(),
                    ..WorkerConfig::default()
                },
            )
            .with_channel(ENTRA, channel(&admin, ENTRA));
            assert_eq!(worker.run_once().await?, 3);

            let trail = |id: String| {
                let store = store.clone();
                async move {
                    let t = store
                        .event_trail(&id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("no trail"))?;
                    anyhow::Ok(
                        t.deliveries
                            .into_iter()
                            .next()
                            .ok_or_else(|| anyhow::anyhow!("no delivery"))?,
                    )
                }
            };
            let ok = trail(ok).await?;
            assert_eq!(ok.delivery.status, "delivered");
            assert_eq!(ok.attempts.len(), 1);
            assert_eq!(ok.attempts[0].http_status, Some(200));

            let busy = trail(busy).await?;
            assert_eq!(busy.delivery.status, "retrying");
            assert_eq!(busy.attempts[0].http_status, Some(429));
            let last_error = busy.delivery.last_error.clone().unwrap_or_default();
            assert!(
                last_error.starts_with("HTTP 429: [entra: revoke sign-in sessions]"),
                "{last_error}"
            );
            // Retry-After: 7 is honoured.
            assert!(busy.delivery.next_attempt_at - now_millis() > 6_000);

            let gone = trail(gone).await?;
            assert_eq!(gone.delivery.status, "cancelled");
            let note = gone.attempts[0].error.clone().unwrap_or_default();
            assert!(note.contains("entra has no user"), "{note}");

            assert_eq!(graph.count("POST", ENTRA_TOKEN), 1);
            graph.stop().await;
            Ok(())
        }
    );
}
