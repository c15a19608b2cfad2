//! Data-subject requests: creation (with identity verification and merging
//! of duplicates), verification, reading, listing, extension, rejection.
//! planning (dry run), steps, manual completion, processor callbacks,
//! archives and completion records. Every endpoint needs the `dsr` scope
//! except the one-time archive download (the link's 256-bit token is the
//! credential) and processor callbacks (HMAC-signed with the processor's
//! secret). Execution itself is the background [`custos_dsr::Executor`].
//!
//! Verification codes are sent by email through `AppState::mailer`
//! ([`custos_dsr::mail`]): over SMTP (`CUSTOS_SMTP_URL`), or written as
//! `<outbox>/<request id>.eml` in the development outbox
//! (`CUSTOS_DEV_OUTBOX`). Without a mailer, or when sending fails, the code
//! is not delivered and the answer says `"verification": "pending_delivery"`.
//! The code never appears in a response, a log line or the audit log.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use custos_core::blind::IdentityKind;
use custos_core::ids::RequestId;
use custos_core::request::{RequestStatus, RequestType};
use custos_store::{CreatedRequest, PendingRequest, RequestInfo, StepInfo};

use crate::extract::{parse_id, parse_time, ApiJson, ApiPath, ApiQuery, KeyAuth};
use crate::problem::Problem;
use crate::AppState;

/// The person making the request: exactly one identity.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestIdentity {
    /// Email address (resolved through the blind index, never stored).
    #[schema(example = "jane@example.com")]
    pub email: Option<String>,
    /// Phone number in E.164.
    pub phone: Option<String>,
}

crate::redact::redacted_debug!(RequestIdentity { ; email, phone });

/// Body of `POST /v1/requests`.
#[derive(Deserialize, ToSchema)]
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
    /// Rectification only: field name (as in the data map) → new value,
    /// applied wherever a dataset of the person has that field. JSON
    /// `null` clears the field; the text `"null"` is written as text.
    #[serde(default)]
    pub changes: Option<std::collections::BTreeMap<String, Option<String>>>,
}

crate::redact::redacted_debug!(CreateRequest { kind, verified_by_app ; identity, changes });

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
    /// `vouched`, `code_sent` (emailed, or written to the development
    /// outbox), `pending_delivery` (no mail transport configured, or sending
    /// failed: the code was not delivered) or `unchanged` (merged).
    pub verification: &'static str,
    /// The whole request.
    pub request: RequestInfo,
}

fn request_id(s: &str) -> Result<RequestId, Problem> {
    parse_id("id", RequestId::parse(s))
}

/// Emails the code (or writes it to the outbox); returns whether it was
/// delivered. Failures are logged by kind only.
async fn deliver(
    mailer: &dyn custos_dsr::Mailer,
    req: &RequestInfo,
    to: &str,
    code: &custos_core::secret::Personal<String>,
) -> bool {
    let body = format!(
        "Your code to confirm your {} request {} is: {}\r\nIt expires in 24 hours.\r\n",
        req.kind.as_str(),
        req.id,
        code.expose()
    );
    match mailer
        .send(to, "Your verification code", &body, &req.id)
        .await
    {
        Ok(custos_dsr::Delivery::Delivered) => true,
        Ok(custos_dsr::Delivery::NotConfigured) => false,
        Err(e) => {
            tracing::warn!(request = %req.id, error = %e, "verification code not delivered");
            false
        }
    }
}

/// Records a data-subject request; an open request of the same person and
/// type is returned instead (200, `merged: true`).
#[utoipa::path(post, path = "/v1/requests", tag = "requests", request_body = CreateRequest,
    security(("api_key" = ["dsr"])),
    responses((status = 201, body = CreatedView), (status = 200, body = CreatedView, description = "merged with an open request"),
        (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 429, body = Problem, description = "too many verification codes to this address or of this tenant; see Retry-After")))]
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
    let changes = match (kind, b.changes) {
        (RequestType::Rectification, Some(c)) if !c.is_empty() => c,
        (RequestType::Rectification, _) => {
            return Err(Problem::invalid(
                "changes",
                "a rectification names the fields to correct: {\"field\": \"new value\"}",
            ))
        }
        (_, Some(_)) => {
            return Err(Problem::invalid(
                "changes",
                "only a rectification request carries changes",
            ))
        }
        (_, None) => Default::default(),
    };
    if changes.keys().any(|f| f.is_empty() || f.len() > 128) {
        return Err(Problem::invalid(
            "changes",
            "field names are 1 to 128 characters",
        ));
    }
    // A new email or phone must be one, and no key or tenant column is
    // changed, before any store is.
    if let Some(map) = s.map.current() {
        for (field, value) in &changes {
            let refusal = map
                .systems
                .iter()
                .flat_map(|sys| &sys.datasets)
                .find_map(|d| d.rectification_refusal(field));
            if let Some(why) = refusal {
                return Err(Problem::invalid(format!("changes.{field}"), why));
            }
            let kind = map
                .systems
                .iter()
                .flat_map(|sys| &sys.datasets)
                .flat_map(|d| &d.fields)
                .find_map(|f| match f.identity {
                    Some(custos_map::IdentityKind::Email) if f.name == *field => {
                        Some(IdentityKind::Email)
                    }
                    Some(custos_map::IdentityKind::Phone) if f.name == *field => {
                        Some(IdentityKind::Phone)
                    }
                    _ => None,
                });
            if let Some(kind) = kind {
                let Some(value) = value else {
                    return Err(Problem::invalid(
                        format!("changes.{field}"),
                        format!(
                            "the person's {} cannot be cleared; file an erasure instead",
                            kind.as_str()
                        ),
                    ));
                };
                if kind.normalise(value).is_err() {
                    return Err(Problem::invalid(
                        format!("changes.{field}"),
                        format!("the new value is not a valid {}", kind.as_str()),
                    ));
                }
            }
        }
    }
    let mut payload = custos_dsr::Payload {
        changes,
        ..Default::default()
    };
    payload
        .identities
        .insert(identity.as_str().to_owned(), vec![value.clone()]);
    // A code will be mailed unless the application vouches: limit them per
    // tenant and per address before anything is stored (429, Retry-After).
    if !b.verified_by_app {
        if let Ok(destination) = identity.normalise(&value) {
            s.code_mails.take(p.tenant.as_str(), destination.expose())?;
        }
    }
    let CreatedRequest {
        request,
        merged,
        code,
    } = s
        .vault
        .requests()
        .create(
            &p,
            kind,
            &identity,
            &value,
            b.verified_by_app,
            &payload.seal()?,
        )
        .await?;
    let verification = match &code {
        _ if merged => "unchanged",
        None => "vouched",
        // There is no SMS transport: a phone number only gets its code in
        // the development outbox.
        Some(c)
            if (identity == IdentityKind::Email
                || s.mailer.transport() == custos_dsr::Transport::Outbox)
                && deliver(&*s.mailer, &request, &value, c).await =>
        {
            "code_sent"
        }
        Some(_) => "pending_delivery",
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
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyRequest {
    /// The 6-digit one-time code the person received.
    #[schema(example = "123456")]
    pub code: String,
}

crate::redact::redacted_debug!(VerifyRequest { ; code });

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
    Ok(Json(s.vault.requests().verify(&p, &id, &b.code).await?))
}

/// A request with its steps.
#[derive(Debug, Serialize, ToSchema)]
pub struct RequestView {
    /// The request.
    #[serde(flatten)]
    pub request: RequestInfo,
    /// Its steps, in order (empty until planned).
    pub steps: Vec<StepInfo>,
}

/// One request: status, due date, verification, extension, steps.
#[utoipa::path(get, path = "/v1/requests/{id}", tag = "requests",
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, body = RequestView), (status = 404, body = Problem)))]
pub async fn get_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<RequestView>, Problem> {
    let id = request_id(&id)?;
    let request = s.vault.requests().get(&p, &id).await?;
    let steps = s.vault.requests().steps(&p, &id).await?;
    Ok(Json(RequestView { request, steps }))
}

/// Query of `GET /v1/requests`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only requests with this status.
    #[param(
        pattern = "^(received|verifying|verified|planned|running|waiting_manual|waiting_processor|completed|rejected|failed)$"
    )]
    pub status: Option<String>,
    /// Only requests due before this time (RFC 3339 or `YYYY-MM-DD`, UTC).
    #[param(format = DateTime)]
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
        .requests()
        .list(&p, status, due_before, q.overdue.unwrap_or(false))
        .await?;
    Ok(Json(RequestList { requests }))
}

/// Body of `POST /v1/requests/{id}/extend`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    /// 1 or 2; at most 2 in total (Art. 12(3)).
    #[schema(minimum = 1, maximum = 2)]
    #[serde(deserialize_with = "crate::extract::whole_number_u8")]
    pub months: u8,
    /// Why (complexity, number of requests); told to the person.
    #[schema(min_length = 1, pattern = "\\S")]
    pub reason: String,
}

crate::redact::redacted_debug!(ExtendRequest { months ; reason });

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
        s.vault
            .requests()
            .extend(&p, &id, b.months, &b.reason)
            .await?,
    ))
}

/// Body of `POST /v1/requests/{id}/reject`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    /// Why (e.g. manifestly unfounded, Art. 12(5)).
    #[schema(min_length = 1, pattern = "\\S")]
    pub reason: String,
}

crate::redact::redacted_debug!(RejectRequest { ; reason });

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
    Ok(Json(s.vault.requests().reject(&p, &id, &b.reason).await?))
}

/// What a request would do, system by system, with counts: which steps,
/// how many rows, files and keys each dataset holds of the person, and
/// whether erasure would delete, anonymise or retain them, and (`scans`)
/// every lookup no index serves, with the index to add. Changes nothing.
#[utoipa::path(post, path = "/v1/requests/{id}/plan", tag = "requests",
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, description = "the plan with counts"), (status = 404, body = Problem)))]
pub async fn plan_request(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let id = request_id(&id)?;
    let r = s.vault.requests().get(&p, &id).await?;
    let pending = PendingRequest {
        tenant: p.tenant.clone(),
        id,
        kind: r.kind,
        subject: r.subject.clone(),
    };
    Ok(Json(s.executor().dry_run(&pending).await?))
}

/// Body of `POST /v1/requests/{id}/steps/{step}/complete`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CompleteStep {
    /// What was done. Stored sealed under the request's key, shown to
    /// `dsr` keys of the tenant, wiped with the request's texts.
    pub note: Option<String>,
}

crate::redact::redacted_debug!(CompleteStep { ; note });

/// Ticks off a manual step (paper files shredded, recipient told by phone).
#[utoipa::path(post, path = "/v1/requests/{id}/steps/{step}/complete", tag = "requests",
    request_body = CompleteStep, params(("id" = String, Path), ("step" = i64, Path)),
    security(("api_key" = ["dsr"])),
    responses((status = 200, body = StepInfo), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn complete_step(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath((id, step)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<CompleteStep>,
) -> Result<Json<StepInfo>, Problem> {
    let id = request_id(&id)?;
    let step = step_no(&step)?;
    Ok(Json(
        s.vault
            .requests()
            .complete_manual_step(&p, &id, step, b.note.as_deref())
            .await?,
    ))
}

/// Body of `POST /v1/requests/{id}/steps/{step}/retry` and `/skip`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StepDecision {
    /// Why (the cause was fixed; the work was done another way). Stored
    /// sealed under the request's key, shown to `dsr` keys of the tenant,
    /// wiped with the request's texts; never in the audit log.
    pub reason: String,
}

crate::redact::redacted_debug!(StepDecision { ; reason });

/// Runs a failed step again from its first attempt, once its cause is
/// fixed; a failed request runs again. Audited (`dsr.step.retried`).
#[utoipa::path(post, path = "/v1/requests/{id}/steps/{step}/retry", tag = "requests",
    request_body = StepDecision, params(("id" = String, Path), ("step" = i64, Path)),
    security(("api_key" = ["dsr"])),
    responses((status = 200, body = StepInfo), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn retry_step(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath((id, step)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<StepDecision>,
) -> Result<Json<StepInfo>, Problem> {
    let id = request_id(&id)?;
    let step = step_no(&step)?;
    Ok(Json(
        s.vault
            .requests()
            .retry_step(&p, &id, step, &b.reason)
            .await?,
    ))
}

/// Skips a failed step (the work was done another way, or cannot be
/// done): it counts as finished, and the completion record says it was
/// skipped, with the reason sealed. Audited (`dsr.step.skipped`).
#[utoipa::path(post, path = "/v1/requests/{id}/steps/{step}/skip", tag = "requests",
    request_body = StepDecision, params(("id" = String, Path), ("step" = i64, Path)),
    security(("api_key" = ["dsr"])),
    responses((status = 200, body = StepInfo), (status = 400, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn skip_step(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath((id, step)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<StepDecision>,
) -> Result<Json<StepInfo>, Problem> {
    let id = request_id(&id)?;
    let step = step_no(&step)?;
    Ok(Json(
        s.vault
            .requests()
            .skip_step(&p, &id, step, &b.reason)
            .await?,
    ))
}

fn step_no(s: &str) -> Result<i64, Problem> {
    s.parse::<i64>()
        .ok()
        .filter(|n| *n >= 1)
        .ok_or_else(|| Problem::invalid("step", "a step number from 1"))
}

/// A one-time download link of an access archive.
#[derive(Debug, Serialize, ToSchema)]
pub struct ArchiveLinkView {
    /// Path of the download (`/v1/archives/arc_…`); works once.
    pub url: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// Mints a one-time, expiring link to the request's archive (access and
/// portability requests, once collected). Each call gives a new link.
#[utoipa::path(get, path = "/v1/requests/{id}/archive", tag = "requests",
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, body = ArchiveLinkView), (status = 404, body = Problem)))]
pub async fn archive_link(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ArchiveLinkView>, Problem> {
    let id = request_id(&id)?;
    let link = s.vault.requests().archive_link(&p, &id).await?;
    Ok(Json(ArchiveLinkView {
        url: format!("/v1/archives/{}", link.token.expose()),
        expires_at: link.expires_at,
    }))
}

/// Downloads an archive through a one-time link: the ZIP, decrypted. A
/// used, expired or unknown link answers 404 alike.
#[utoipa::path(get, path = "/v1/archives/{token}", tag = "requests",
    params(("token" = String, Path)),
    responses((status = 200, content_type = "application/zip"), (status = 404, body = Problem)))]
pub async fn download_archive(
    State(s): State<AppState>,
    ApiPath(token): ApiPath<String>,
) -> Result<axum::response::Response, Problem> {
    use axum::http::header;
    use axum::response::IntoResponse;
    if !token.starts_with("arc_") || token.len() != 68 {
        return Err(custos_store::StoreError::NotFound("archive link").into());
    }
    let (id, zip) = s.vault.requests().download_archive(&token).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/zip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}.zip\""),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        zip.expose().clone(),
    )
        .into_response())
}

/// The signed completion record: every step, what it touched (counts),
/// when and by whom. Its SHA-256 is in the audit chain (`dsr.completed`).
#[utoipa::path(get, path = "/v1/requests/{id}/completion", tag = "requests",
    params(("id" = String, Path)), security(("api_key" = ["dsr"])),
    responses((status = 200, description = "record and signature"), (status = 404, body = Problem)))]
pub async fn completion(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<serde_json::Value>, Problem> {
    let id = request_id(&id)?;
    Ok(Json(s.vault.requests().completion(&p, &id).await?))
}

/// A processor confirms a notice: `custos-signature: t=…,v2=…`, an
/// HMAC-SHA256 over the tenant, request, step, timestamp and body under a
/// key derived for the request's tenant from the processor's secret (see
/// `docs/requests.md`). A signature made for another tenant, request or
/// step, a `v1` signature, or one outside the 5-minute window is refused
/// (401) and the refusal is audited (`dsr.callback_refused`, ids only).
#[utoipa::path(post, path = "/v1/processor-callbacks/{id}/{step}", tag = "requests",
    request_body(content = String, content_type = "application/json",
        description = "{\"holds_nothing_more\": true, \"note\": \"…\", \"counts\": {…}}, signed"),
    params(("id" = String, Path), ("step" = i64, Path)),
    responses((status = 200, body = StepInfo), (status = 401, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)))]
pub async fn processor_callback(
    State(s): State<AppState>,
    ApiPath((id, step)): ApiPath<(String, String)>,
    headers: axum::http::HeaderMap,
    crate::extract::ApiBytes(body): crate::extract::ApiBytes,
) -> Result<Json<StepInfo>, Problem> {
    let id = request_id(&id)?;
    let step = step_no(&step)?;
    let owner = s.vault.requests().step_owner(&id, step).await?;
    let tenant = owner.tenant.clone();
    let processor = owner.processor.clone();
    let unauthenticated = || {
        Problem::from(custos_store::StoreError::Unauthenticated(
            "missing or invalid custos-signature",
        ))
    };
    let processor = processor.ok_or_else(unauthenticated)?;
    let secret = s
        .executor
        .var(&custos_dsr::processor_secret_var(&processor))
        .ok_or_else(unauthenticated)?;
    let rid = id.to_string();
    let target = custos_connectors::notice::CallbackTarget {
        tenant: tenant.as_str(),
        request_id: &rid,
        step,
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let verified = match headers
        .get(custos_connectors::notice::SIGNATURE_HEADER)
        .and_then(|h| h.to_str().ok())
    {
        Some(header) => custos_connectors::notice::verify_callback(
            secret.as_bytes(),
            &target,
            header,
            &body,
            now,
            custos_connectors::notice::DEFAULT_TOLERANCE_SECS,
        )
        .map_err(|e| e.to_string()),
        None => Err("no signature".to_owned()),
    };
    if let Err(reason) = verified {
        s.vault
            .requests()
            .callback_refused(&tenant, &id, step, &processor, &reason)
            .await?;
        return Err(unauthenticated());
    }
    let confirmation: custos_connectors::notice::ProcessorConfirmation =
        serde_json::from_slice(&body).map_err(|e| {
            Problem::invalid(
                "body",
                format!(
                    "not a confirmation (line {}, column {})",
                    e.line(),
                    e.column()
                ),
            )
        })?;
    // What the processor holds of the person goes, sealed, into the
    // access archive; for other request types it is not kept at all.
    let mut records = None;
    if let Some(data) = confirmation.data.as_deref().filter(|_| {
        matches!(
            owner.request_type,
            RequestType::Access | RequestType::Portability
        )
    }) {
        custos_connectors::notice::ProcessorRecords::check(data)
            .map_err(|(field, what)| Problem::invalid(field, format!("expected {what}")))?;
        let answer = serde_json::to_vec(data)
            .map_err(|_| Problem::invalid("data", "records must be JSON objects"))?;
        s.vault
            .requests()
            .store_processor_answer(
                &tenant,
                &id,
                step,
                &processor,
                &custos_core::secret::Personal::new(answer),
            )
            .await?;
        records = Some(data.iter().map(|d| d.records.len()).sum::<usize>());
    }
    // Counts are kept as numbers under identifier-like names only: the
    // processor's words are free text, kept sealed as the step's note.
    let counts = confirmation
        .counts
        .as_ref()
        .and_then(|c| c.as_object())
        .map(|o| {
            o.iter()
                .filter(|(k, v)| {
                    v.is_number()
                        && k.len() <= 64
                        && k.chars()
                            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<serde_json::Map<_, _>>()
        });
    let result = serde_json::json!({
        "processor": processor,
        "holds_nothing_more": confirmation.holds_nothing_more,
        "counts": counts,
        "records": records,
    });
    Ok(Json(
        s.vault
            .requests()
            .confirm_processor_step(
                &tenant,
                &id,
                step,
                &processor,
                confirmation.note.as_deref(),
                result,
            )
            .await?,
    ))
}
