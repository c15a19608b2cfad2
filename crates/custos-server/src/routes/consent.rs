//! The consent ledger's API (issue 4): purposes and policy versions,
//! recording events (with `Sec-GPC` handling), per-subject state, history
//! with proof, receipts, the check hot path and streamed suppression lists.
//!
//! Purposes come from the data map in service; handlers turn them into
//! [`PurposeRule`]s for the vault, which never sees the map.
//!
//! Scopes: policy versions need `admin` (a material version asks everyone
//! again); recording needs `write`; state, history and receipts need any of
//! `write`, `lookup`, `reveal`, and proof values come back in clear only
//! with `reveal` and a `purpose` (audited); the check accepts any key of the
//! tenant (it is the hot path and reveals no personal data); suppression
//! lists need `lookup` or `processor`.

use std::collections::HashMap;
use std::fmt::Write as _;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use custos_core::consent::{Action, Channel, PurposeRule, Revalidation};
use custos_core::ids::{Audience, Purpose, SubjectId};
use custos_map::DataMap;
use custos_store::{
    Actor, CheckAnswer, CheckTarget, ConsentInput, ConsentView, HistoryEntry, PolicyInfo,
    Principal, Receipt, RecordedEvent, StoreError, SuppressedRow,
};

use crate::extract::{parse_id, parse_time, subject_id, ApiJson, ApiPath, ApiQuery, KeyAuth};
use crate::problem::Problem;
use crate::AppState;

fn no_map() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_map",
        "No data map",
        "consent needs the purposes of a data map; start the server with --map FILE",
    )
}

fn map(s: &AppState) -> Result<std::sync::Arc<DataMap>, Problem> {
    s.map.current().ok_or_else(no_map)
}

/// Finds a purpose in the map. `in_path`: 404 (the resource does not
/// exist); otherwise 400 naming the field.
fn find_rule(map: &DataMap, raw: &str, field: &str, in_path: bool) -> Result<PurposeRule, Problem> {
    let id = parse_id(field, Purpose::parse(raw))?;
    match map
        .purposes
        .iter()
        .find(|p| p.id.as_str() == id.as_str())
        .and_then(custos_map::Purpose::consent_rule)
    {
        Some(r) => Ok(r),
        None => {
            let detail = format!(
                "{field}: purpose {id} is not declared in the data map; see GET /v1/purposes"
            );
            let p = if in_path {
                Problem::new(
                    StatusCode::NOT_FOUND,
                    "unknown_purpose",
                    "Unknown purpose",
                    detail,
                )
            } else {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_purpose",
                    "Unknown purpose",
                    detail,
                )
            };
            Err(p.with_field(field))
        }
    }
}

fn actor(p: &Principal) -> Actor {
    Actor::Key(p.clone())
}

// ----- purposes and versions -------------------------------------------------

/// A purpose with its policy versions.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeView {
    /// Purpose id.
    pub id: String,
    /// Title.
    pub title: String,
    /// Legal basis (`consent`, `contract`, `legitimate_interest`, …).
    pub basis: String,
    /// Whether the ledger decides it (consent; legitimate interest for objections).
    pub governed: bool,
    /// Sale, sharing or targeted advertising (GPC opts out).
    pub sale_or_sharing: bool,
    /// Whether the service needs it.
    pub mandatory: bool,
    /// The version in force now.
    pub current_version: Option<i64>,
    /// Every version, ascending (texts via `GET /v1/purposes/{id}/versions/{version}`).
    pub versions: Vec<PolicyInfo>,
}

/// `GET /v1/purposes`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PurposeList {
    /// Purposes of the data map in service.
    pub purposes: Vec<PurposeView>,
}

/// The map's purposes with their current policy versions.
#[utoipa::path(get, path = "/v1/purposes", tag = "consent", security(("api_key" = [])),
    responses((status = 200, body = PurposeList), (status = 404, body = Problem)))]
pub async fn list_purposes(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
) -> Result<Json<PurposeList>, Problem> {
    let map = map(&s)?;
    let all = s
        .vault
        .consent()
        .list_policies(&actor(&p), &p.tenant)
        .await?;
    let mut by_purpose: HashMap<String, Vec<PolicyInfo>> = HashMap::new();
    for v in all {
        by_purpose.entry(v.purpose.clone()).or_default().push(v);
    }
    let mut purposes = Vec::with_capacity(map.purposes.len());
    for mp in &map.purposes {
        let Some(rule) = mp.consent_rule() else {
            continue;
        };
        let policies = s.vault.consent().policies(&p.tenant, &rule.id).await?;
        purposes.push(PurposeView {
            id: rule.id.to_string(),
            title: rule.title.clone(),
            basis: rule.basis.as_str().to_owned(),
            governed: rule.basis.governed(),
            sale_or_sharing: rule.sale_or_sharing,
            mandatory: mp.mandatory,
            current_version: policies.current(custos_store::now_us()).map(|v| v.version),
            versions: by_purpose.remove(rule.id.as_str()).unwrap_or_default(),
        });
    }
    Ok(Json(PurposeList { purposes }))
}

/// Body of `POST /v1/purposes/{id}/versions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVersion {
    /// The text shown to people; stored, and its SHA-256 goes into every event.
    #[schema(example = "We send a monthly email about new features. Unsubscribe at any time.")]
    pub text: String,
    /// A material change asks everyone who agreed to an older version again.
    pub material: bool,
    /// When this version comes into force (date or RFC 3339); default now.
    pub effective_at: Option<String>,
    /// For material versions: `deny` (default: older grants stop counting at
    /// once) or `grace_until` (they count until `grace_until`).
    #[schema(example = "deny")]
    pub revalidation: Option<String>,
    /// End of the grace period (date or RFC 3339), with `grace_until`.
    pub grace_until: Option<String>,
}

/// Publishes a new policy version of a consent or legitimate-interest purpose.
#[utoipa::path(post, path = "/v1/purposes/{id}/versions", tag = "consent", request_body = NewVersion,
    params(("id" = String, Path)), security(("api_key" = ["admin"])),
    responses((status = 201, body = PolicyInfo), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn publish_version(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<NewVersion>,
) -> Result<(StatusCode, Json<PolicyInfo>), Problem> {
    let rule = find_rule(&*map(&s)?, &id, "id", true)?;
    let effective = b
        .effective_at
        .as_deref()
        .map(|t| parse_time("effective_at", t))
        .transpose()?;
    let revalidation = match (b.revalidation.as_deref(), b.grace_until.as_deref()) {
        (None | Some("deny"), None) => Revalidation::Deny,
        (Some("grace_until"), Some(t)) => Revalidation::GraceUntil(parse_time("grace_until", t)?),
        (Some("grace_until"), None) => {
            return Err(Problem::invalid(
                "grace_until",
                "revalidation grace_until needs a grace_until date",
            ))
        }
        (None | Some("deny"), Some(_)) => {
            return Err(Problem::invalid(
                "grace_until",
                "only with \"revalidation\": \"grace_until\"",
            ))
        }
        (Some(_), _) => return Err(Problem::invalid("revalidation", "use deny or grace_until")),
    };
    let info = s
        .vault
        .consent()
        .publish_policy(
            &actor(&p),
            &p.tenant,
            &rule,
            &b.text,
            b.material,
            effective,
            revalidation,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(info)))
}

/// One policy version with its text.
#[derive(Debug, Serialize, ToSchema)]
pub struct VersionText {
    /// Metadata.
    #[serde(flatten)]
    pub info: PolicyInfo,
    /// The text shown.
    pub text: String,
}

/// One policy version and its text.
#[utoipa::path(get, path = "/v1/purposes/{id}/versions/{version}", tag = "consent",
    params(("id" = String, Path), ("version" = i64, Path)), security(("api_key" = [])),
    responses((status = 200, body = VersionText), (status = 404, body = Problem)))]
pub async fn get_version(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath((id, version)): ApiPath<(String, i64)>,
) -> Result<Json<VersionText>, Problem> {
    let rule = find_rule(&*map(&s)?, &id, "id", true)?;
    let a = actor(&p);
    let text = s
        .vault
        .consent()
        .policy_text(&a, &p.tenant, &rule.id, version)
        .await?;
    let info = s
        .vault
        .consent()
        .list_policies(&a, &p.tenant)
        .await?
        .into_iter()
        .find(|v| v.purpose == rule.id.as_str() && v.version == version)
        .ok_or(StoreError::NotFound("policy version"))?;
    Ok(Json(VersionText { info, text }))
}

// ----- recording -------------------------------------------------------------

/// Body of `POST /v1/subjects/{id}/consents`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecordBody {
    /// Purpose id from the data map.
    #[schema(example = "newsletter")]
    pub purpose: String,
    /// `grant`, `withdraw` (consent purposes) or `object` (legitimate interest).
    #[schema(example = "grant")]
    pub action: String,
    /// Policy version whose text was shown; required for `grant`.
    #[schema(example = 1)]
    pub version: Option<i64>,
    /// Channel (`signup-form`, `email-link`, …); default `api`.
    #[schema(example = "signup-form")]
    pub channel: Option<String>,
    /// Client IP address; stored encrypted under the subject's key.
    #[schema(example = "192.0.2.10")]
    pub ip: Option<String>,
    /// Client user agent; stored encrypted under the subject's key.
    pub user_agent: Option<String>,
    /// The subject acted (an unticked box ticked); required `true` for `grant`.
    #[serde(default)]
    pub affirmative: bool,
    /// Form or checkbox id.
    #[schema(example = "signup-newsletter-checkbox")]
    pub form_id: Option<String>,
}

crate::redact::redacted_debug!(RecordBody { purpose, action, version, channel, affirmative ; ip, user_agent, form_id });

/// What was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct Recorded {
    /// The events, the requested one first, then GPC opt-outs.
    pub events: Vec<RecordedEvent>,
    /// Whether the request carried `Sec-GPC: 1`.
    pub gpc: bool,
    /// The answer a check of the requested purpose gives now.
    pub check: CheckAnswer,
}

fn gpc_signal(h: &HeaderMap) -> bool {
    h.get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1")
}

/// Records a grant, withdrawal or objection, with proof. A request with
/// `Sec-GPC: 1` also records an opt-out of every sale/sharing purpose of
/// the map the subject is opted into.
#[utoipa::path(post, path = "/v1/subjects/{id}/consents", tag = "consent", request_body = RecordBody,
    params(("id" = String, Path), ("Sec-GPC" = Option<String>, Header, description = "Global Privacy Control: 1 opts out of sale/sharing purposes")),
    security(("api_key" = ["write"])),
    responses((status = 201, body = Recorded), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 410, body = Problem)))]
pub async fn record(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<RecordBody>,
) -> Result<(StatusCode, Json<Recorded>), Problem> {
    let subject = subject_id(&id)?;
    let map = map(&s)?;
    let rule = find_rule(&map, &b.purpose, "purpose", false)?;
    let action = Action::parse(&b.action)
        .ok_or_else(|| Problem::invalid("action", "use grant, withdraw or object"))?;
    let channel = Channel::parse(b.channel.as_deref().unwrap_or("api"))
        .map_err(|e| Problem::invalid("channel", e.to_string()))?;
    let gpc = gpc_signal(&headers);
    let input = ConsentInput {
        action,
        version: b.version,
        channel,
        affirmative: b.affirmative,
        gpc,
        form_id: b.form_id,
        ip: b.ip,
        user_agent: b.user_agent,
    };
    let rules = map.consent_rules();
    let a = actor(&p);
    let events = s
        .vault
        .consent()
        .record(&a, &p.tenant, &subject, &rule, &input, &rules)
        .await?;
    let check = s
        .vault
        .consent()
        .check(&a, &p.tenant, &CheckTarget::Subject(subject), &rule)
        .await?;
    Ok((StatusCode::CREATED, Json(Recorded { events, gpc, check })))
}

// ----- reading ---------------------------------------------------------------

/// `GET /v1/subjects/{id}/consents`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsentList {
    /// Subject id.
    pub subject: String,
    /// Per governed purpose.
    pub consents: Vec<ConsentView>,
}

/// Per purpose: state, version agreed, current version, needs_revalidation, since.
#[utoipa::path(get, path = "/v1/subjects/{id}/consents", tag = "consent",
    params(("id" = String, Path)), security(("api_key" = ["write"]), ("api_key" = ["lookup"]), ("api_key" = ["reveal"])),
    responses((status = 200, body = ConsentList), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn list_consents(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<ConsentList>, Problem> {
    let subject = subject_id(&id)?;
    let rules = map(&s)?.consent_rules();
    let consents = s
        .vault
        .consent()
        .states(&actor(&p), &p.tenant, &subject, &rules)
        .await?;
    Ok(Json(ConsentList {
        subject: subject.to_string(),
        consents,
    }))
}

/// Query of the history.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    /// Declared purpose of reading the proof; with the reveal scope, IP
    /// addresses and user agents come back in clear (audited).
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub purpose: Option<String>,
}

/// `GET /v1/subjects/{id}/consents/history`.
#[derive(Debug, Serialize, ToSchema)]
pub struct History {
    /// Subject id.
    pub subject: String,
    /// The ledger, oldest first.
    pub events: Vec<HistoryEntry>,
}

/// The subject's ledger with proof (proof in clear only with reveal scope and a purpose; audited).
#[utoipa::path(get, path = "/v1/subjects/{id}/consents/history", tag = "consent",
    params(("id" = String, Path), HistoryQuery),
    security(("api_key" = ["reveal"]), ("api_key" = ["write"]), ("api_key" = ["lookup"])),
    responses((status = 200, body = History), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn history(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<Json<History>, Problem> {
    let subject = subject_id(&id)?;
    let purpose = q
        .purpose
        .map(|x| parse_id("purpose", Purpose::parse(&x)))
        .transpose()?;
    let events = s
        .vault
        .consent()
        .history(&actor(&p), &p.tenant, &subject, purpose.as_ref())
        .await?;
    Ok(Json(History {
        subject: subject.to_string(),
        events,
    }))
}

/// Query of the receipt.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReceiptQuery {
    /// `json` or `html`; default from the Accept header (JSON unless it asks for HTML).
    #[param(pattern = "^(json|html)$")]
    pub format: Option<String>,
}

/// A consent receipt: what the person agreed to, when, to which text, and how to withdraw.
#[utoipa::path(get, path = "/v1/subjects/{id}/consents/receipt", tag = "consent",
    params(("id" = String, Path), ReceiptQuery),
    security(("api_key" = ["write"]), ("api_key" = ["lookup"]), ("api_key" = ["reveal"])),
    responses((status = 200, description = "JSON, or an HTML page with format=html / Accept: text/html",
            content((Receipt = "application/json"), (String = "text/html"))),
        (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn receipt(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    headers: HeaderMap,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ReceiptQuery>,
) -> Result<Response, Problem> {
    let subject = subject_id(&id)?;
    let html = match q.format.as_deref() {
        Some("html") => true,
        Some("json") => false,
        Some(_) => return Err(Problem::invalid("format", "use json or html")),
        None => headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("text/html")),
    };
    let map = map(&s)?;
    let rules = map.consent_rules();
    let r = s
        .vault
        .consent()
        .receipt(&actor(&p), &p.tenant, &subject, &rules)
        .await?;
    if !html {
        return Ok(Json(r).into_response());
    }
    let page = receipt_html(&r, &map.organisation.controller, &map.organisation.contact);
    let mut res = page.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    Ok(res)
}

fn receipt_html(r: &Receipt, controller: &str, contact: &str) -> String {
    let e = custos_map::html::escape;
    let mut h = String::with_capacity(4096);
    let _ = write!(
        h,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Consent receipt</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:46rem;margin:2rem auto;padding:0 1rem;color:#222}}\
         section{{border:1px solid #ccc;border-radius:6px;padding:1rem;margin:1rem 0}}\
         .granted{{color:#05620f}}.withdrawn,.objected{{color:#8a1c1c}}\
         blockquote{{white-space:pre-wrap;background:#f6f6f6;padding:.75rem;margin:.5rem 0}}\
         dt{{font-weight:600}}code{{font-size:.85em;word-break:break-all}}</style></head><body>\
         <h1>Consent receipt</h1><p>Issued by <strong>{}</strong> ({}) on {} for the person with reference <code>{}</code>.</p>",
        e(controller),
        e(contact),
        e(&r.issued_at),
        e(&r.subject)
    );
    if r.entries.is_empty() {
        h.push_str("<p>No consent or objection has been recorded.</p>");
    }
    for x in &r.entries {
        let _ = write!(
            h,
            "<section><h2>{}</h2><p class=\"{}\">{}{}</p><dl>\
             <dt>Since</dt><dd>{}</dd><dt>How</dt><dd>{}</dd>",
            e(&x.title),
            e(&x.state),
            match x.state.as_str() {
                "granted" => "You agreed.",
                "withdrawn" => "You withdrew your consent.",
                "objected" => "You objected.",
                _ => "",
            },
            if x.needs_revalidation {
                " The text has changed materially since; we will ask you again."
            } else {
                ""
            },
            e(&x.since),
            e(&x.channel)
        );
        if let Some(v) = x.version {
            let _ = write!(h, "<dt>Policy version</dt><dd>{v}</dd>");
        }
        if let Some(sha) = &x.text_sha256 {
            let _ = write!(
                h,
                "<dt>Text fingerprint (SHA-256)</dt><dd><code>{}</code></dd>",
                e(sha)
            );
        }
        h.push_str("</dl>");
        if let Some(t) = &x.text {
            let _ = write!(
                h,
                "<p>The text you agreed to:</p><blockquote>{}</blockquote>",
                e(t)
            );
        }
        if x.state == "granted" {
            let how = x
                .withdraw_via
                .as_deref()
                .unwrap_or("contact the controller named above");
            let _ = write!(
                h,
                "<p><strong>How to withdraw:</strong> {}. Withdrawing is as easy as giving consent and takes effect at once.</p>",
                e(how)
            );
        }
        h.push_str("</section>");
    }
    h.push_str("</body></html>\n");
    h
}

// ----- the check -------------------------------------------------------------

/// Query of `GET /v1/consent/check`: `subject` or `token`, and `purpose`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct CheckQuery {
    /// Subject id.
    pub subject: Option<String>,
    /// A token issued with `POST /v1/subjects/{id}/tokens`.
    pub token: Option<String>,
    /// With `token`: the audience it must belong to.
    pub audience: Option<String>,
    /// Purpose id from the data map.
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub purpose: String,
}

/// May this purpose be carried out with this subject's data now? The hot path.
#[utoipa::path(get, path = "/v1/consent/check", tag = "consent", params(CheckQuery),
    security(("api_key" = [])),
    responses((status = 200, body = CheckAnswer), (status = 400, body = Problem), (status = 404, body = Problem),
        (status = 410, body = Problem, description = "The subject was erased (subject_erased / token_gone, with erased_at)")))]
pub async fn check(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiQuery(q): ApiQuery<CheckQuery>,
) -> Result<Json<CheckAnswer>, Problem> {
    let map = map(&s)?;
    let rule = find_rule(&map, &q.purpose, "purpose", false)?;
    let target =
        match (q.subject, q.token) {
            (Some(sub), None) => {
                if q.audience.is_some() {
                    return Err(Problem::invalid("audience", "only with token="));
                }
                CheckTarget::Subject(SubjectId::parse(&sub).map_err(|e| {
                    Problem::invalid("subject", e.to_string()).with_code("invalid_id")
                })?)
            }
            (None, Some(token)) => CheckTarget::Token {
                token,
                audience: q
                    .audience
                    .map(|a| parse_id("audience", Audience::parse(&a)))
                    .transpose()?,
            },
            _ => {
                return Err(Problem::invalid(
                    "subject",
                    "give exactly one of subject= or token=",
                ))
            }
        };
    Ok(Json(
        s.vault
            .consent()
            .check(&actor(&p), &p.tenant, &target, &rule)
            .await?,
    ))
}

// ----- suppression list ------------------------------------------------------

/// Query of the suppression list.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuppressionQuery {
    /// Audience whose tokens identify the subjects (e.g. the mail provider).
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub audience: String,
    /// `csv` (default) or `json`.
    #[param(pattern = "^(csv|json)$")]
    pub format: Option<String>,
}

/// The master suppression list: every subject for whom the purpose is not
/// allowed now, as tokens of `audience`, streamed (CSV `token,reason` or JSON).
#[utoipa::path(get, path = "/v1/purposes/{id}/suppression", tag = "consent",
    params(("id" = String, Path), SuppressionQuery),
    security(("api_key" = ["lookup"]), ("api_key" = ["processor"])),
    responses((status = 200, description = "text/csv (token,reason) or application/json {purpose, audience, subjects: [{token, reason}]}"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn suppression(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<SuppressionQuery>,
) -> Result<Response, Problem> {
    let rule = find_rule(&*map(&s)?, &id, "id", true)?;
    let audience = parse_id("audience", Audience::parse(&q.audience))?;
    let json = match q.format.as_deref() {
        None | Some("csv") => false,
        Some("json") => true,
        Some(_) => return Err(Problem::invalid("format", "use csv or json")),
    };
    let rx = s
        .vault
        .consent()
        .suppression_list(&actor(&p), &p.tenant, &rule, &audience)
        .await?;
    let head: std::io::Result<Vec<u8>> = if json {
        Ok(format!(
            "{{\"purpose\":{},\"audience\":{},\"subjects\":[",
            serde_json::Value::from(rule.id.as_str()),
            serde_json::Value::from(audience.as_str())
        )
        .into_bytes())
    } else {
        csv_rows(std::iter::once(["token", "reason"]))
    };
    enum Phase {
        Head(std::io::Result<Vec<u8>>),
        Rows,
        Done,
    }
    let state = (rx, Phase::Head(head), true);
    let stream =
        futures_util::stream::unfold(state, move |(mut rx, phase, mut first)| async move {
            match phase {
                Phase::Head(h) => Some((h.map(Bytes::from), (rx, Phase::Rows, first))),
                Phase::Done => None,
                Phase::Rows => match rx.recv().await {
                    Some(Ok(batch)) => {
                        let chunk = if json {
                            Ok(json_rows(&batch, &mut first).into_bytes())
                        } else {
                            csv_rows(batch.iter().map(|r| [r.token.as_str(), r.reason]))
                        };
                        match chunk {
                            Ok(c) => Some((Ok(Bytes::from(c)), (rx, Phase::Rows, first))),
                            Err(e) => {
                                tracing::error!(error = %e, "suppression list stream failed");
                                Some((Err(e), (rx, Phase::Done, first)))
                            }
                        }
                    }
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "suppression list stream failed");
                        Some((
                            Err(std::io::Error::other("suppression list stream failed")),
                            (rx, Phase::Done, first),
                        ))
                    }
                    None => {
                        let tail = if json { "]}\n" } else { "" };
                        if tail.is_empty() {
                            None
                        } else {
                            Some((
                                Ok(Bytes::from_static(tail.as_bytes())),
                                (rx, Phase::Done, first),
                            ))
                        }
                    }
                },
            }
        });
    let mut res = Response::new(Body::from_stream(stream));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if json {
            "application/json"
        } else {
            "text/csv; charset=utf-8"
        }),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// One batch of the list as JSON array elements (`first`: no comma before
/// the batch's first). Tokens are `tok_` + URL-safe base64 and reasons are
/// fixed codes, so neither needs escaping.
fn json_rows(batch: &[SuppressedRow], first: &mut bool) -> String {
    let mut out = String::with_capacity(batch.len() * 48);
    for r in batch {
        if !*first {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"token\":\"{}\",\"reason\":\"{}\"}}",
            r.token, r.reason
        );
        *first = false;
    }
    out
}

/// Records as CSV lines (`\n` line ends), one batch of the streamed list
/// at a time: the whole list is never buffered.
fn csv_rows<'a>(rows: impl Iterator<Item = [&'a str; 2]>) -> std::io::Result<Vec<u8>> {
    let mut w = csv::WriterBuilder::new().from_writer(Vec::with_capacity(8192));
    for r in rows {
        w.write_record(r)?;
    }
    w.into_inner().map_err(|e| e.into_error())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_csv_bytes() {
        let rows = [
            SuppressedRow {
                token: "tok_Ab-_09".into(),
                reason: "withdrawn",
            },
            SuppressedRow {
                token: "tok_Zz".into(),
                reason: "erased",
            },
        ];
        let head = csv_rows(std::iter::once(["token", "reason"])).unwrap();
        let body = csv_rows(rows.iter().map(|r| [r.token.as_str(), r.reason])).unwrap();
        assert_eq!(head, b"token,reason\n");
        assert_eq!(body, b"tok_Ab-_09,withdrawn\ntok_Zz,erased\n");
        // Were a token ever to need quoting, it would get it.
        assert_eq!(
            csv_rows(std::iter::once(["a,\"b\"", "c"])).unwrap(),
            b"\"a,\"\"b\"\"\",c\n"
        );
        let mut first = true;
        assert_eq!(
            json_rows(&rows, &mut first),
            r#"{"token":"tok_Ab-_09","reason":"withdrawn"},{"token":"tok_Zz","reason":"erased"}"#
        );
    }
}
