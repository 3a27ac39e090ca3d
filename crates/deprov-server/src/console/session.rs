//! Console sessions and CSRF protection.
//!
//! Sign-in takes an admin token (checked by the admin API's own
//! [`authenticate`](crate::admin::auth::authenticate), so both accept exactly the same
//! tokens) and answers with a session cookie: a random `deprov_session_…` value, HttpOnly,
//! `SameSite=Strict`, `Secure` when the public URL is https, scoped to `/console`. The
//! database keeps only its SHA-256 ([`deprov_store::console`]), so every replica sharing
//! one PostgreSQL knows the session, and sign-out on one ends it on all.
//!
//! Every state-changing request is a form POST read through [`CsrfForm`], which requires a
//! live session, an `Origin` (when the browser sends one) equal to the public URL's, and a
//! `csrf` field equal to the session's token (the synchronizer-token pattern, compared in
//! constant time). The token is derived from the session id rather than stored, so the
//! database holds nothing that could forge a form either.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use deprov_core::TokenHash;
use deprov_store::Store;
use maud::html;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::ConsoleError;
use super::html::{page_bare, render};
use crate::admin::auth::{AdminCredential, authenticate};
use crate::config::Config;

/// The session cookie's name.
pub const COOKIE: &str = "deprov_console";
/// The largest form the console reads.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// A signed-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// As written in the audit log: `admin:<token hint>` or `admin:DEPROV_ADMIN_TOKEN`.
    pub actor: String,
    /// The token every form of this session must carry.
    pub csrf: String,
}

/// The session's CSRF token: a hash of the session id under its own label, so it reveals
/// nothing about the id, and the database (which has only the id's plain SHA-256) cannot
/// produce it.
fn csrf_token(session_id: &str) -> String {
    TokenHash::of(&format!("deprov console csrf\u{0}{session_id}")).to_hex()
}

/// The value of our cookie in the request, if any.
fn cookie_value(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

fn secure(config: &Config) -> bool {
    config.public_url().starts_with("https://")
}

/// `Set-Cookie` for a new session, or (`None`) one that deletes the cookie.
fn set_cookie(config: &Config, value: Option<&str>) -> String {
    let secure = if secure(config) { "; Secure" } else { "" };
    match value {
        Some(v) => format!(
            "{COOKIE}={v}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            config.console.session_lifetime_secs
        ),
        None => format!("{COOKIE}=; Path=/console; HttpOnly; SameSite=Strict; Max-Age=0{secure}"),
    }
}

fn millis(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

fn app_data(req: &HttpRequest) -> Result<(web::Data<Config>, web::Data<Store>), ConsoleError> {
    match (
        req.app_data::<web::Data<Config>>(),
        req.app_data::<web::Data<Store>>(),
    ) {
        (Some(c), Some(s)) => Ok((c.clone(), s.clone())),
        _ => Err(ConsoleError::Internal(anyhow::anyhow!(
            "the console is mounted without its configuration or store"
        ))),
    }
}

/// The `credential` of a session opened with the configured admin token: a hash of that
/// token bound to the session id. Its sessions end when the configured token changes,
/// and the stored value reveals nothing about the token without the session id (which is
/// not stored), so even a weak configured token cannot be guessed from the database.
fn configured_credential(session_id: &str, configured: &str) -> String {
    format!(
        "configured:{}",
        TokenHash::of(&format!(
            "deprov console credential\u{0}{session_id}\u{0}{configured}"
        ))
        .to_hex()
    )
}

fn credential_of(session_id: &str, config: &Config, credential: &AdminCredential) -> String {
    match credential {
        AdminCredential::Stored(id) => deprov_store::console::stored_admin_credential(id),
        AdminCredential::Configured => configured_credential(
            session_id,
            config.admin_token.as_ref().map_or("", |t| t.expose()),
        ),
    }
}

impl Session {
    async fn load(req: &HttpRequest) -> Result<Self, ConsoleError> {
        let (config, store) = app_data(req)?;
        let Some(id) = cookie_value(req) else {
            return Err(ConsoleError::SignIn);
        };
        let idle = millis(config.console.idle_timeout_secs);
        let Some(session) = store.console_session(&id, idle).await? else {
            return Err(ConsoleError::SignIn);
        };
        if session.credential.starts_with("configured:") {
            let still = config.admin_token.as_ref().is_some_and(|t| {
                TokenHash::of(&session.credential)
                    .matches(&TokenHash::of(&configured_credential(&id, t.expose())))
            });
            if !still {
                // DEPROV_ADMIN_TOKEN was changed or removed since this sign-in.
                store.discard_console_session(&id).await?;
                return Err(ConsoleError::SignIn);
            }
        }
        Ok(Self {
            actor: session.actor,
            csrf: csrf_token(&id),
        })
    }
}

impl FromRequest for Session {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ConsoleError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Session::load(&req).await })
    }
}

/// Whether the request's `Origin`, when it has one, is the console's own (the public
/// URL's scheme, host and port). Browsers send it on every cross-origin POST and on
/// same-origin ones too; `null` (a sandboxed or privacy-stripped origin) is refused.
fn origin_ok(req: &HttpRequest, config: &Config) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let Ok(public) = url::Url::parse(&config.public_url()) else {
        return false;
    };
    let own = public.origin().ascii_serialization();
    origin == own
}

/// The refusal of a form from another origin; it names the expected one, since the usual
/// cause is a console opened under another name than `public_url`.
fn foreign_origin(config: &Config) -> ConsoleError {
    ConsoleError::Forbidden(format!(
        "this form was not sent from the console's own pages: open the console at {}/console \
         (DEPROV_PUBLIC_URL)",
        config.public_url()
    ))
}

/// A form POSTed by a signed-in operator from a console page: session, origin and CSRF
/// token checked before the form is parsed. Fails with 403 (and changes nothing) when the
/// token or the origin is wrong, and sends the browser to sign-in without a session.
#[derive(Debug)]
pub struct CsrfForm<T> {
    pub session: Session,
    pub form: T,
}

impl<T: DeserializeOwned + 'static> FromRequest for CsrfForm<T> {
    type Error = ConsoleError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ConsoleError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        // Bounded by the scope's `PayloadConfig` (MAX_FORM_BYTES).
        let bytes = Bytes::from_request(&req, payload);
        Box::pin(async move {
            let session = Session::load(&req).await?;
            let (config, _) = app_data(&req)?;
            if !origin_ok(&req, &config) {
                return Err(foreign_origin(&config));
            }
            let bytes = bytes
                .await
                .map_err(|e| ConsoleError::BadRequest(format!("cannot read the form: {e}")))?;
            if bytes.len() > MAX_FORM_BYTES {
                return Err(ConsoleError::BadRequest("the form is too large".to_owned()));
            }
            let presented = url::form_urlencoded::parse(&bytes)
                .find(|(k, _)| k == "csrf")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            if !TokenHash::of(&presented).matches(&TokenHash::of(&session.csrf)) {
                tracing::warn!(actor = %session.actor, path = req.path(), "console form refused: missing or wrong CSRF token");
                return Err(ConsoleError::Forbidden(
                    "the form's security token is missing or stale; reload the page and try again"
                        .to_owned(),
                ));
            }
            let form = serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| ConsoleError::BadRequest(format!("the form is not valid: {e}")))?;
            Ok(CsrfForm { session, form })
        })
    }
}

/// A form with nothing but its CSRF token.
#[derive(Debug, Default, Deserialize)]
pub struct NoFields {}

#[derive(Debug, Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
}

#[derive(Debug, Default, Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    signed_out: Option<String>,
}

fn sign_in_page(status: actix_web::http::StatusCode, message: Option<&str>) -> HttpResponse {
    let failed = status.is_client_error();
    let body = page_bare(
        "Sign in",
        html! {
            main.signin {
                h1 { "deprov console" }
                @if let Some(m) = message {
                    p.flash.error[failed] { (m) }
                }
                form method="post" action="/console/login" {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="off" required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.muted { "The admin API's token: DEPROV_ADMIN_TOKEN, or a deprov_admin_… token (printed on first start, or issued with POST /admin/v1/admin-tokens)." }
            }
        },
    );
    render(status, body)
}

/// `GET /console/login`
pub async fn sign_in_form(query: web::Query<SignInQuery>) -> HttpResponse {
    let message = query.signed_out.as_ref().map(|_| "You are signed out.");
    sign_in_page(actix_web::http::StatusCode::OK, message)
}

/// `POST /console/login`: the admin token in, a session cookie out. A refused token gets
/// the same answer whatever was wrong with it.
pub async fn sign_in(
    req: HttpRequest,
    form: web::Form<SignInForm>,
) -> Result<HttpResponse, ConsoleError> {
    let (config, store) = app_data(&req)?;
    if !origin_ok(&req, &config) {
        return Err(foreign_origin(&config));
    }
    let presented = form.token.trim();
    let authenticated = if presented.is_empty() {
        None
    } else {
        authenticate(&config, &store, presented).await?
    };
    let Some((actor, credential)) = authenticated else {
        tracing::warn!(
            peer = req
                .peer_addr()
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            "console sign-in refused"
        );
        return Ok(sign_in_page(
            actix_web::http::StatusCode::UNAUTHORIZED,
            Some("Sign-in failed: that is not a valid admin token."),
        ));
    };
    let id = Store::new_console_session_id()?;
    store
        .open_console_session(
            &id,
            actor.as_str(),
            &credential_of(id.token.expose(), &config, &credential),
            millis(config.console.session_lifetime_secs),
            millis(config.console.idle_timeout_secs),
        )
        .await?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console"))
        .insert_header((
            header::SET_COOKIE,
            set_cookie(&config, Some(id.token.expose())),
        ))
        .finish())
}

/// `POST /console/logout`: ends the session everywhere and clears the cookie.
pub async fn sign_out(
    req: HttpRequest,
    _form: CsrfForm<NoFields>,
) -> Result<HttpResponse, ConsoleError> {
    let (config, store) = app_data(&req)?;
    if let Some(id) = cookie_value(&req) {
        store.close_console_session(&id).await?;
    }
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/login?signed_out=1"))
        .insert_header((header::SET_COOKIE, set_cookie(&config, None)))
        .finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_is_bound_to_the_session_and_hides_it() {
        let a = csrf_token("deprov_session_a");
        assert_eq!(a, csrf_token("deprov_session_a"));
        assert_ne!(a, csrf_token("deprov_session_b"));
        assert!(!a.contains("deprov_session_a"));
        assert_ne!(a, TokenHash::of("deprov_session_a").to_hex());
    }

    #[test]
    fn a_configured_token_credential_is_bound_to_the_session_and_the_token() {
        let a = configured_credential("deprov_session_a", "token-one");
        assert!(a.starts_with("configured:"));
        assert!(!a.contains("token-one"));
        assert_ne!(a, configured_credential("deprov_session_b", "token-one"));
        assert_ne!(a, configured_credential("deprov_session_a", "token-two"));
    }

    #[test]
    fn cookie_is_httponly_strict_and_secure_on_https() {
        let mut config = Config::default();
        let plain = set_cookie(&config, Some("v"));
        assert!(plain.contains("HttpOnly") && plain.contains("SameSite=Strict"));
        assert!(!plain.contains("Secure"));
        config.public_url = Some("https://deprov.example.com".into());
        assert!(set_cookie(&config, Some("v")).ends_with("; Secure"));
        assert!(set_cookie(&config, None).contains("Max-Age=0"));
    }
}
