//! Tenants and API keys: the administrator's endpoints.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use custos_core::ids::{ApiKeyId, TenantId};
use custos_core::scope::{Scope, ScopeSet};
use custos_store::{Actor, TenantInfo};

use crate::extract::{parse_id, AdminAuth, AnyAuth, ApiJson, ApiPath};
use crate::problem::Problem;
use crate::AppState;

/// Body of `POST /v1/tenants`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// Lowercase slug, 1–64 characters.
    #[schema(example = "acme", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub id: String,
    /// Display name, 1 to 200 characters.
    #[schema(example = "Acme", min_length = 1, max_length = 200)]
    pub name: String,
}

/// List of tenants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantList {
    /// All tenants, shredded ones included (ids only, no data).
    pub tenants: Vec<TenantInfo>,
}

/// Creates a tenant with fresh keys.
#[utoipa::path(post, path = "/v1/tenants", tag = "admin", request_body = CreateTenant,
    security(("admin_token" = [])),
    responses((status = 201, body = TenantInfo), (status = 409, body = Problem), (status = 400, body = Problem)))]
pub async fn create_tenant(
    State(s): State<AppState>,
    _a: AdminAuth,
    ApiJson(b): ApiJson<CreateTenant>,
) -> Result<(StatusCode, Json<TenantInfo>), Problem> {
    let id = parse_id("id", TenantId::parse(&b.id))?;
    Ok((
        StatusCode::CREATED,
        Json(s.vault.tenants().create(&id, &b.name).await?),
    ))
}

/// Lists tenants.
#[utoipa::path(get, path = "/v1/tenants", tag = "admin", security(("admin_token" = [])),
    responses((status = 200, body = TenantList)))]
pub async fn list_tenants(
    State(s): State<AppState>,
    _a: AdminAuth,
) -> Result<Json<TenantList>, Problem> {
    Ok(Json(TenantList {
        tenants: s.vault.tenants().list().await?,
    }))
}

/// Shreds a tenant: destroys its keys, so all its subjects become unreadable at once.
#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = TenantInfo), (status = 404, body = Problem), (status = 410, body = Problem)))]
pub async fn shred_tenant(
    State(s): State<AppState>,
    _a: AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<TenantInfo>, Problem> {
    let id = parse_id("id", TenantId::parse(&id))?;
    Ok(Json(s.vault.tenants().shred(&id).await?))
}

/// Result of a key rotation.
#[derive(Debug, Serialize, ToSchema)]
pub struct Rotated {
    /// Subject keys rewrapped under the new tenant key (data untouched).
    pub rewrapped: u64,
}

/// Rotates a tenant's key: subject keys are rewrapped, data is not re-encrypted.
#[utoipa::path(post, path = "/v1/tenants/{id}/rotate-key", tag = "admin", security(("admin_token" = [])),
    params(("id" = String, Path, description = "tenant id")),
    responses((status = 200, body = Rotated), (status = 404, body = Problem)))]
pub async fn rotate_tenant_key(
    State(s): State<AppState>,
    _a: AdminAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Rotated>, Problem> {
    let id = parse_id("id", TenantId::parse(&id))?;
    s.vault.tenants().get(&id).await?;
    Ok(Json(Rotated {
        rewrapped: s.vault.tenants().rotate_key(&id).await?,
    }))
}

/// The longest lifetime a key can be given: ten years. Beyond it the
/// expiry would overflow the store's microsecond time (it once wrapped to a
/// negative expiry: 201, then a key that never worked).
pub const MAX_KEY_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

/// Body of `POST /v1/keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// The tenant the key belongs to.
    #[schema(example = "acme", pattern = "^[a-z0-9][a-z0-9_.-]{0,63}$")]
    pub tenant: String,
    /// Scopes: write, reveal, lookup, erase, audit, admin, processor, dsr.
    #[schema(example = json!(["write", "reveal"]), value_type = Vec<ScopeName>, min_items = 1)]
    pub scopes: Vec<String>,
    /// Optional lifetime in seconds (1 to 10 years' worth); the key stops
    /// working afterwards.
    #[schema(minimum = 1, maximum = 315_360_000)]
    #[serde(default, deserialize_with = "crate::extract::whole_number")]
    pub expires_in_seconds: Option<u64>,
}

/// A scope of an API key (the document's name for what `scopes` holds).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
pub enum ScopeName {
    /// Create subjects, write records, issue tokens, record consent.
    Write,
    /// Read clear values for a declared purpose.
    Reveal,
    /// Find subjects by identity; masked reads.
    Lookup,
    /// Erase and restrict subjects.
    Erase,
    /// Read the audit log.
    Audit,
    /// Manage the tenant's keys and policy versions.
    Admin,
    /// Read suppression lists.
    Processor,
    /// Data-subject requests.
    Dsr,
}

/// A new API key; `key` is shown only once.
#[derive(Debug, Serialize, ToSchema)]
pub struct NewKey {
    /// Public id of the key.
    pub id: String,
    /// The bearer secret.
    pub key: String,
    /// Its tenant.
    pub tenant: String,
    /// Its scopes.
    pub scopes: Vec<String>,
}

/// Creates an API key (admin token, or a key of the same tenant with the admin scope).
#[utoipa::path(post, path = "/v1/keys", tag = "admin", request_body = CreateKey,
    security(("admin_token" = []), ("api_key" = ["admin"])),
    responses((status = 201, body = NewKey), (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn create_key(
    State(s): State<AppState>,
    AnyAuth(actor): AnyAuth,
    ApiJson(b): ApiJson<CreateKey>,
) -> Result<(StatusCode, Json<NewKey>), Problem> {
    let tenant = parse_id("tenant", TenantId::parse(&b.tenant))?;
    let scopes = b
        .scopes
        .iter()
        .map(|x| Scope::parse(x))
        .collect::<Result<Vec<_>, _>>()
        // The error would quote the unknown name; name the known ones instead.
        .map_err(|_| {
            Problem::invalid(
                "scopes",
                "use write, reveal, lookup, erase, audit, admin, processor or dsr",
            )
        })?;
    if let Some(secs) = b.expires_in_seconds {
        if !(1..=MAX_KEY_LIFETIME_SECS).contains(&secs) {
            return Err(Problem::invalid(
                "expires_in_seconds",
                format!("must be between 1 and {MAX_KEY_LIFETIME_SECS} (10 years)"),
            ));
        }
    }
    let set = ScopeSet::from_scopes(scopes);
    let k = s
        .vault
        .tenants()
        .create_key(
            &actor,
            &tenant,
            set,
            b.expires_in_seconds.map(Duration::from_secs),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(NewKey {
            id: k.id.to_string(),
            key: k.secret.expose().to_owned(),
            tenant: tenant.to_string(),
            scopes: set.iter().map(|x| x.as_str().to_owned()).collect(),
        }),
    ))
}

/// Revokes an API key.
#[utoipa::path(delete, path = "/v1/keys/{id}", tag = "admin",
    security(("admin_token" = []), ("api_key" = ["admin"])),
    params(("id" = String, Path, description = "API key id")),
    responses((status = 204), (status = 404, body = Problem)))]
pub async fn revoke_key(
    State(s): State<AppState>,
    AnyAuth(actor): AnyAuth,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, Problem> {
    let id = parse_id("id", ApiKeyId::parse(&id))?;
    let tenant = match &actor {
        Actor::Admin => s.vault.tenants().key_tenant(&id).await?,
        Actor::Key(p) => p.tenant.clone(),
    };
    s.vault.tenants().revoke_key(&actor, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
