//! The OpenAPI 3 document, generated from the handlers' annotations so it
//! cannot drift from the code.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{admin, audit, consent, map, requests, scrub, subjects};

/// The API document.
#[derive(OpenApi)]
#[openapi(
    info(title = "custos", description = "Self-hosted data-protection engine: vault, audit, data map, consent ledger, data-subject requests, scrubber."),
    paths(
        crate::healthz,
        admin::create_tenant, admin::list_tenants, admin::shred_tenant, admin::rotate_tenant_key,
        admin::create_key, admin::revoke_key,
        subjects::create_subject, subjects::lookup, subjects::get_subject,
        subjects::put_record, subjects::get_record, subjects::delete_record,
        subjects::export, subjects::issue_token, subjects::resolve_token,
        subjects::get_restriction, subjects::put_restriction, subjects::delete_restriction,
        subjects::erase,
        consent::list_purposes, consent::publish_version, consent::get_version,
        consent::record, consent::list_consents, consent::history, consent::receipt,
        consent::check, consent::suppression,
        requests::create_request, requests::verify_request, requests::get_request,
        requests::list_requests, requests::extend_request, requests::reject_request,
        requests::plan_request, requests::complete_step, requests::retry_step, requests::skip_step,
        requests::archive_link,
        requests::download_archive, requests::completion, requests::processor_callback,
        audit::list,
        map::get_map, map::get_ropa, map::reload,
        scrub::scrub,
    ),
    components(schemas(crate::problem::Problem)),
    modifiers(&Security),
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let comps = doc.components.get_or_insert_with(Default::default);
        let bearer =
            || SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        comps.add_security_scheme("admin_token", bearer());
        comps.add_security_scheme("api_key", bearer());
    }
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
