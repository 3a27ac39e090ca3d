//! Request extractors whose errors name the field at fault, as problem documents: a JSON
//! body ([`Body`], [`OptionalBody`]) and a query string ([`Query`]). actix's own `Json` and
//! `Query` say "invalid type: string, expected a boolean" without saying where.

use std::future::Future;
use std::pin::Pin;

use actix_web::http::StatusCode;
use actix_web::web::Bytes;
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use serde::de::DeserializeOwned;

use super::problem::AdminError;

/// The largest request body the admin API reads.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

type Fut<T> = Pin<Box<dyn Future<Output = Result<T, AdminError>>>>;

/// A required JSON body.
#[derive(Debug)]
pub struct Body<T>(pub T);

/// A JSON body that may be left out (an empty body is `T::default()`); a body that is
/// present must parse.
#[derive(Debug)]
pub struct OptionalBody<T>(pub T);

/// Query parameters.
#[derive(Debug)]
pub struct Query<T>(pub T);

fn read(req: &HttpRequest, payload: &mut Payload) -> Fut<Bytes> {
    let bytes = Bytes::from_request(req, payload);
    Box::pin(async move {
        bytes.await.map_err(|e| {
            if e.as_response_error().status_code() == StatusCode::PAYLOAD_TOO_LARGE {
                AdminError::TooLarge(MAX_BODY_BYTES)
            } else {
                AdminError::BadRequest(format!("cannot read the request body: {e}"))
            }
        })
    })
}

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = AdminError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = read(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Err(AdminError::BadRequest(
                    "a JSON object is required as the request body".to_owned(),
                ));
            }
            parse_json(&bytes).map(Body)
        })
    }
}

impl<T: DeserializeOwned + Default + 'static> FromRequest for OptionalBody<T> {
    type Error = AdminError;
    type Future = Fut<Self>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let bytes = read(req, payload);
        Box::pin(async move {
            let bytes = bytes.await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalBody(T::default()));
            }
            parse_json(&bytes).map(OptionalBody)
        })
    }
}

impl<T: DeserializeOwned + 'static> FromRequest for Query<T> {
    type Error = AdminError;
    type Future = std::future::Ready<Result<Self, AdminError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let de = serde_urlencoded::Deserializer::new(url::form_urlencoded::parse(
            req.query_string().as_bytes(),
        ));
        std::future::ready(
            serde_path_to_error::deserialize(de)
                .map(Query)
                .map_err(|e| located(e.path().to_string(), &e.inner().to_string())),
        )
    }
}

fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, AdminError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let inner = e.inner();
        let message = inner.to_string();
        // serde_json appends the position; the field name says more.
        let message = match message.rsplit_once(" at line ") {
            Some((m, _)) if inner.is_data() => m.to_owned(),
            _ => message,
        };
        if inner.is_syntax() || inner.is_eof() {
            return AdminError::BadRequest(format!(
                "the request body is not valid JSON: {message}"
            ));
        }
        located(e.path().to_string(), &message)
    })?;
    de.end()
        .map_err(|e| AdminError::BadRequest(format!("the request body is not valid JSON: {e}")))?;
    Ok(value)
}

/// An error at `path` (`.` for the top level, where serde names a missing or unknown
/// field only in its message, between backticks).
fn located(path: String, message: &str) -> AdminError {
    if path != "." && !path.is_empty() {
        return AdminError::invalid(path, message);
    }
    let named = ["missing field `", "unknown field `"]
        .iter()
        .find_map(|p| message.strip_prefix(p))
        .and_then(|rest| rest.split_once('`'));
    match named {
        Some((field, _)) if message.starts_with("missing") => {
            AdminError::invalid(field, "is required")
        }
        Some((field, _)) => AdminError::invalid(field, message.to_owned()),
        None => AdminError::BadRequest(format!("request: {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Sample {
        name: String,
        #[serde(default)]
        enabled: bool,
    }

    fn field(e: AdminError) -> Option<String> {
        match e {
            AdminError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    #[test]
    fn body_errors_name_the_field() {
        let wrong_type = parse_json::<Sample>(br#"{"name": "x", "enabled": "yes"}"#).err();
        assert_eq!(wrong_type.and_then(field).as_deref(), Some("enabled"));
        let missing = parse_json::<Sample>(br#"{"enabled": true}"#).err();
        assert_eq!(missing.and_then(field).as_deref(), Some("name"));
        let unknown = parse_json::<Sample>(br#"{"name": "x", "nmae": "y"}"#).err();
        assert_eq!(unknown.and_then(field).as_deref(), Some("nmae"));
        for garbage in [&b"{name"[..], br#"{"name": "x"} trailing"#] {
            let err = parse_json::<Sample>(garbage).err();
            assert!(matches!(err, Some(AdminError::BadRequest(_))), "{err:?}");
        }
    }
}
