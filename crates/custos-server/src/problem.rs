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
    /// For `429`: seconds to wait, sent as the `Retry-After` header.
    #[serde(skip)]
    pub retry_after: Option<u64>,
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
            retry_after: None,
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
        let retry_after = self.retry_after;
        let mut res = (status, axum::Json(self)).into_response();
        if status == StatusCode::REQUEST_TIMEOUT {
            // The rest of a timed-out body is never read: the connection
            // cannot carry another request.
            res.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some(secs) = retry_after {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
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

/// A serde error shortened to what is safe to echo, with the field it
/// names when that field is one of the type's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafeSerde {
    /// The message: never a submitted value, never a client-chosen name.
    pub message: String,
    /// The field at fault when serde named a declared one (`missing field`,
    /// `duplicate field`); an unknown field is never named.
    pub field: Option<String>,
    /// Whether the error is an unknown field (`unknown_field`).
    pub unknown_field: bool,
}

/// Shortens a serde error to what is safe to echo: serde quotes rejected
/// values (`invalid type: string "jane@…"`) and unknown names (``unknown
/// field `jane@…` ``), either of which could be personal data. Declared
/// names (the expected fields and variants) are kept; the client's are
/// replaced by "an unknown field" / "an unknown variant".
pub fn safe_serde_message(msg: &str) -> String {
    safe_serde(msg).message
}

/// How serde's own messages begin.
const SERDE_PREFIXES: [&str; 7] = [
    "unknown field ",
    "unknown variant ",
    "invalid type",
    "invalid value",
    "invalid length",
    "missing field `",
    "duplicate field `",
];

/// [`safe_serde_message`] with the declared field it names, if any.
pub fn safe_serde(msg: &str) -> SafeSerde {
    let msg = msg.split(" at line ").next().unwrap_or(msg);
    let msg = msg
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(msg);
    // axum's query extractor puts the path first (`name: unknown field
    // `name`…`), and the path of an unknown field is the client's name:
    // start at serde's own message.
    let msg = SERDE_PREFIXES
        .iter()
        .flat_map(|p| msg.match_indices(p).map(|(i, _)| i))
        .filter(|&i| i == 0 || msg.get(..i).is_some_and(|head| head.ends_with(": ")))
        .min()
        .and_then(|i| msg.get(i..))
        .unwrap_or(msg);
    let plain = |message: String| SafeSerde {
        message,
        field: None,
        unknown_field: false,
    };
    // What serde writes after the client's name: the declared alternatives.
    let alternatives = |rest: &str| {
        [", expected ", ", there are no "]
            .iter()
            .filter_map(|sep| rest.rfind(&format!("`{sep}")).map(|i| (i, sep.len())))
            .max_by_key(|(i, _)| *i)
            .and_then(|(i, _)| rest.get(i + 1..))
            .unwrap_or("")
            .to_owned()
    };
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        return SafeSerde {
            message: format!("an unknown field{}", alternatives(rest)),
            field: None,
            unknown_field: true,
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        return plain(format!("an unknown variant{}", alternatives(rest)));
    }
    if msg.starts_with("invalid type")
        || msg.starts_with("invalid value")
        || msg.starts_with("invalid length")
    {
        let kind = msg.split(':').next().unwrap_or("invalid value");
        return plain(match msg.rsplit_once(", expected ") {
            Some((_, exp)) => format!("{kind}, expected {exp}"),
            None => kind.to_owned(),
        });
    }
    for prefix in ["missing field `", "duplicate field `"] {
        if let Some(rest) = msg.strip_prefix(prefix) {
            // Declared field names are identifiers; anything else is not
            // one of ours and is not echoed.
            let name = rest.strip_suffix('`').unwrap_or("");
            let declared = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            return if declared {
                SafeSerde {
                    message: msg.to_owned(),
                    field: Some(name.to_owned()),
                    unknown_field: false,
                }
            } else {
                plain(format!(
                    "{}field",
                    &prefix[..prefix.len() - "field `".len()]
                ))
            };
        }
    }
    // Syntax errors, custom messages from our own validators (which never
    // echo values): drop quoted and backticked text to be safe.
    let mut out = String::with_capacity(msg.len());
    let mut quote = None;
    for c in msg.chars() {
        match quote {
            None if c == '"' || c == '`' => {
                quote = Some(c);
                out.push(c);
                out.push('…');
            }
            None => out.push(c),
            Some(q) if c == q => {
                quote = None;
                out.push(c);
            }
            Some(_) => {}
        }
    }
    plain(out)
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

    #[test]
    fn unknown_names_are_never_echoed() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Body {
            name: String,
        }
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        enum Kind {
            Grant,
        }
        let e = serde_json::from_str::<Body>(r#"{"jane@example.com": 1}"#)
            .unwrap_err()
            .to_string();
        let s = safe_serde(&e);
        assert!(!s.message.contains("jane"), "{s:?}");
        assert!(s.unknown_field && s.field.is_none(), "{s:?}");
        assert_eq!(s.message, "an unknown field, expected `name`");
        let e = serde_json::from_str::<Kind>(r#""jane@example.com""#)
            .unwrap_err()
            .to_string();
        let s = safe_serde(&e);
        assert!(!s.message.contains("jane"), "{s:?}");
        assert!(s.message.contains("`Grant`"), "{s:?}");
        let e = serde_json::from_str::<Body>("{}").unwrap_err().to_string();
        assert_eq!(safe_serde(&e).field.as_deref(), Some("name"));
        // A hostile name that imitates serde's own text is still dropped.
        let s = safe_serde("unknown field `x`, expected `jane@example.com`, expected `name`");
        assert!(!s.message.contains("jane"), "{s:?}");
        // The query extractor's path prefix is the client's name too.
        let s = safe_serde(
            "Failed to deserialize query string: jane@example.com: unknown field \
             `jane@example.com`, expected `email`",
        );
        assert_eq!(s.message, "an unknown field, expected `email`");
        let s = safe_serde("a: unknown field `x: unknown field `jane`, expected `email`");
        assert_eq!(s.message, "an unknown field, expected `email`");
        let s = safe_serde("something `jane@example.com` and \"jane@example.com\"");
        assert!(!s.message.contains("jane"), "{s:?}");
    }
}
