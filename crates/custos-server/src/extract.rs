//! Request extractors that answer with problems, never with axum's plain
//! text rejections: JSON bodies, bearer authentication, ids in paths.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::extract::{Path, Query};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use custos_core::ids::SubjectId;
use custos_store::{Actor, Principal};

use crate::problem::{safe_serde, Problem};
use crate::AppState;

/// A JSON body that must be `application/json`, within the body limit, and
/// match the type exactly (unknown fields rejected by the types themselves).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                let v = v.trim().to_ascii_lowercase();
                v.starts_with("application/json")
                    || (v.starts_with("application/") && v.contains("+json"))
            });
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_problem)?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Parses JSON into `T` with a problem that names the field and position.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Problem> {
    serde_json::from_slice::<T>(bytes).map_err(|e| {
        let safe = safe_serde(&e.to_string());
        let (code, title) = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                ("malformed_json", "Malformed JSON")
            }
            _ if safe.unknown_field => ("unknown_field", "Unknown field"),
            _ => ("invalid_field", "Invalid field"),
        };
        let p = Problem::new(
            StatusCode::BAD_REQUEST,
            code,
            title,
            format!(
                "{} (line {}, column {})",
                safe.message,
                e.line(),
                e.column()
            ),
        );
        match safe.field {
            Some(f) => p.with_field(f),
            None => p,
        }
    })
}

/// A raw body whose rejections (too large, unreadable) are problems.
#[derive(Debug)]
pub struct ApiBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for ApiBytes {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        Bytes::from_request(req, state)
            .await
            .map(ApiBytes)
            .map_err(body_problem)
    }
}

fn body_problem(r: BytesRejection) -> Problem {
    // The serving loop's body timeout surfaces as the body's error.
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&r);
    while let Some(e) = source {
        if e.is::<crate::serve::BodyTimeout>() {
            return Problem::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                "Body timeout",
                "the request body did not arrive within the server's body timeout",
            );
        }
        source = e.source();
    }
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "Body too large",
            "the request body exceeds the server's limit",
        )
    } else {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            "Unreadable body",
            "the request body could not be read",
        )
    }
}

fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let h = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
        Problem::unauthenticated("send Authorization: Bearer <API key or admin token>")
    })?;
    let s = h
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is not valid ASCII"))?;
    // Auth schemes are case-insensitive (RFC 9110 §11.1).
    s.trim_start()
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty())
        .ok_or_else(|| {
            Problem::unauthenticated("use the Bearer scheme: Authorization: Bearer <token>")
        })
}

/// The system administrator, authenticated by the admin token.
#[derive(Debug)]
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        if state.admin_token.ct_eq(token) {
            return Ok(AdminAuth);
        }
        // A tenant's valid key is authenticated but not allowed here (403);
        // any other token is not authenticated (401).
        match state.vault.authenticate(token).await {
            Ok(_) => Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin_token_required",
                "Admin token required",
                "this endpoint needs the admin token, not an API key",
            )),
            Err(custos_store::StoreError::Unauthenticated(_)) => Err(Problem::unauthenticated(
                "this endpoint needs the admin token",
            )),
            // A store that cannot answer is an outage (503), not a bad token.
            Err(e) => Err(e.into()),
        }
    }
}

/// A tenant's API key.
#[derive(Debug)]
pub struct KeyAuth(pub Principal);

impl FromRequestParts<AppState> for KeyAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        if state.admin_token.ct_eq(token) {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "admin_token_not_allowed",
                "Use an API key",
                "tenant data is reached with a tenant's API key, not the admin token",
            ));
        }
        Ok(KeyAuth(state.vault.authenticate(token).await?))
    }
}

/// Either the administrator or a tenant's API key.
#[derive(Debug)]
pub struct AnyAuth(pub Actor);

impl FromRequestParts<AppState> for AnyAuth {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        if state.admin_token.ct_eq(token) {
            return Ok(AnyAuth(Actor::Admin));
        }
        Ok(AnyAuth(Actor::Key(state.vault.authenticate(token).await?)))
    }
}

/// Parses a subject id from a path segment.
pub fn subject_id(s: &str) -> Result<SubjectId, Problem> {
    SubjectId::parse(s).map_err(|e| Problem::invalid("id", e.to_string()).with_code("invalid_id"))
}

/// Parses any validated id, naming the field on failure.
pub fn parse_id<T>(field: &str, r: Result<T, custos_core::CoreError>) -> Result<T, Problem> {
    r.map_err(|e| Problem::invalid(field, e.to_string()).with_code("invalid_id"))
}

impl Problem {
    /// Replaces the code (e.g. `invalid_id` for path parameters).
    pub fn with_code(mut self, code: &'static str) -> Self {
        self.code = code;
        self.type_uri = format!("https://custos.dev/problems/{code}");
        self
    }
}

/// Path parameters with a problem response on failure.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(t)) => Ok(ApiPath(t)),
            Err(_) => Err(Problem::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                "Invalid path",
                "a path segment is not valid UTF-8 or has the wrong shape",
            )),
        }
    }
}

/// Query parameters with a problem response on failure.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(t)) => Ok(ApiQuery(t)),
            Err(e) => {
                let safe = safe_serde(&e.body_text());
                let p = Problem::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_query",
                    "Invalid query",
                    format!("query: {}", safe.message),
                );
                Err(match safe.field {
                    Some(f) => p.with_field(f),
                    None => p,
                })
            }
        }
    }
}

/// A time given as `2025-06-01` (midnight UTC) or RFC 3339, in µs; the
/// problem names `field`.
pub(crate) fn parse_time(field: &str, s: &str) -> Result<i64, Problem> {
    custos_core::Timestamp::parse(s)
        .map(custos_core::Timestamp::micros)
        .map_err(|e| Problem::invalid(field, e.to_string()))
}

/// A JSON number that is a whole number, written `1823` or `1823.0`: JSON
/// Schema's `integer` admits both, so the document's `integer` fields take
/// both. Fractions and negatives are refused.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    use serde::Deserialize;
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                // A whole, non-negative f64 below 2^64: the cast is exact.
                .map(|f| f as u64)
        })
        .ok_or_else(|| serde::de::Error::custom("expected a whole number"))
}

/// A whole number (`1823` or `1823.0`) for an optional field (`#[serde(default)]` gives `None`).
pub fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    whole(d).map(Some)
}

/// A whole number (`1` or `1.0`) for a small field.
pub fn whole_number_u8<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    let n = whole(d)?;
    u8::try_from(n).map_err(|_| serde::de::Error::custom("expected a whole number below 256"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_parse_as_dates_or_rfc3339_and_name_the_field() {
        assert_eq!(
            super::parse_time("t", "1970-01-02").ok(),
            Some(86_400_000_000)
        );
        assert_eq!(
            super::parse_time("t", "1970-01-01T00:00:01Z").ok(),
            Some(1_000_000)
        );
        let p = super::parse_time("due_before", "yesterday").err();
        let body = p.and_then(|p| serde_json::to_value(&p).ok());
        assert_eq!(
            body.as_ref()
                .and_then(|b| b.get("field"))
                .and_then(|f| f.as_str()),
            Some("due_before"),
            "{body:?}"
        );
    }
}
