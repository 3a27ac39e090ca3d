//! The web console (`/console`) against the real app: sign-in with the admin token (and
//! nothing else), pages without a session going to sign-in, CSRF and `Origin` checks on
//! forms (403 and nothing changed), idle and absolute session expiry, sign-out, audit
//! records; and the store's overview aggregates (events per window, target health).

use std::time::Duration;

use deprov_store::outbox::{AttemptRecord, DEAD, RETRYING, Settle};
use deprov_store::{Store, db_test, now_millis};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};

use crate::admin::{bury_all, deactivate};
use crate::delivery::Receiver;
use crate::scim_harness::App;

const ADMIN: &str = "configured-admin-token-for-the-console-0123456789";

async fn start(
    store: Store,
    tune: impl FnOnce(&mut deprov_server::config::Config),
) -> anyhow::Result<App> {
    App::start_with(store, |c| {
        c.admin_token = Some(deprov_core::Secret::new(ADMIN));
        c.allow_insecure_targets = true;
        tune(c);
    })
    .await
}

/// `pairs` as an `application/x-www-form-urlencoded` body on `req`.
fn form(req: reqwest::RequestBuilder, pairs: &[(&str, &str)]) -> reqwest::RequestBuilder {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    req.header("content-type", "application/x-www-form-urlencoded")
        .body(body)
}

/// A client that shows redirects instead of following them, and keeps no cookies.
fn client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?)
}

struct Page {
    status: u16,
    location: Option<String>,
    set_cookie: Option<String>,
    text: String,
}

async fn send(req: reqwest::RequestBuilder) -> anyhow::Result<Page> {
    let res = req.send().await?;
    let header = |name| {
        res.headers()
            .get(name)
            .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let (location, set_cookie) = (header(LOCATION), header(SET_COOKIE));
    Ok(Page {
        status: res.status().as_u16(),
        location,
        set_cookie,
        text: res.text().await?,
    })
}

/// A signed-in browser, as far as the server can tell: the cookie and the CSRF token.
struct Browser {
    http: reqwest::Client,
    root: String,
    cookie: String,
}

impl Browser {
    async fn sign_in(app: &App, token: &str) -> anyhow::Result<(Page, Option<Self>)> {
        let http = client()?;
        let page = send(form(
            http.post(format!("{}/console/login", app.root)),
            &[("token", token)],
        ))
        .await?;
        let cookie = page
            .set_cookie
            .as_deref()
            .and_then(|c| c.split(';').next())
            .map(str::to_owned);
        let browser = cookie.map(|cookie| Self {
            http,
            root: app.root.clone(),
            cookie,
        });
        Ok((page, browser))
    }

    async fn get(&self, path: &str) -> anyhow::Result<Page> {
        send(
            self.http
                .get(format!("{}{path}", self.root))
                .header(COOKIE, &self.cookie),
        )
        .await
    }

    async fn post(
        &self,
        path: &str,
        pairs: &[(&str, &str)],
        origin: Option<&str>,
    ) -> anyhow::Result<Page> {
        let mut req = form(
            self.http
                .post(format!("{}{path}", self.root))
                .header(COOKIE, &self.cookie),
            pairs,
        );
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        send(req).await
    }

    /// The CSRF token of this session, as its pages carry it.
    async fn csrf(&self) -> anyhow::Result<String> {
        let page = self.get("/console/keys").await?;
        let marker = "name=\"csrf\" value=\"";
        let start = page
            .text
            .find(marker)
            .ok_or_else(|| anyhow::anyhow!("no CSRF field in {}", page.text))?
            + marker.len();
        Ok(page.text[start..start + 64].to_owned())
    }
}

/// A forged form: what is wrong with it, its fields, its `Origin`.
type Forged<'a> = (&'a str, Vec<(&'a str, &'a str)>, Option<&'a str>);

#[track_caller]
fn assert_to_sign_in(page: &Page) {
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.location.as_deref(), Some("/console/login"));
}

async fn audit_actions(store: &Store) -> anyhow::Result<Vec<(String, String)>> {
    let (_, rows) = store.audit_page(None, 1000, 0).await?;
    Ok(rows.into_iter().map(|a| (a.actor, a.action)).collect())
}

db_test!(
    pages_and_forms_without_a_session_go_to_sign_in,
    |store: Store, _url| async move {
        let app = start(store, |_| {}).await?;
        let http = client()?;
        for path in [
            "/console",
            "/console/events",
            "/console/events/x",
            "/console/keys",
            "/console/dead-letters",
        ] {
            assert_to_sign_in(&send(http.get(format!("{}{path}", app.root))).await?);
        }
        let forged = send(http.get(format!("{}/console", app.root)).header(
            COOKIE,
            "deprov_console=deprov_session_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ))
        .await?;
        assert_to_sign_in(&forged);
        let keys_before = app.store.list_signing_keys().await?.len();
        let post = send(form(
            http.post(format!("{}/console/keys/rotate", app.root)),
            &[("alg", "RS256")],
        ))
        .await?;
        assert_to_sign_in(&post);
        assert_eq!(app.store.list_signing_keys().await?.len(), keys_before);
        let login = send(http.get(format!("{}/console/login", app.root))).await?;
        assert_eq!(login.status, 200);
        assert!(login.text.contains("name=\"token\""));
        app.stop().await
    }
);

db_test!(
    only_an_admin_token_signs_in_and_a_refusal_says_nothing_more,
    |store: Store, _url| async move {
        let app = start(store, |_| {}).await?;
        let scim = app.token.clone();
        let near_miss = &ADMIN[..ADMIN.len() - 1];
        for wrong in ["", "nope", near_miss, scim.as_str()] {
            let (page, browser) = Browser::sign_in(&app, wrong).await?;
            assert_eq!(page.status, 401, "{wrong:?}: {}", page.text);
            assert!(browser.is_none(), "{wrong:?} got a session cookie");
            assert!(page.text.contains("not a valid admin token"));
            assert!(
                !page.text.contains(wrong) || wrong.is_empty(),
                "the refused token is echoed"
            );
        }
        let (page, browser) = Browser::sign_in(&app, ADMIN).await?;
        assert_eq!(page.status, 303, "{}", page.text);
        assert_eq!(page.location.as_deref(), Some("/console"));
        let cookie = page.set_cookie.unwrap_or_default();
        for attr in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(cookie.contains(attr), "{cookie}");
        }
        assert!(
            !cookie.contains("Secure"),
            "plain http must not set Secure: {cookie}"
        );
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let overview = browser.get("/console").await?;
        assert_eq!(overview.status, 200, "{}", overview.text);
        assert!(
            !overview.text.contains(ADMIN),
            "the admin token is rendered"
        );
        assert!(overview.text.contains("admin:DEPROV_ADMIN_TOKEN"));
        // A stored admin token signs in too, as it authenticates the admin API.
        let (_, issued) = app.store.issue_admin_token(Some("ops"), "test").await?;
        let (page, _) = Browser::sign_in(&app, issued.token.expose()).await?;
        assert_eq!(page.status, 303, "{}", page.text);
        let actions = audit_actions(&app.store).await?;
        assert!(actions.contains(&("admin:DEPROV_ADMIN_TOKEN".into(), "console.sign_in".into())));
        assert!(actions.contains(&(format!("admin:{}", issued.hint), "console.sign_in".into())));
        app.stop().await
    }
);

db_test!(
    forms_without_the_right_csrf_token_or_from_another_origin_are_refused_and_change_nothing,
    |store: Store, _url| async move {
        let app = start(store.clone(), |_| {}).await?;
        app.store
            .add_relying_party(
                "acme",
                deprov_server::admin::views::RelyingPartyRequest {
                    client_id: "wiki".into(),
                    backchannel_logout_uri: "http://127.0.0.1:9/bcl".into(),
                    subject: "userName".into(),
                    groups: vec![],
                    alg: "RS256".into(),
                    require_sid: false,
                    issuer: None,
                    kid: None,
                    enabled: true,
                }
                .validate(&deprov_server::config::Config {
                    allow_insecure_targets: true,
                    ..Default::default()
                })?,
                "test",
            )
            .await?;
        deactivate(&app, &app.base, &app.token, "ada").await?;
        let dead = bury_all(&store).await?;
        let id = dead.first().cloned().unwrap_or_default();
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let csrf = browser.csrf().await?;
        let retry = format!("/console/deliveries/{id}/retry");
        let audit_before = audit_actions(&store).await?.len();
        let wrong = "0".repeat(64);
        let cases: Vec<Forged> = vec![
            ("no token", vec![], None),
            ("empty token", vec![("csrf", "")], None),
            ("wrong token", vec![("csrf", wrong.as_str())], None),
            (
                "right token, foreign origin",
                vec![("csrf", csrf.as_str())],
                Some("https://evil.example"),
            ),
            (
                "right token, null origin",
                vec![("csrf", csrf.as_str())],
                Some("null"),
            ),
        ];
        for (what, form, origin) in &cases {
            let page = browser.post(&retry, form, *origin).await?;
            assert_eq!(page.status, 403, "{what}: {}", page.text);
            let page = browser
                .post("/console/dead-letters/retry-all", form, *origin)
                .await?;
            assert_eq!(page.status, 403, "{what}: {}", page.text);
            let page = browser
                .post(
                    "/console/tenants",
                    &[form.clone(), vec![("name", "evil")]].concat(),
                    *origin,
                )
                .await?;
            assert_eq!(page.status, 403, "{what}: {}", page.text);
        }
        assert_eq!(
            store.delivery(&id).await?.map(|d| d.status).as_deref(),
            Some(DEAD)
        );
        assert!(store.find_tenant("evil").await?.is_none());
        assert_eq!(
            audit_actions(&store).await?.len(),
            audit_before,
            "a refused form wrote to the audit log"
        );

        // Another session's token is no good either.
        let (_, other) = Browser::sign_in(&app, ADMIN).await?;
        let other_csrf = other
            .ok_or_else(|| anyhow::anyhow!("no cookie"))?
            .csrf()
            .await?;
        assert_ne!(other_csrf, csrf);
        let page = browser
            .post(&retry, &[("csrf", other_csrf.as_str())], None)
            .await?;
        assert_eq!(page.status, 403);

        // With its own token, from its own origin, the form works and is audited.
        let page = browser
            .post(&retry, &[("csrf", csrf.as_str())], Some(&app.root))
            .await?;
        assert_eq!(page.status, 303, "{}", page.text);
        assert_eq!(
            page.location.as_deref(),
            Some("/console/dead-letters?msg=redriven")
        );
        assert_eq!(
            store.delivery(&id).await?.map(|d| d.status).as_deref(),
            Some(RETRYING)
        );
        let actions = audit_actions(&store).await?;
        assert_eq!(
            actions.first(),
            Some(&("admin:DEPROV_ADMIN_TOKEN".into(), "delivery.redrive".into()))
        );
        // Re-driving it again is a conflict, not a 500.
        let page = browser
            .post(&retry, &[("csrf", csrf.as_str())], None)
            .await?;
        assert_eq!(page.status, 409, "{}", page.text);
        let page = browser
            .post(
                "/console/deliveries/nosuch/retry",
                &[("csrf", csrf.as_str())],
                None,
            )
            .await?;
        assert_eq!(page.status, 404, "{}", page.text);
        app.stop().await
    }
);

db_test!(sessions_end_when_idle, |store: Store, _url| async move {
    let app = start(store, |c| c.console.idle_timeout_secs = 1).await?;
    let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
    let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
    // Used more often than the idle timeout: still signed in.
    for _ in 0..4 {
        assert_eq!(browser.get("/console/keys").await?.status, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_to_sign_in(&browser.get("/console").await?);
    app.stop().await
});

db_test!(
    sessions_end_at_their_absolute_lifetime_however_busy,
    |store: Store, _url| async move {
        let app = start(store, |c| c.console.session_lifetime_secs = 2).await?;
        let (page, browser) = Browser::sign_in(&app, ADMIN).await?;
        assert!(page.set_cookie.unwrap_or_default().contains("Max-Age=2"));
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        for _ in 0..4 {
            assert_eq!(browser.get("/console/keys").await?.status, 200);
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_to_sign_in(&browser.get("/console/keys").await?);
        app.stop().await
    }
);

db_test!(
    sign_out_ends_the_session_for_every_replica,
    |store: Store, _url| async move {
        let app = start(store.clone(), |_| {}).await?;
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let csrf = browser.csrf().await?;
        // Sign-out is a form like any other: no token, no sign-out.
        assert_eq!(
            browser.post("/console/logout", &[], None).await?.status,
            403
        );
        assert_eq!(browser.get("/console").await?.status, 200);
        let page = browser
            .post("/console/logout", &[("csrf", csrf.as_str())], None)
            .await?;
        assert_eq!(page.status, 303);
        assert_eq!(
            page.location.as_deref(),
            Some("/console/login?signed_out=1")
        );
        assert!(page.set_cookie.unwrap_or_default().contains("Max-Age=0"));
        // The same cookie, replayed (by this or any replica: the row is gone), signs nobody in.
        assert_to_sign_in(&browser.get("/console").await?);
        let actions = audit_actions(&store).await?;
        assert_eq!(
            actions.first(),
            Some(&("admin:DEPROV_ADMIN_TOKEN".into(), "console.sign_out".into()))
        );
        app.stop().await
    }
);

db_test!(
    overview_aggregates_count_events_per_window_and_attempts_per_target,
    |store: Store, _url| async move {
        let app = start(store.clone(), |_| {}).await?;
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let csrf = browser.csrf().await?;
        // Registered through the console's own form.
        let page = browser
            .post(
                "/console/targets",
                &[
                    ("csrf", csrf.as_str()),
                    ("tenant", "acme"),
                    ("client_id", "wiki"),
                    ("backchannel_logout_uri", "http://127.0.0.1:9/bcl"),
                    ("subject", "userName"),
                    ("alg", "ES256"),
                ],
                None,
            )
            .await?;
        assert_eq!(page.status, 303, "{}", page.text);
        let bad = browser
            .post(
                "/console/targets",
                &[
                    ("csrf", csrf.as_str()),
                    ("tenant", "acme"),
                    ("client_id", "x"),
                    ("backchannel_logout_uri", "ftp://x"),
                ],
                None,
            )
            .await?;
        assert_eq!(bad.status, 400, "{}", bad.text);
        let since = now_millis() - 1000;
        deactivate(&app, &app.base, &app.token, "ada").await?;
        deactivate(&app, &app.base, &app.token, "bob").await?;
        let hist = store.event_histogram(since, 3_600_000, 3).await?;
        assert_eq!(hist, vec![2, 0, 0]);
        assert_eq!(
            store
                .event_histogram(now_millis() + 10_000, 1000, 2)
                .await?,
            vec![0, 0]
        );

        // One attempt delivered, one dead.
        let claimed = store
            .claim_due("w", 60_000, 10, 10, &Default::default())
            .await?;
        assert_eq!(claimed.len(), 2);
        let target_id = claimed[0].delivery.target_id.clone();
        for (c, (status, settle)) in claimed
            .iter()
            .zip([(200, Settle::Delivered), (400, Settle::Dead)])
        {
            store
                .settle(
                    &c.delivery.id,
                    "w",
                    AttemptRecord {
                        started_at: now_millis(),
                        latency_ms: 5,
                        http_status: Some(status),
                        error: None,
                        response_excerpt: None,
                    },
                    settle,
                    None,
                )
                .await?;
        }
        let health = store.target_health(since, since).await?;
        assert_eq!(health.len(), 1);
        let h = &health[0];
        assert_eq!(
            (h.target_id.as_str(), h.attempts, h.failures),
            (target_id.as_str(), 2, 1)
        );
        assert!(h.last_success_at.is_some() && h.last_failure_at.is_some());
        assert_eq!(h.failure_rate(), Some(0.5));
        // Outside the rate window: no attempts counted, the last times still known.
        let later = store.target_health(now_millis() + 10_000, since).await?;
        assert_eq!((later[0].attempts, later[0].failures), (0, 0));
        assert!(later[0].last_success_at.is_some());
        // Outside both: not listed.
        let nothing = store
            .target_health(now_millis() + 10_000, now_millis() + 10_000)
            .await?;
        assert!(nothing.is_empty());

        let overview = browser.get("/console").await?;
        assert_eq!(overview.status, 200);
        assert!(
            overview.text.contains("wiki") && overview.text.contains("50 %"),
            "{}",
            overview.text
        );
        let events = browser.get("/console/events").await?;
        assert!(events.text.contains("ada") && events.text.contains("bob"));
        for path in [
            "/console/targets",
            "/console/dead-letters",
            "/console/tenants",
            "/console/tenants/acme",
            "/console/keys",
            "/console/audit",
        ] {
            assert_eq!(browser.get(path).await?.status, 200, "{path}");
        }
        assert_eq!(browser.get("/console/events/nosuch").await?.status, 404);
        assert_eq!(browser.get("/console/tenants/nosuch").await?.status, 404);
        assert_eq!(browser.get("/console/events?offset=x").await?.status, 400);
        app.stop().await
    }
);

/// The claims of a compact JWS, decoded without checking it (the delivery tests verify
/// signatures; here the point is what was sent, and that it was sent once).
fn claims(jwt: &str) -> serde_json::Value {
    use base64::Engine as _;
    jwt.split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

db_test!(
    a_test_logout_is_signed_sent_once_and_shown_without_becoming_a_delivery,
    |store: Store, _url| async move {
        let app = start(store.clone(), |_| {}).await?;
        let rx = Receiver::start(vec![(204, "")])?;
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let csrf = browser.csrf().await?;
        for (client_id, uri) in [
            ("wiki", rx.url.as_str()),
            ("gone", "http://127.0.0.1:9/bcl"),
        ] {
            let page = browser
                .post(
                    "/console/targets",
                    &[
                        ("csrf", csrf.as_str()),
                        ("tenant", "acme"),
                        ("client_id", client_id),
                        ("backchannel_logout_uri", uri),
                        ("subject", "userName"),
                        ("alg", "EdDSA"),
                    ],
                    None,
                )
                .await?;
            assert_eq!(page.status, 303, "{}", page.text);
        }
        let page = browser
            .post(
                "/console/targets/acme/wiki/test",
                &[("csrf", csrf.as_str())],
                None,
            )
            .await?;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(
            page.text.contains("id=\"test-result\"") && page.text.contains("HTTP 204"),
            "{}",
            page.text
        );
        let bodies = rx.received.lock().map(|r| r.clone()).unwrap_or_default();
        assert_eq!(bodies.len(), 1);
        let token = url::form_urlencoded::parse(bodies[0].as_bytes())
            .find(|(k, _)| k == "logout_token")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let c = claims(&token);
        assert_eq!(c["sub"], "deprov-console-test");
        assert_eq!(c["aud"], "wiki");
        assert_eq!(c["iss"], app.root.as_str());
        assert!(c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
        // An unreachable target: the error is shown, not a 500.
        let page = browser
            .post(
                "/console/targets/acme/gone/test",
                &[("csrf", csrf.as_str())],
                None,
            )
            .await?;
        assert_eq!(page.status, 200, "{}", page.text);
        assert!(page.text.contains("no answer"), "{}", page.text);
        // Without its CSRF token nothing is sent.
        let page = browser
            .post("/console/targets/acme/wiki/test", &[], None)
            .await?;
        assert_eq!(page.status, 403);
        assert_eq!(rx.received.lock().map(|r| r.len()).unwrap_or(0), 1);
        // Not a delivery: the outbox is empty.
        let (total, _) = store.list_deliveries(None, None, 10, 0).await?;
        assert_eq!(total, 0);
        // Editing applies the checks of registration; a bad field changes nothing.
        let bad = browser
            .post(
                "/console/targets/acme/wiki/edit",
                &[
                    ("csrf", csrf.as_str()),
                    ("backchannel_logout_uri", "ftp://x"),
                    ("subject", "externalId"),
                    ("alg", "ES256"),
                ],
                None,
            )
            .await?;
        assert_eq!(bad.status, 400, "{}", bad.text);
        assert!(bad.text.contains("backchannel_logout_uri"), "{}", bad.text);
        assert_eq!(
            store.relying_party("acme", "wiki").await?.config.alg,
            "EdDSA"
        );
        let page = browser
            .post(
                "/console/targets/acme/wiki/edit",
                &[
                    ("csrf", csrf.as_str()),
                    ("backchannel_logout_uri", rx.url.as_str()),
                    ("subject", "externalId"),
                    ("alg", "ES256"),
                    ("require_sid", "true"),
                    ("issuer", ""),
                ],
                None,
            )
            .await?;
        assert_eq!(page.status, 303, "{}", page.text);
        let edited = store.relying_party("acme", "wiki").await?;
        assert_eq!(
            (
                edited.config.alg.as_str(),
                edited.config.subject.as_str(),
                edited.config.require_sid
            ),
            ("ES256", "externalId", true)
        );
        assert_eq!(edited.config.issuer, None);
        // (Followed by the creation of the ES256 key it needs, by `system`.)
        assert!(
            audit_actions(&store)
                .await?
                .contains(&("admin:DEPROV_ADMIN_TOKEN".into(), "target.update".into()))
        );

        // Removing takes the confirmation box; without it nothing changes.
        let page = browser
            .post(
                "/console/targets/acme/gone/remove",
                &[("csrf", csrf.as_str())],
                None,
            )
            .await?;
        assert_eq!(page.status, 400, "{}", page.text);
        assert_eq!(store.list_relying_parties("acme").await?.len(), 2);
        let page = browser
            .post(
                "/console/targets/acme/gone/remove",
                &[("csrf", csrf.as_str()), ("confirm", "yes")],
                None,
            )
            .await?;
        assert_eq!(page.status, 303, "{}", page.text);
        assert_eq!(store.list_relying_parties("acme").await?.len(), 1);
        rx.stop().await;
        app.stop().await
    }
);

/// Another replica: the database at `url` through its own pool, its own configuration
/// and port.
async fn replica(
    url: &str,
    admin_token: &str,
) -> anyhow::Result<(deprov_server::app::Running, String)> {
    let store = Store::open(&deprov_store::DatabaseLocation::parse(url)?).await?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let root = format!("http://{}", listener.local_addr()?);
    let mut config = deprov_server::config::Config {
        public_url: Some(root.clone()),
        admin_token: Some(deprov_core::Secret::new(admin_token)),
        // The database_url stays the harness's default: the key-encryption key is found
        // from it, and must be the one the first replica used.
        ..Default::default()
    };
    config.delivery.worker = false;
    let running =
        deprov_server::app::Running::start(std::sync::Arc::new(config), store, listener).await?;
    Ok((running, root))
}

db_test!(
    a_session_works_on_every_replica_and_ends_with_the_admin_token_it_was_opened_with,
    |store: Store, url: String| async move {
        let app = start(store.clone(), |_| {}).await?;
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let mut browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        // Another replica with the same configuration knows the session.
        let (same, same_root) = replica(&url, ADMIN).await?;
        let home = std::mem::replace(&mut browser.root, same_root);
        assert_eq!(browser.get("/console").await?.status, 200);
        same.shutdown().await?;
        // One whose DEPROV_ADMIN_TOKEN was rotated does not, and the session is over.
        let rotated = "a-rotated-configured-admin-token-0123456789abcdef";
        let (other, other_root) = replica(&url, rotated).await?;
        browser.root = other_root;
        assert_to_sign_in(&browser.get("/console").await?);
        other.shutdown().await?;
        browser.root = home;
        assert_to_sign_in(&browser.get("/console").await?);

        // A stored admin token's sessions end when it is revoked.
        let (token, issued) = app.store.issue_admin_token(Some("ops"), "test").await?;
        let (_, stored) = Browser::sign_in(&app, issued.token.expose()).await?;
        let stored = stored.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        assert_eq!(stored.get("/console").await?.status, 200);
        app.store.revoke_admin_token(&token.id, "test").await?;
        assert_to_sign_in(&stored.get("/console").await?);
        app.stop().await
    }
);

db_test!(
    every_console_form_refuses_a_post_without_its_csrf_token,
    |store: Store, _url| async move {
        let app = start(store.clone(), |_| {}).await?;
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let audit_before = audit_actions(&store).await?.len();
        // Every POST route of the console but sign-in (which has no session to bind to).
        for path in [
            "/console/logout",
            "/console/dead-letters/retry-all",
            "/console/deliveries/x/retry",
            "/console/targets",
            "/console/targets/acme/x/edit",
            "/console/targets/acme/x/enabled",
            "/console/targets/acme/x/remove",
            "/console/targets/acme/x/test",
            "/console/tenants",
            "/console/tenants/acme/tokens",
            "/console/tenants/acme/tokens/x/revoke",
            "/console/keys/rotate",
        ] {
            let page = browser
                .post(
                    path,
                    &[("name", "x"), ("alg", "RS256"), ("confirm", "yes")],
                    None,
                )
                .await?;
            assert_eq!(page.status, 403, "{path}: {}", page.text);
        }
        assert_eq!(audit_actions(&store).await?.len(), audit_before);
        // Still signed in: the refused sign-out did nothing.
        assert_eq!(browser.get("/console").await?.status, 200);
        app.stop().await
    }
);

db_test!(
    op_targets_are_listed_and_can_be_disabled_without_showing_secrets,
    |store: Store, _url| async move {
        let app = start(store.clone(), |_| {}).await?;
        let (_, browser) = Browser::sign_in(&app, ADMIN).await?;
        let browser = browser.ok_or_else(|| anyhow::anyhow!("no cookie"))?;
        let op = store
            .add_target(
                "acme",
                deprov_store::op_targets::NewTarget {
                    kind: "global_token_revocation".into(),
                    client_id: "okta-universal-logout".into(),
                    config: serde_json::json!({ "bearer_token": "c2VhbGVkLXNlY3JldC12YWx1ZQ==" }),
                    groups: vec!["Engineering".into()],
                    enabled: true,
                },
                serde_json::json!({}),
                "test",
            )
            .await?;
        let page = browser.get("/console/targets").await?;
        assert_eq!(page.status, 200);
        assert!(
            page.text.contains("okta-universal-logout")
                && page.text.contains("global_token_revocation")
                && page.text.contains("members of Engineering"),
            "{}",
            page.text
        );
        assert!(
            !page.text.contains("c2VhbGVkLXNlY3JldC12YWx1ZQ"),
            "a sealed secret is shown"
        );
        let action = format!("/console/ops/acme/{}/disable", op.id);
        // Without the CSRF token: refused, nothing changed.
        assert_eq!(browser.post(&action, &[], None).await?.status, 403);
        let kinds = deprov_store::op_targets::op_kinds();
        assert!(store.find_target("acme", &kinds, &op.id).await?.enabled);
        let csrf = browser.csrf().await?;
        let done = browser
            .post(&action, &[("csrf", csrf.as_str())], None)
            .await?;
        assert_eq!(done.status, 303, "{}", done.text);
        assert!(!store.find_target("acme", &kinds, &op.id).await?.enabled);
        assert!(
            audit_actions(&store)
                .await?
                .iter()
                .any(|(actor, _)| actor.starts_with("admin:"))
        );
        app.stop().await
    }
);
