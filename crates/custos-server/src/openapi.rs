//! The OpenAPI 3 document, generated from the handlers' annotations so it
//! cannot drift from the code.
//!
//! The answers every handler shares come from its extractors and
//! middleware, not from the handler: `Contract` adds them to each
//! operation from what the operation declares (security → 401/403, path
//! parameters → 400/404, query → 400, a JSON body → 400/413/415, a
//! subject's paths → 410, the public endpoints → 429, the store → 503), and
//! documents every problem as `application/problem+json` with the
//! `Problem` schema. `tests/it/contract.rs` checks the document against the
//! running server.

use axum::Json;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::ParameterIn;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};
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
    modifiers(&Security, &Contract),
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

/// Adds the answers of extractors and middleware to every operation; see
/// the module documentation.
struct Contract;

/// Operations whose body is raw bytes of any content type (no 415).
const RAW_BODY: [&str; 2] = ["scrub", "processor_callback"];
/// Operations behind a per-client rate limit (429 with `Retry-After`).
const RATE_LIMITED: [&str; 3] = ["download_archive", "processor_callback", "create_request"];
/// Operations on a tenant named by the caller (410 once it is shredded).
const TENANT_OPS: [&str; 4] = [
    "create_key",
    "revoke_key",
    "rotate_tenant_key",
    "shred_tenant",
];
/// Operations that answer from the process alone (no 503).
const NO_STORE: [&str; 4] = ["healthz", "get_map", "get_ropa", "reload"];

fn problem(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("Problem")))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(PROBLEM_JSON, content)
            .build(),
    )
}

const PROBLEM_JSON: &str = "application/problem+json";

impl Modify for Contract {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        for (path, item) in doc.paths.paths.iter_mut() {
            let ops = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for op in ops.into_iter().flatten() {
                contract(path, op);
            }
        }
    }
}

/// A lowercase slug: tenants, purposes, collections, audiences.
pub const SLUG: &str = "^[a-z0-9][a-z0-9_.-]{0,63}$";
/// A record key: 1 to 128 printable ASCII characters without `/` or `\\`,
/// and not `.` or `..` (written without look-ahead, for every regex engine).
pub const RECORD_KEY: &str = r"^([!-\-0-\[\]-~][!-.0-\[\]-~]{0,127}|\.[!-\-0-\[\]-~][!-.0-\[\]-~]{0,126}|\.\.[!-.0-\[\]-~]{1,126})$";

/// What a path parameter is, by where it stands: the shapes the handlers
/// parse, so that every value the schema allows is one they accept.
fn path_param_schema(path: &str, name: &str) -> Option<utoipa::openapi::schema::Schema> {
    let string = |pattern: &str| {
        Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(pattern))
                .build()
                .into(),
        )
    };
    let random = |prefix: &str| string(&format!("^{prefix}_[0-9a-f]{{32}}$"));
    match (name, path.split('/').nth(2).unwrap_or("")) {
        ("id", "tenants" | "purposes") | ("collection", _) => string(SLUG),
        ("id", "keys") => random("key"),
        ("id", "subjects") => random("sub"),
        ("id", "requests" | "processor-callbacks") => random("req"),
        ("key", _) => string(RECORD_KEY),
        ("token", _) => string("^tok_[A-Za-z0-9_-]{24}$"),
        ("step", _) => Some(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                    utoipa::openapi::KnownFormat::Int64,
                )))
                .minimum(Some(1))
                .build()
                .into(),
        ),
        _ => None,
    }
}

fn contract(path: &str, op: &mut utoipa::openapi::path::Operation) {
    let id = op.operation_id.clone().unwrap_or_default();
    // Scrubbing nothing is allowed: an empty body answers an empty body.
    if path == "/v1/scrub" {
        if let Some(body) = op.request_body.as_mut() {
            body.required = Some(utoipa::openapi::Required::False);
        }
    }
    for p in op.parameters.iter_mut().flatten() {
        if p.parameter_in == ParameterIn::Path {
            if let Some(schema) = path_param_schema(path, &p.name) {
                p.schema = Some(RefOr::T(schema));
            }
        }
    }
    let responses = &mut op.responses.responses;
    // Problems are served as application/problem+json.
    for r in responses.values_mut() {
        if let RefOr::T(r) = r {
            let is_problem = r.content.get("application/json").is_some_and(|c| {
                matches!(&c.schema, Some(RefOr::Ref(x)) if x.ref_location.ends_with("/Problem"))
            });
            if is_problem {
                if let Some(c) = r.content.shift_remove("application/json") {
                    r.content.insert(PROBLEM_JSON.to_owned(), c);
                }
            }
        }
    }
    let mut add = |status: u16, description: &str| {
        responses
            .entry(status.to_string())
            .or_insert_with(|| problem(description));
    };
    let mut retry_after = false;
    let params = op.parameters.as_deref().unwrap_or_default();
    let has = |place: ParameterIn| params.iter().any(|p| p.parameter_in == place);
    if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
        add(
            401,
            "missing, malformed or unknown credentials (`unauthenticated`)",
        );
        if !matches!(id.as_str(), "get_map" | "get_ropa") {
            add(
                403,
                "the credential may not do this (`missing_scope`, `admin_token_not_allowed`, `admin_token_required`, `subject_restricted`)",
            );
        }
    }
    if has(ParameterIn::Path) {
        add(
            400,
            "a path parameter is malformed (`invalid_id`, `invalid_path`)",
        );
        add(404, "not found");
    }
    if has(ParameterIn::Query) {
        add(
            400,
            "a query parameter is unknown or malformed (`invalid_query`, `invalid_field`)",
        );
    }
    if op.request_body.is_some() {
        add(400, "the body is malformed or a field invalid (`malformed_json`, `unknown_field`, `invalid_field`)");
        add(413, "the body exceeds 1 MiB (`body_too_large`)");
        add(
            408,
            "the body did not arrive within the body timeout (`body_timeout`)",
        );
        if !RAW_BODY.contains(&id.as_str()) {
            add(415, "the body is not JSON (`unsupported_media_type`)");
        }
    }
    if path.starts_with("/v1/subjects/{id}")
        || path.starts_with("/v1/tokens/")
        || path == "/v1/consent/check"
    {
        add(
            410,
            "the subject was erased (`subject_erased`, `token_gone`)",
        );
    }
    if TENANT_OPS.contains(&id.as_str()) {
        add(410, "the tenant was shredded (`tenant_shredded`)");
    }
    if RATE_LIMITED.contains(&id.as_str()) {
        add(429, "too many requests (`rate_limited`); see Retry-After");
        retry_after = true;
    }
    if !NO_STORE.contains(&id.as_str()) {
        add(503, "the store is unavailable or the server is shutting down (`storage_unavailable`, `unavailable`)");
    }
    if retry_after {
        if let Some(RefOr::T(r)) = op.responses.responses.get_mut("429") {
            r.headers
                .entry("Retry-After".to_owned())
                .or_insert_with(|| {
                    HeaderBuilder::new()
                        .schema(ObjectBuilder::new().schema_type(Type::Integer))
                        .description(Some("seconds to wait"))
                        .build()
                });
        }
    }
}

/// `GET /openapi.json`.
pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
