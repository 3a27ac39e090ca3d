//! The SCIM tests' harness: the real app on port 0 over a fresh database, a tenant and its
//! token, an HTTP client, and the events the store recorded.

use std::sync::Arc;

use deprov_core::TenantName;
use deprov_core::scim::EventKind;
use deprov_server::app::Running;
use deprov_server::config::Config;
use deprov_store::Store;
use deprov_store::scim::EventRecord;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
pub const GROUP_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:Group";
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
pub const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// A running deprov with one tenant (`acme`).
pub struct App {
    pub root: String,
    /// `{root}/scim/v2/acme`
    pub base: String,
    pub token: String,
    pub tenant_id: String,
    pub store: Store,
    pub client: reqwest::Client,
    running: Option<Running>,
}

/// One HTTP answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    /// The answer must have this status; the body is shown when it does not.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        self
    }

    /// Asserts an RFC 7644 §3.12 error body with this status and `scimType`.
    #[track_caller]
    pub fn expect_error(self, status: u16, scim_type: Option<&str>) -> Self {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        assert_eq!(self.body["schemas"][0], ERROR_URN, "{}", self.text);
        assert_eq!(
            self.body["status"],
            Value::String(status.to_string()),
            "{}",
            self.text
        );
        assert_eq!(self.body["scimType"].as_str(), scim_type, "{}", self.text);
        assert_eq!(
            self.header("content-type").as_deref(),
            Some("application/scim+json"),
            "{}",
            self.text
        );
        self
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().unwrap_or_default().to_owned()
    }
}

impl App {
    pub async fn start(store: Store) -> anyhow::Result<Self> {
        Self::start_with(store, |_| {}).await
    }

    /// Starts with a configuration adjusted by `tune` (smaller limits, say).
    pub async fn start_with(store: Store, tune: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let created = store
            .create_tenant(&TenantName::parse("acme")?, "test")
            .await?;
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let root = format!("http://{addr}");
        let mut config = Config {
            public_url: Some(root.clone()),
            ..Config::default()
        };
        // These tests look at the events and deliveries written, not at deliveries made.
        config.delivery.worker = false;
        tune(&mut config);
        let running = Running::start(Arc::new(config), store.clone(), listener).await?;
        Ok(Self {
            base: format!("{root}/scim/v2/acme"),
            root,
            token: created.token.token.expose().to_owned(),
            tenant_id: created.tenant.id,
            store,
            client: client()?,
            running: Some(running),
        })
    }

    /// A second tenant and its token.
    pub async fn other_tenant(&self, name: &str) -> anyhow::Result<(String, String)> {
        let created = self
            .store
            .create_tenant(&TenantName::parse(name)?, "test")
            .await?;
        Ok((
            format!("{}/scim/v2/{name}", self.root),
            created.token.token.expose().to_owned(),
        ))
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(running) = self.running.take() {
            running.shutdown().await?;
        }
        Ok(())
    }

    /// A request to `{base}{path}` with the tenant's bearer token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<Answer> {
        self.call_with(
            method,
            &format!("{}{path}", self.base),
            body,
            &[("authorization", &format!("Bearer {}", self.token))],
        )
        .await
    }

    pub async fn call_with(
        &self,
        method: Method,
        url: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let mut req = self.client.request(method, url);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/scim+json")
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

    pub async fn get(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> anyhow::Result<Answer> {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Answer> {
        self.call(Method::DELETE, path, None).await
    }

    /// Every event of the tenant, oldest first.
    pub async fn events(&self) -> anyhow::Result<Vec<EventRecord>> {
        Ok(self.store.list_events(&self.tenant_id, None).await?)
    }

    /// The events of the tenant as `(kind, user id)`.
    pub async fn event_kinds(&self) -> anyhow::Result<Vec<(EventKind, String)>> {
        Ok(self
            .events()
            .await?
            .into_iter()
            .map(|e| (e.kind, e.user_id))
            .collect())
    }
}

/// A plain-http client. reqwest is built without a default TLS provider in this workspace;
/// the process-wide one is installed first (a second install is a no-op).
fn client() -> anyhow::Result<reqwest::Client> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Ok(reqwest::Client::builder().build()?)
}

/// `filter` as a query-string value.
pub fn q(filter: &str) -> String {
    url::form_urlencoded::byte_serialize(filter.as_bytes()).collect()
}

pub fn patch_ops(ops: Value) -> Value {
    serde_json::json!({"schemas": [PATCH_OP], "Operations": ops})
}
