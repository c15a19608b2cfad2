//! Errors as `application/problem+json` (RFC 9457), mapped in one place.
//!
//! Every problem has a stable `code` that clients can switch on, a `detail`
//! that names the field at fault, and never echoes a submitted value.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use custos_store::StoreError;

/// A problem response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the problem type.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// Short summary of the problem type.
    pub title: &'static str,
    /// HTTP status.
    pub status: u16,
    /// Stable, machine-readable code (`subject_erased`, `invalid_field`, …).
    pub code: &'static str,
    /// What happened, naming the field or id at fault.
    pub detail: String,
    /// The request field at fault, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For erased subjects and gone tokens: when the erasure happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<String>,
    /// For tokens: always `false` on a 410.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alive: Option<bool>,
}

impl Problem {
    /// Builds a problem.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            type_uri: format!("https://custos.dev/problems/{code}"),
            title,
            status: status.as_u16(),
            code,
            detail: detail.into(),
            field: None,
            erased_at: None,
            alive: None,
        }
    }

    /// Names the field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// 400 for an invalid field.
    pub fn invalid(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let field = field.into();
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_field",
            "Invalid field",
            format!("{field}: {}", detail.into()),
        )
        .with_field(field)
    }

    /// 401.
    pub fn unauthenticated(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "Authentication required",
            detail,
        )
    }

    /// 404 for an unknown route.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "no_such_route",
            "Not found",
            "no such endpoint; see /openapi.json",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let unauth = status == StatusCode::UNAUTHORIZED;
        let mut res = (status, axum::Json(self)).into_response();
        res.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if unauth {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        res
    }
}

/// The one mapping from vault errors to problems.
impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        use StatusCode as S;
        let detail = e.to_string();
        match e {
            StoreError::NotFound(what) => Problem::new(
                S::NOT_FOUND,
                "not_found",
                "Not found",
                format!("{what} not found in this tenant"),
            ),
            StoreError::SubjectErased { erased_at } => {
                let mut p = Problem::new(S::GONE, "subject_erased", "Subject erased", detail);
                p.erased_at = Some(erased_at);
                p
            }
            StoreError::TokenGone { erased_at } => {
                let mut p = Problem::new(S::GONE, "token_gone", "Token gone", detail);
                p.erased_at = Some(erased_at);
                p.alive = Some(false);
                p
            }
            StoreError::TenantShredded { .. } => {
                Problem::new(S::GONE, "tenant_shredded", "Tenant shredded", detail)
            }
            StoreError::Conflict(_) => {
                Problem::new(S::CONFLICT, "conflict", "Already exists", detail)
            }
            StoreError::Restricted => Problem::new(
                S::FORBIDDEN,
                "subject_restricted",
                "Processing restricted",
                detail,
            ),
            StoreError::MissingScope(_) => {
                Problem::new(S::FORBIDDEN, "missing_scope", "Missing scope", detail)
            }
            StoreError::Unauthenticated(_) => Problem::unauthenticated(detail),
            StoreError::Invalid { field, message } => Problem::invalid(field, message),
            StoreError::Consent(c) => {
                let status = match c {
                    custos_core::consent::ConsentError::NoPolicyVersion { .. } => S::CONFLICT,
                    _ => S::BAD_REQUEST,
                };
                let title = match c.code() {
                    "not_consent_based" => "Not a consent purpose",
                    "action_not_allowed" => "Action not allowed for this purpose",
                    "not_affirmative" => "Consent must be an affirmative act",
                    "unknown_version" => "Unknown policy version",
                    "no_policy_version" => "No policy version",
                    _ => "Invalid field",
                };
                Problem::new(status, c.code(), title, detail).with_field(c.field())
            }
            StoreError::Request(r) => {
                use custos_core::request::RequestError as R;
                let (status, title) = match r {
                    R::IllegalTransition { .. } => (S::CONFLICT, "Illegal transition"),
                    R::ExtensionLimit { .. } => (S::CONFLICT, "Extension limit reached"),
                    R::Closed(_) => (S::CONFLICT, "Request closed"),
                    R::WrongCode { .. } => (S::BAD_REQUEST, "Wrong verification code"),
                    R::CodeExpired => (S::CONFLICT, "Verification code expired"),
                    R::Concurrent => (S::CONFLICT, "Concurrent change"),
                    R::ExtensionMonths | R::ReasonRequired | R::TimeRange => {
                        (S::BAD_REQUEST, "Invalid field")
                    }
                };
                let p = Problem::new(status, r.code(), title, detail);
                match r.field() {
                    Some(f) => p.with_field(f),
                    None => p,
                }
            }
            StoreError::ShuttingDown => {
                Problem::new(S::SERVICE_UNAVAILABLE, "unavailable", "Unavailable", detail)
            }
            StoreError::Database(_) => Problem::new(
                S::SERVICE_UNAVAILABLE,
                "storage_unavailable",
                "Storage unavailable",
                detail,
            ),
            StoreError::Integrity(_) => {
                tracing::error!(error = %detail, "integrity failure");
                Problem::new(
                    S::INTERNAL_SERVER_ERROR,
                    "integrity_failure",
                    "Integrity failure",
                    detail,
                )
            }
            StoreError::Config(_)
            | StoreError::WrongRootKey { .. }
            | StoreError::Migrate(_)
            | StoreError::RolledBack(_) => {
                tracing::error!(error = %detail, "server misconfigured");
                Problem::new(
                    S::INTERNAL_SERVER_ERROR,
                    "internal",
                    "Internal error",
                    "internal error; see the server log",
                )
            }
        }
    }
}

/// Shortens a serde error to what is safe to echo: serde quotes rejected
/// values (`invalid type: string "jane@…"`), which could be personal data.
pub fn safe_serde_message(msg: &str) -> String {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    if msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
    {
        let kind = msg.split(':').next().unwrap_or("invalid value");
        match msg.rsplit_once(", expected ") {
            Some((_, exp)) => format!("{kind}, expected {exp}"),
            None => kind.to_owned(),
        }
    } else if msg.starts_with("unknown field")
        || msg.starts_with("missing field")
        || msg.starts_with("duplicate field")
    {
        msg.to_owned()
    } else {
        // Syntax errors, unknown variants, custom messages from our own
        // validators (which never echo values) — drop quoted text to be safe.
        let mut out = String::with_capacity(msg.len());
        let mut in_quote = false;
        for c in msg.chars() {
            if c == '"' {
                in_quote = !in_quote;
                if in_quote {
                    out.push_str("\"…");
                } else {
                    out.push('"');
                }
            } else if !in_quote {
                out.push(c);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_never_echo_values() {
        let e = serde_json::from_str::<u32>("\"jane@example.com\"")
            .unwrap_err()
            .to_string();
        let s = safe_serde_message(&e);
        assert!(!s.contains("jane"), "{s}");
        assert!(s.contains("expected"), "{s}");
    }
}
