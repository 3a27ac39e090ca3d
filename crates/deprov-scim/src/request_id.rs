//! The request id: taken from `X-Request-Id` when the client sent a usable one (bounded,
//! printable ASCII), generated (UUID v4) otherwise; echoed in the response, recorded in
//! the request's tracing span and passed to the store with every change, so that the
//! event a request caused names it.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, HttpMessage};
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// The id of the request being served (in the request's extensions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

/// Accepts a client's id only when it is safe to log and to echo in a header.
pub fn accept(presented: Option<&str>) -> Option<String> {
    let id = presented?.trim();
    let usable = !id.is_empty() && id.len() <= MAX_LEN && id.bytes().all(|b| b.is_ascii_graphic());
    usable.then(|| id.to_owned())
}

/// Middleware: assigns the id, opens the span, echoes the header.
pub async fn middleware(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let presented = req.headers().get(HEADER).and_then(|v| v.to_str().ok());
    let id = accept(presented).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "scim",
        request_id = %id,
        method = %req.method(),
        path = %req.path(),
    );
    let mut res = next.call(req).instrument(span).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut()
            .insert(HeaderName::from_static(HEADER), value);
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::accept;

    #[test]
    fn only_bounded_printable_ids_are_accepted() {
        assert_eq!(accept(Some("abc-123")).as_deref(), Some("abc-123"));
        assert_eq!(accept(Some("  abc ")).as_deref(), Some("abc"));
        assert_eq!(accept(Some("")), None);
        assert_eq!(accept(Some("a b")), None);
        assert_eq!(accept(Some("é")), None);
        assert_eq!(accept(Some("a\u{7}")), None);
        assert_eq!(accept(Some(&"x".repeat(129))), None);
        assert_eq!(accept(None), None);
    }
}
