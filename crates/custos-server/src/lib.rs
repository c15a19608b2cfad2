//! The HTTP API of custos.
//!
//! Handlers are thin: they parse and validate the request into domain types,
//! call the [`Vault`], and map errors to problems in one place
//! ([`problem`]). Every route except `/healthz`, `/openapi.json` and the
//! rate-limited public ones ([`rate_limit`]: archive downloads by one-time
//! token, signed processor callbacks) needs the admin token or an API key;
//! the tenant always comes from the key.

// Problems are the error path of HTTP handlers and are built once per failed
// request; boxing them would only add noise.
#![allow(clippy::result_large_err)]

pub mod extract;
pub mod openapi;
pub mod problem;
pub mod rate_limit;
mod redact;
pub mod routes;
pub mod serve;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use axum::{Json, Router};

use custos_core::secret::BearerSecret;
use custos_dsr::{Executor, ExecutorConfig, Mailer};
use custos_map::MapSource;
use custos_store::Vault;

use crate::problem::Problem;
use crate::routes::scrub::Scrubbers;

/// Largest request body accepted (records, scrub input).
pub const BODY_LIMIT: usize = 1024 * 1024;

/// Shared state of every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The vault.
    pub vault: Vault,
    /// The system administrator's token.
    pub admin_token: Arc<BearerSecret>,
    /// The data map in service (possibly none).
    pub map: Arc<MapSource>,
    /// Scrubbers of `POST /v1/scrub`.
    pub scrubbers: Arc<Scrubbers>,
    /// Outgoing mail: one-time verification codes of data-subject requests
    /// and email notices (SMTP, the development outbox, or none).
    pub mailer: Arc<dyn Mailer>,
    /// How requests are executed: connection settings, callback URL.
    pub executor: Arc<ExecutorConfig>,
    /// Limits of the endpoints that take no API key.
    pub rate_limits: Arc<rate_limit::RateLimits>,
    /// Buckets of the verification-code mails (per tenant, per address).
    pub code_mails: Arc<rate_limit::CodeMails>,
}

impl AppState {
    /// A state without a data map and without a scrub key.
    pub fn new(vault: Vault, admin_token: BearerSecret) -> Self {
        Self {
            vault,
            admin_token: Arc::new(admin_token),
            map: Arc::new(MapSource::none()),
            scrubbers: Arc::new(Scrubbers::new(None)),
            mailer: Arc::new(custos_dsr::mail::NoMail),
            executor: Arc::new(ExecutorConfig::new("http://127.0.0.1:8080")),
            rate_limits: Arc::new(rate_limit::RateLimits::default()),
            code_mails: Arc::new(rate_limit::CodeMails::new(
                &rate_limit::RateLimits::default(),
            )),
        }
    }

    /// Serves `map` at `/v1/map` and `/v1/ropa`.
    pub fn with_map(mut self, map: MapSource) -> Self {
        self.map = Arc::new(map);
        self
    }

    /// Writes outgoing mail (verification codes, email notices) as files
    /// into `dir` (`CUSTOS_DEV_OUTBOX`); without it mail is not delivered.
    /// Replaces the mailer.
    pub fn with_outbox(self, dir: Option<std::path::PathBuf>) -> Self {
        match dir {
            Some(dir) => self.with_mailer(Arc::new(custos_dsr::mail::Outbox::new(dir))),
            None => self.with_mailer(Arc::new(custos_dsr::mail::NoMail)),
        }
    }

    /// Sends outgoing mail with `mailer` (see [`custos_dsr::mail`]).
    pub fn with_mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// How requests are executed (see [`custos_dsr::ExecutorConfig`]).
    pub fn with_executor_config(mut self, cfg: ExecutorConfig) -> Self {
        self.executor = Arc::new(cfg);
        self
    }

    /// The request executor over this state's vault, map, mailer and
    /// settings (cheap: shares them).
    pub fn executor(&self) -> Executor {
        Executor::new(
            self.vault.clone(),
            self.map.clone(),
            self.mailer.clone(),
            self.executor.clone(),
        )
    }

    /// Limits of the public endpoints (see [`rate_limit`]).
    pub fn with_rate_limits(mut self, limits: rate_limit::RateLimits) -> Self {
        self.code_mails = Arc::new(rate_limit::CodeMails::new(&limits));
        self.rate_limits = Arc::new(limits);
        self
    }

    /// The key of the keyed scrub modes (`CUSTOS_SCRUB_KEY` text).
    pub fn with_scrub_key(mut self, key: Option<String>) -> Self {
        self.scrubbers = Arc::new(Scrubbers::new(key));
        self
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    use routes::{admin, audit, consent, map, requests, scrub, subjects};
    let limits = &state.rate_limits;
    let public = |limit| {
        middleware::from_fn_with_state(
            rate_limit::Buckets::new(limit, limits.client_ip_header.clone()),
            rate_limit::limit,
        )
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi::serve))
        .route(
            "/v1/tenants",
            post(admin::create_tenant).get(admin::list_tenants),
        )
        .route(
            "/v1/tenants/{id}",
            axum::routing::delete(admin::shred_tenant),
        )
        .route(
            "/v1/tenants/{id}/rotate-key",
            post(admin::rotate_tenant_key),
        )
        .route("/v1/keys", post(admin::create_key))
        .route("/v1/keys/{id}", axum::routing::delete(admin::revoke_key))
        .route("/v1/subjects", post(subjects::create_subject))
        .route("/v1/subjects/lookup", get(subjects::lookup))
        .route(
            "/v1/subjects/{id}",
            get(subjects::get_subject).delete(subjects::erase),
        )
        .route(
            "/v1/subjects/{id}/records/{collection}/{key}",
            put(subjects::put_record)
                .get(subjects::get_record)
                .delete(subjects::delete_record),
        )
        .route("/v1/subjects/{id}/export", get(subjects::export))
        .route("/v1/subjects/{id}/tokens", post(subjects::issue_token))
        .route(
            "/v1/subjects/{id}/restriction",
            get(subjects::get_restriction)
                .put(subjects::put_restriction)
                .delete(subjects::delete_restriction),
        )
        .route("/v1/tokens/{token}", get(subjects::resolve_token))
        .route("/v1/purposes", get(consent::list_purposes))
        .route("/v1/purposes/{id}/versions", post(consent::publish_version))
        .route(
            "/v1/purposes/{id}/versions/{version}",
            get(consent::get_version),
        )
        .route("/v1/purposes/{id}/suppression", get(consent::suppression))
        .route(
            "/v1/subjects/{id}/consents",
            post(consent::record).get(consent::list_consents),
        )
        .route("/v1/subjects/{id}/consents/history", get(consent::history))
        .route("/v1/subjects/{id}/consents/receipt", get(consent::receipt))
        .route("/v1/consent/check", get(consent::check))
        .route(
            "/v1/requests",
            post(requests::create_request).get(requests::list_requests),
        )
        .route("/v1/requests/{id}", get(requests::get_request))
        .route("/v1/requests/{id}/verify", post(requests::verify_request))
        .route("/v1/requests/{id}/extend", post(requests::extend_request))
        .route("/v1/requests/{id}/reject", post(requests::reject_request))
        .route("/v1/requests/{id}/plan", post(requests::plan_request))
        .route(
            "/v1/requests/{id}/steps/{step}/complete",
            post(requests::complete_step),
        )
        .route(
            "/v1/requests/{id}/steps/{step}/retry",
            post(requests::retry_step),
        )
        .route(
            "/v1/requests/{id}/steps/{step}/skip",
            post(requests::skip_step),
        )
        .route("/v1/requests/{id}/archive", get(requests::archive_link))
        .route("/v1/requests/{id}/completion", get(requests::completion))
        .route(
            "/v1/archives/{token}",
            get(requests::download_archive).layer(public(limits.archives)),
        )
        .route(
            "/v1/processor-callbacks/{id}/{step}",
            post(requests::processor_callback).layer(public(limits.callbacks)),
        )
        .route("/v1/audit", get(audit::list))
        .route("/v1/map", get(map::get_map))
        .route("/v1/map/reload", post(map::reload))
        .route("/v1/ropa", get(map::get_ropa))
        .route("/v1/scrub", post(scrub::scrub))
        .fallback(|| async { Problem::no_route() })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                "this endpoint does not accept that method; see /openapi.json",
            )
        })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// Health.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
}

/// Liveness probe; reveals nothing.
#[utoipa::path(get, path = "/healthz", tag = "meta", responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Logs method, route template (never the raw path or query, which may
/// carry an email in a lookup) and status.
async fn log_request(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_owned())
        .unwrap_or_else(|| "(unmatched)".into());
    let start = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16();
    if status >= 500 {
        tracing::warn!(%method, %route, status, elapsed_us = start.elapsed().as_micros() as u64, "request");
    } else {
        tracing::debug!(%method, %route, status, elapsed_us = start.elapsed().as_micros() as u64, "request");
    }
    res
}
