//! Data-subject requests: creation (with identity verification and merging
//! of duplicates), verification, reading, listing, extension, rejection.
//! Every endpoint needs the `dsr` scope. Planning and execution are not
//! built yet.
//!
//! Verification codes are delivered through a development outbox: when
//! `AppState::outbox` is set (`CUSTOS_DEV_OUTBOX`), the code is written as
//! `<outbox>/<request id>.eml`; otherwise it is not delivered and the
//! answer says `"verification": "pending_delivery"`. The code never
//! appears in a response, a log line or the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use custos_core::blind::IdentityKind;
use custos_core::ids::RequestId;
use custos_core::request::{RequestStatus, RequestType};
use custos_store::{CreatedRequest, RequestInfo};

use crate::extract::{parse_id, ApiJson, ApiPath, ApiQuery, KeyAuth};
use crate::problem::Problem;
use crate::AppState;

/// The person making the request: exactly one identity.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestIdentity {
    /// Email address (resolved through the blind index, never stored).
    #[schema(example = "jane@example.com")]
    pub email: Option<String>,
    /// Phone number in E.164.
    pub phone: Option<String>,
}

/// Body of `POST /v1/requests`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// `access`, `portability`, `erasure`, `rectification`, `restriction`
    /// or `objection`.
    #[serde(rename = "type")]
    #[schema(example = "erasure")]
    pub kind: String,
    /// Who asks.
    pub identity: RequestIdentity,
    /// The application authenticated the person itself: the request is
    /// verified at once. Otherwise a one-time code is issued.
    #[serde(default)]
    pub verified_by_app: bool,
}

/// Answer of `POST /v1/requests`.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedView {
    /// Request id.
    pub id: String,
    /// Lifecycle status.
    pub status: String,
    /// RFC 3339.
    pub due_at: String,
    /// An open request of the same person and type existed and is returned.
    pub merged: bool,
    /// `vouched`, `code_sent` (written to the outbox), `pending_delivery`
    /// (no outbox configured: the code was not delivered) or `unchanged`
    /// (merged).
    pub verification: &'static str,
    /// The whole request.
    pub request: RequestInfo,
}

fn request_id(s: &str) -> Result<RequestId, Problem> {
    parse_id("id", RequestId::parse(s))
}

/// Writes the code as an `.eml` file; returns whether it was delivered.
async fn deliver(
    outbox: &std::path::Path,
    req: &RequestInfo,
    to: &str,
    code: &custos_core::secret::Personal<String>,
) -> bool {
    let to: String = to.chars().filter(|c| !c.is_control()).collect();
    let body = format!(
        "To: {to}\r\nSubject: Your verification code\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\
         Your code to confirm your {} request {} is: {}\r\nIt expires in 24 hours.\r\n",
        req.kind.as_str(),
        req.id,
        code.expose()
    );
    let path = outbox.join(format!("{}.eml", req.id));
    let res = async {
        tokio::fs::create_dir_all(outbox).await?;
        tokio::fs::write(&path, body).await
    }
    .await;
    match res {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e.kind(), "could not write to the outbox");
            false
        }
    }
}

/// Records a data-subject request; an open request of the same person and
/// type is returned instead (200, `merged: true`).
#[utoipa::path(post, path = "/v1/requests", tag = "requests", request_body = CreateRequest,
    security(("api_key" = ["dsr"])),
    responses((status = 201, body = CreatedView), (status = 200, body = CreatedView, description = "merged with an open request"),
        (status = 400, body = Problem), (status = 403, body = Problem)))]
pub async fn create_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiJson(b): ApiJson<CreateRequest>,
) -> Result<(StatusCode, Json<CreatedView>), Problem> {
    let kind = RequestType::parse(&b.kind).ok_or_else(|| {
        Problem::invalid(
            "type",
            "use access, portability, erasure, rectification, restriction or objection",
        )
    })?;
    let (identity, value) = match (b.identity.email, b.identity.phone) {
        (Some(e), None) => (IdentityKind::Email, e),
        (None, Some(ph)) => (IdentityKind::Phone, ph),
        _ => {
            return Err(Problem::invalid(
                "identity",
                "give exactly one identity: email or phone",
            ))
        }
    };
    let CreatedRequest {
        request,
        merged,
        code,
    } = s
        .vault
        .create_request(&p, kind, &identity, &value, b.verified_by_app)
        .await?;
    let verification = match (&code, s.outbox.as_deref()) {
        _ if merged => "unchanged",
        (None, _) => "vouched",
        (Some(c), Some(dir)) if deliver(dir, &request, &value, c).await => "code_sent",
        (Some(_), _) => "pending_delivery",
    };
    let status = if merged {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((
        status,
        Json(CreatedView {
            id: request.id.clone(),
            status: request.status.as_str().to_owned(),
            due_at: request.due_at.clone(),
            merged,
            verification,
            request,
        }),
    ))
}

/// Body of `POST /v1/requests/{id}/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The 6-digit one-time code the person received.
    #[schema(example = "123456")]
    pub code: String,
}

/// Checks the one-time code: 5 attempts within 24 h; the fifth wrong code
/// rejects the request.
#[utoipa::path(post, path = "/v1/requests/{id}/verify", tag = "requests", request_body = VerifyRequest,
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, body = RequestInfo), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn verify_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<VerifyRequest>,
) -> Result<Json<RequestInfo>, Problem> {
    let id = request_id(&id)?;
    Ok(Json(s.vault.verify_request(&p, &id, &b.code).await?))
}

/// One request: status, due date, verification, extension.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, body = RequestInfo), (status = 404, body = Problem)))]
pub async fn get_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RequestInfo>, Problem> {
    let id = request_id(&id)?;
    Ok(Json(s.vault.get_request(&p, &id).await?))
}

/// Query of `GET /v1/requests`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only requests with this status.
    pub status: Option<String>,
    /// Only requests due before this time (RFC 3339 or `YYYY-MM-DD`, UTC).
    pub due_before: Option<String>,
    /// Only open requests past their due date.
    pub overdue: Option<bool>,
}

/// Requests of the tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestList {
    /// Earliest due first (at most 1000).
    pub requests: Vec<RequestInfo>,
}

fn parse_time(field: &str, s: &str) -> Result<i64, Problem> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| {
            let fmt = time::macros::format_description!("[year]-[month]-[day]");
            time::Date::parse(s, &fmt).map(|d| d.midnight().assume_utc())
        })
        .map_err(|_| Problem::invalid(field, "use RFC 3339 or YYYY-MM-DD"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1000)
        .map_err(|_| Problem::invalid(field, "out of range"))
}

/// Lists requests by status, due date, or overdue.
#[utoipa::path(get, path = "/v1/requests", tag = "requests", params(ListQuery),
    security(("api_key" = ["dsr"])),
    responses((status = 200, body = RequestList), (status = 400, body = Problem)))]
pub async fn list_requests(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<RequestList>, Problem> {
    let status = q
        .status
        .map(|x| {
            RequestStatus::parse(&x).ok_or_else(|| {
                Problem::invalid(
                    "status",
                    "use received, verifying, verified, planned, running, waiting_manual, \
                     waiting_processor, completed, rejected or failed",
                )
            })
        })
        .transpose()?;
    let due_before = q
        .due_before
        .map(|x| parse_time("due_before", &x))
        .transpose()?;
    let requests = s
        .vault
        .list_requests(&p, status, due_before, q.overdue.unwrap_or(false))
        .await?;
    Ok(Json(RequestList { requests }))
}

/// Body of `POST /v1/requests/{id}/extend`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// 1 or 2; at most 2 in total (Art. 12(3)).
    pub months: u8,
    /// Why (complexity, number of requests); told to the person.
    pub reason: String,
}

/// Extends the due date by 1 or 2 months (2 at most in total), with a reason.
#[utoipa::path(post, path = "/v1/requests/{id}/extend", tag = "requests", request_body = ExtendRequest,
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, body = RequestInfo), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn extend_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<ExtendRequest>,
) -> Result<Json<RequestInfo>, Problem> {
    let id = request_id(&id)?;
    Ok(Json(
        s.vault.extend_request(&p, &id, b.months, &b.reason).await?,
    ))
}

/// Body of `POST /v1/requests/{id}/reject`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (e.g. manifestly unfounded, Art. 12(5)).
    pub reason: String,
}

/// Rejects a request that has not started running.
#[utoipa::path(post, path = "/v1/requests/{id}/reject", tag = "requests", request_body = RejectRequest,
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, body = RequestInfo), (status = 400, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn reject_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<RejectRequest>,
) -> Result<Json<RequestInfo>, Problem> {
    let id = request_id(&id)?;
    Ok(Json(s.vault.reject_request(&p, &id, &b.reason).await?))
}
