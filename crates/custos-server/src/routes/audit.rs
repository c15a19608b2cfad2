//! Reading the audit log.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::extract::{ApiQuery, KeyAuth};
use crate::problem::Problem;
use crate::AppState;

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries about this subject id or token.
    pub subject: Option<String>,
    /// Entries after this sequence number (paging).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// At most this many (default 100, max 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// One audit entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryView {
    /// Position in the chain.
    pub seq: i64,
    /// RFC 3339.
    pub at: String,
    /// API key id or `admin`.
    pub actor: String,
    /// What was done.
    pub action: String,
    /// Subject id or token.
    pub subject: Option<String>,
    /// Declared purpose or reason.
    pub purpose: Option<String>,
    /// Outcome.
    pub outcome: String,
    /// Chain hash (hex).
    pub hash: String,
}

/// A page of audit entries.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Entries in chain order.
    pub entries: Vec<AuditEntryView>,
    /// Pass as `after` for the next page.
    pub next_after: Option<i64>,
}

/// The tenant's audit entries (audit scope).
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery), security(("api_key" = ["audit"])),
    responses((status = 200, body = AuditPage), (status = 403, body = Problem)))]
pub async fn list(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, Problem> {
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::invalid("limit", "must be between 1 and 1000"));
    }
    if q.after.is_some_and(|a| a < 0) {
        return Err(Problem::invalid("after", "must be 0 or more"));
    }
    let entries = s
        .vault
        .audit()
        .entries(&p, q.subject.as_deref(), q.after.unwrap_or(0), limit)
        .await?;
    let next_after = (entries.len() as i64 == limit)
        .then(|| entries.last().map(|e| e.seq))
        .flatten();
    Ok(Json(AuditPage {
        entries: entries
            .into_iter()
            .map(|e| AuditEntryView {
                seq: e.seq,
                at: custos_store::rfc3339(e.at_us),
                actor: e.event.actor,
                action: e.event.action,
                subject: e.event.subject,
                purpose: e.event.purpose,
                outcome: e.event.outcome,
                hash: hex_encode(&e.hash),
            })
            .collect(),
        next_after,
    }))
}

fn hex_encode(b: &[u8]) -> String {
    use std::fmt::Write;
    b.iter()
        .fold(String::with_capacity(b.len() * 2), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}
