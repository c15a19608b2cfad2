//! Subjects, records, tokens, restriction and erasure: the vault's API.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use custos_core::blind::IdentityKind;
use custos_core::ids::{Audience, Collection, Purpose, RecordKey};
use custos_store::{RecordView, SubjectExport, SubjectInfo};

use crate::extract::{parse_id, subject_id, ApiJson, ApiPath, ApiQuery, KeyAuth};
use crate::problem::Problem;
use crate::AppState;

/// Body of `POST /v1/subjects`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubject {
    /// The application's own user id (optional, unique per tenant).
    #[schema(example = "u-42")]
    pub external_id: Option<String>,
    /// Identities by kind (`email`, `phone`, or a custom lowercase name);
    /// stored only as blind index and ciphertext.
    #[serde(default)]
    #[schema(schema_with = identity_map, example = json!({"email": "Jane.Doe@Example.com"}))]
    pub identities: BTreeMap<String, String>,
}

/// `identities`: kinds are slugs (`email`, `phone`, `customer_number`).
fn identity_map() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(crate::openapi::SLUG)),
        ))
        .additional_properties(Some(AdditionalProperties::RefOr(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .into(),
        )))
        .build()
}

/// `fields` of a record: at least one, named by 1 to 128 characters none
/// of which is a control character.
fn record_fields() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .min_properties(Some(1))
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]{1,128}$")),
        ))
        .build()
}

crate::redact::redacted_debug!(CreateSubject { ; external_id, identities });

/// A subject id.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubjectRef {
    /// Random subject id.
    #[schema(example = "sub_9f8e7d6c5b4a39281706f5e4d3c2b1a0")]
    pub id: String,
}

/// Creates a subject.
#[utoipa::path(post, path = "/v1/subjects", tag = "vault", request_body = CreateSubject,
    security(("api_key" = ["write"])),
    responses((status = 201, body = SubjectRef), (status = 400, body = Problem), (status = 409, body = Problem)))]
pub async fn create_subject(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiJson(b): ApiJson<CreateSubject>,
) -> Result<(StatusCode, Json<SubjectRef>), Problem> {
    let mut ids = Vec::with_capacity(b.identities.len());
    for (k, v) in b.identities {
        // The kind is the client's name: never echoed, the field is named.
        let kind = IdentityKind::parse(&k).map_err(|_| {
            Problem::invalid(
                "identities",
                "an identity kind is not valid: use email, phone, or a lowercase name",
            )
        })?;
        ids.push((kind, v));
    }
    let id = s.vault.subjects().create(&p, b.external_id, &ids).await?;
    Ok((StatusCode::CREATED, Json(SubjectRef { id: id.to_string() })))
}

/// Query of `GET /v1/subjects/lookup`: one identity.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    /// Email address (any case, surrounding spaces ignored).
    pub email: Option<String>,
    /// Phone number with country code.
    pub phone: Option<String>,
    /// Custom identity kind, with `value`.
    pub kind: Option<String>,
    /// Value of the custom identity.
    pub value: Option<String>,
}

crate::redact::redacted_debug!(LookupQuery { kind ; email, phone, value });

/// Finds a subject by identity through its blind index (audited).
#[utoipa::path(get, path = "/v1/subjects/lookup", tag = "vault", params(LookupQuery),
    security(("api_key" = ["lookup"])),
    responses((status = 200, body = SubjectRef), (status = 404, body = Problem), (status = 400, body = Problem)))]
pub async fn lookup(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> Result<Json<SubjectRef>, Problem> {
    let (kind, value) = match (q.email, q.phone, q.kind, q.value) {
        (Some(e), None, None, None) => (IdentityKind::Email, e),
        (None, Some(ph), None, None) => (IdentityKind::Phone, ph),
        (None, None, Some(k), Some(v)) => (
            IdentityKind::parse(&k).map_err(|e| Problem::invalid("kind", e.to_string()))?,
            v,
        ),
        _ => {
            return Err(Problem::invalid(
                "email",
                "give exactly one identity: email=, phone=, or kind= with value=",
            ))
        }
    };
    let id = s.vault.subjects().lookup(&p, &kind, &value).await?;
    Ok(Json(SubjectRef { id: id.to_string() }))
}

/// A subject's state (restriction included); never personal data.
#[utoipa::path(get, path = "/v1/subjects/{id}", tag = "vault",
    params(("id" = String, Path)), security(("api_key" = [])),
    responses((status = 200, body = SubjectInfo), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn get_subject(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<SubjectInfo>, Problem> {
    Ok(Json(s.vault.subjects().get(&p, &subject_id(&id)?).await?))
}

/// Body of a record write.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutRecord {
    /// Field name → any JSON value; each field is encrypted on its own.
    #[schema(schema_with = record_fields, example = json!({"name": "Jane Doe", "iban": "NL91ABNA0417164300"}))]
    pub fields: Map<String, Value>,
}

crate::redact::redacted_debug!(PutRecord { ; fields });

/// Result of a record write.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecordWritten {
    /// Subject id.
    pub subject: String,
    /// Collection.
    pub collection: String,
    /// Record key.
    pub key: String,
    /// Names of the fields stored.
    pub fields: Vec<String>,
}

type RecordPath = ApiPath<(String, String, String)>;

fn record_path(
    (id, c, k): (String, String, String),
) -> Result<(custos_core::ids::SubjectId, Collection, RecordKey), Problem> {
    Ok((
        subject_id(&id)?,
        parse_id("collection", Collection::parse(&c))?,
        parse_id("key", RecordKey::parse(&k))?,
    ))
}

/// Writes (replaces) a record.
#[utoipa::path(put, path = "/v1/subjects/{id}/records/{collection}/{key}", tag = "vault",
    request_body = PutRecord, security(("api_key" = ["write"])),
    params(("id" = String, Path), ("collection" = String, Path), ("key" = String, Path)),
    responses((status = 200, body = RecordWritten), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn put_record(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(path): RecordPath,
    ApiJson(b): ApiJson<PutRecord>,
) -> Result<Json<RecordWritten>, Problem> {
    let (id, c, k) = record_path(path)?;
    s.vault
        .subjects()
        .put_record(&p, &id, &c, &k, &b.fields)
        .await?;
    Ok(Json(RecordWritten {
        subject: id.to_string(),
        collection: c.to_string(),
        key: k.to_string(),
        fields: b.fields.keys().cloned().collect(),
    }))
}

/// Query of reads that may reveal.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PurposeQuery {
    /// Declared purpose; with the reveal scope, values come back in clear.
    #[param(pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub purpose: Option<String>,
}

/// Query of an export: a reveal of everything, so its purpose is required.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    /// Declared purpose, recorded on the audit entry.
    // Optional to serde so that its absence is the handler's
    // `invalid_field` naming `purpose`; required in the document.
    #[param(required = true, pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub purpose: Option<String>,
}

fn purpose(q: PurposeQuery) -> Result<Option<Purpose>, Problem> {
    q.purpose
        .map(|x| parse_id("purpose", Purpose::parse(&x)))
        .transpose()
}

/// Reads a record: clear with the reveal scope and a purpose, masked otherwise (audited either way).
#[utoipa::path(get, path = "/v1/subjects/{id}/records/{collection}/{key}", tag = "vault",
    params(("id" = String, Path), ("collection" = String, Path), ("key" = String, Path), PurposeQuery),
    security(("api_key" = ["reveal"]), ("api_key" = ["lookup"])),
    responses((status = 200, body = RecordView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn get_record(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(path): RecordPath,
    ApiQuery(q): ApiQuery<PurposeQuery>,
) -> Result<Json<RecordView>, Problem> {
    let (id, c, k) = record_path(path)?;
    let purpose = purpose(q)?;
    Ok(Json(
        s.vault
            .subjects()
            .get_record(&p, &id, &c, &k, purpose.as_ref())
            .await?,
    ))
}

/// Deletes one record.
#[utoipa::path(delete, path = "/v1/subjects/{id}/records/{collection}/{key}", tag = "vault",
    params(("id" = String, Path), ("collection" = String, Path), ("key" = String, Path)),
    security(("api_key" = ["write"])),
    responses((status = 204), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn delete_record(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(path): RecordPath,
) -> Result<StatusCode, Problem> {
    let (id, c, k) = record_path(path)?;
    s.vault.subjects().delete_record(&p, &id, &c, &k).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every record and identity of the subject in the vault, in clear: held to
/// a reveal's rules (reveal scope, a declared `purpose`, a restricted subject
/// only for `legal_claims`/`storage`; audited with its purpose).
#[utoipa::path(get, path = "/v1/subjects/{id}/export", tag = "vault",
    params(("id" = String, Path), ExportQuery), security(("api_key" = ["reveal"])),
    responses((status = 200, body = SubjectExport), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn export(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Json<SubjectExport>, Problem> {
    let id = subject_id(&id)?;
    let purpose = purpose(PurposeQuery { purpose: q.purpose })?;
    Ok(Json(
        s.vault.subjects().export(&p, &id, purpose.as_ref()).await?,
    ))
}

/// Body of a token request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who the token is for (`analytics`, a processor's name).
    #[schema(example = "analytics", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub audience: String,
}

/// A pseudonymous token.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenIssued {
    /// Stable for this subject and audience; unlinkable across audiences.
    pub token: String,
    /// The audience.
    pub audience: String,
}

/// Issues the subject's token for an audience.
#[utoipa::path(post, path = "/v1/subjects/{id}/tokens", tag = "vault", request_body = TokenRequest,
    params(("id" = String, Path)), security(("api_key" = ["write"])),
    responses((status = 200, body = TokenIssued), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn issue_token(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<TokenRequest>,
) -> Result<Json<TokenIssued>, Problem> {
    let id = subject_id(&id)?;
    let audience = parse_id("audience", Audience::parse(&b.audience))?;
    let token = s.vault.subjects().issue_token(&p, &id, &audience).await?;
    Ok(Json(TokenIssued {
        token,
        audience: audience.to_string(),
    }))
}

/// Whether a token's subject is alive.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenStatus {
    /// `true`; an erased subject's token answers 410 instead.
    pub alive: bool,
    /// The token's audience.
    pub audience: String,
}

/// Resolves a token: 200 while the subject lives, 410 Gone once erased.
#[utoipa::path(get, path = "/v1/tokens/{token}", tag = "vault", params(("token" = String, Path)),
    security(("api_key" = [])),
    responses((status = 200, body = TokenStatus), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn resolve_token(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(token): ApiPath<String>,
) -> Result<Json<TokenStatus>, Problem> {
    let audience = s.vault.subjects().resolve_token(&p, &token).await?;
    Ok(Json(TokenStatus {
        alive: true,
        audience,
    }))
}

/// Restriction state (Art. 18).
#[derive(Debug, Serialize, ToSchema)]
pub struct Restriction {
    /// Whether processing is restricted.
    pub restricted: bool,
    /// Since when.
    pub restricted_at: Option<String>,
    /// Purposes that may still reveal.
    pub allowed_purposes: Vec<&'static str>,
}

fn restriction(info: SubjectInfo) -> Json<Restriction> {
    Json(Restriction {
        restricted: info.restricted,
        restricted_at: info.restricted_at,
        allowed_purposes: custos_store::RESTRICTED_PURPOSES.to_vec(),
    })
}

/// Reads the restriction state.
#[utoipa::path(get, path = "/v1/subjects/{id}/restriction", tag = "vault", params(("id" = String, Path)),
    security(("api_key" = [])), responses((status = 200, body = Restriction), (status = 410, body = Problem)))]
pub async fn get_restriction(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Restriction>, Problem> {
    Ok(restriction(
        s.vault.subjects().get(&p, &subject_id(&id)?).await?,
    ))
}

/// Restricts processing: data kept, revealed only for legal_claims or storage.
#[utoipa::path(put, path = "/v1/subjects/{id}/restriction", tag = "vault", params(("id" = String, Path)),
    security(("api_key" = ["erase"])), responses((status = 200, body = Restriction), (status = 410, body = Problem)))]
pub async fn put_restriction(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Restriction>, Problem> {
    Ok(restriction(
        s.vault
            .subjects()
            .set_restriction(&p, &subject_id(&id)?, true)
            .await?,
    ))
}

/// Lifts a restriction.
#[utoipa::path(delete, path = "/v1/subjects/{id}/restriction", tag = "vault", params(("id" = String, Path)),
    security(("api_key" = ["erase"])), responses((status = 200, body = Restriction), (status = 410, body = Problem)))]
pub async fn delete_restriction(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Restriction>, Problem> {
    Ok(restriction(
        s.vault
            .subjects()
            .set_restriction(&p, &subject_id(&id)?, false)
            .await?,
    ))
}

/// Body of an erasure.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// A reason code (lowercase, e.g. `subject_request`, `retention`,
    /// `consent_withdrawn`), never free text: the ledger holds no personal data.
    #[schema(example = "subject_request", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub reason: String,
}

/// Result of an erasure.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// The erased subject.
    pub id: String,
    /// When.
    pub erased_at: String,
}

/// Erases a subject by destroying its key; every later read answers 410.
#[utoipa::path(delete, path = "/v1/subjects/{id}", tag = "vault", request_body = EraseRequest,
    params(("id" = String, Path)), security(("api_key" = ["erase"])),
    responses((status = 200, body = Erased), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn erase(
    State(s): State<AppState>,
    KeyAuth(p): KeyAuth,
    ApiPath(id): ApiPath<String>,
    ApiJson(b): ApiJson<EraseRequest>,
) -> Result<Json<Erased>, Problem> {
    let id = subject_id(&id)?;
    let reason = parse_id("reason", Purpose::parse(&b.reason))?;
    let erased_at = s.vault.subjects().erase(&p, &id, &reason).await?;
    Ok(Json(Erased {
        id: id.to_string(),
        erased_at,
    }))
}
