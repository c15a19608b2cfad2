//! The data map and the Art. 30 record of processing activities.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;

use custos_map::RopaFormat;

use crate::extract::{AdminAuth, AnyAuth, ApiQuery};
use crate::problem::Problem;
use crate::AppState;
use custos_map::ReloadError;

fn no_map() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no_map",
        "No data map",
        "this server runs without a data map; start it with --map FILE",
    )
}

/// The data map in service, as JSON.
#[utoipa::path(get, path = "/v1/map", tag = "map",
    security(("admin_token" = []), ("api_key" = [])),
    responses((status = 200, description = "The data map (JSON form of the YAML schema in docs/map.md)", content_type = "application/json"),
        (status = 404, body = Problem)))]
pub async fn get_map(
    State(s): State<AppState>,
    AnyAuth(_actor): AnyAuth,
) -> Result<Response, Problem> {
    let map = s.map.current().ok_or_else(no_map)?;
    Ok(Json(&*map).into_response())
}

/// Query of `GET /v1/ropa`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RopaQuery {
    /// `html` (default), `csv`, `json` or `md`.
    #[param(pattern = "^(html|csv|json|md)$")]
    pub format: Option<String>,
}

/// The Art. 30(1)/(2) record generated from the map in service.
#[utoipa::path(get, path = "/v1/ropa", tag = "map", params(RopaQuery),
    security(("admin_token" = []), ("api_key" = [])),
    responses((status = 200, description = "The record in the requested format"),
        (status = 400, body = Problem), (status = 404, body = Problem)))]
pub async fn get_ropa(
    State(s): State<AppState>,
    AnyAuth(_actor): AnyAuth,
    ApiQuery(q): ApiQuery<RopaQuery>,
) -> Result<Response, Problem> {
    let format: RopaFormat = q
        .format
        .as_deref()
        .unwrap_or("html")
        .parse()
        .map_err(|_| Problem::invalid("format", "use one of html, csv, json, md"))?;
    let map = s.map.current().ok_or_else(no_map)?;
    let body = custos_map::ropa::render(&map, custos_map::ropa::Safeguards::this_version(), format);
    let mut res = body.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(res)
}

/// Outcome of a reload.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Reloaded {
    /// Warnings of the new map (it has no errors, or it would not load).
    pub warnings: Vec<String>,
}

/// Re-reads the map file; on errors the previous map stays in service and
/// the problem lists every diagnostic.
#[utoipa::path(post, path = "/v1/map/reload", tag = "map", security(("admin_token" = [])),
    responses((status = 200, body = Reloaded), (status = 404, body = Problem), (status = 422, body = Problem)))]
pub async fn reload(
    State(s): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<Reloaded>, Problem> {
    match s.map.reload() {
        Ok(w) => Ok(Json(Reloaded {
            warnings: w.iter().map(ToString::to_string).collect(),
        })),
        Err(ReloadError::NoMap) => Err(no_map()),
        Err(e) => {
            let detail = match &e {
                ReloadError::Load(custos_map::LoadError::Invalid { diagnostics, .. }) => {
                    diagnostics
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("\n")
                }
                other => other.to_string(),
            };
            Err(Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "map_invalid",
                "Data map invalid; previous map kept",
                detail,
            ))
        }
    }
}
