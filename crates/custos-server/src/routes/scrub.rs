//! `POST /v1/scrub`: the scrubber for services in other languages.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::IntoParams;
use zeroize::Zeroizing;

use custos_scrub::{Format, Mode, ScrubKey, Scrubber};

use crate::extract::{ApiBytes, ApiQuery, KeyAuth};
use crate::problem::Problem;
use crate::AppState;

/// One scrubber per mode, built on first use (building compiles the
/// automaton). Keyed modes need a key (`CUSTOS_SCRUB_KEY`), the same one
/// the CLI uses, so pseudonyms agree across services.
pub struct Scrubbers {
    key: Option<Zeroizing<String>>,
    built: [OnceLock<Result<Scrubber, String>>; 4],
}

impl std::fmt::Debug for Scrubbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scrubbers")
            .field("keyed", &self.key.is_some())
            .finish()
    }
}

impl Scrubbers {
    /// `key`: the text of `CUSTOS_SCRUB_KEY` (hex or base64 of 32 bytes).
    pub fn new(key: Option<String>) -> Self {
        Self {
            key: key.map(Zeroizing::new),
            built: Default::default(),
        }
    }

    fn get(&self, mode: Mode) -> Result<&Scrubber, Problem> {
        let (slot, keyed) = match mode {
            Mode::Redact => (0, false),
            Mode::Mask => (1, false),
            Mode::Pseudonymize => (2, true),
            _ => (3, true),
        };
        let cell = self
            .built
            .get(slot)
            .ok_or_else(|| Problem::invalid("mode", "unknown mode"))?;
        let built = cell.get_or_init(|| {
            let mut b = Scrubber::builder().mode(mode);
            if keyed {
                let text = self
                    .key
                    .as_ref()
                    .ok_or_else(|| "this server has no CUSTOS_SCRUB_KEY".to_owned())?;
                let key = ScrubKey::parse(text)
                    .map_err(|_| "CUSTOS_SCRUB_KEY is not a valid key".to_owned())?;
                b = b.key(key);
            }
            b.build().map_err(|e| e.to_string())
        });
        built
            .as_ref()
            .map_err(|why| Problem::invalid("mode", why.clone()))
    }
}

/// Query of `POST /v1/scrub`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScrubQuery {
    /// `text`, `json` (one document per line) or `logfmt`; default from the
    /// content type (`application/json`, `application/x-ndjson` → json).
    #[param(pattern = "^(text|json|logfmt)$")]
    pub format: Option<String>,
    /// `redact` (default), `mask`, `pseudonymize`, `hash` (the keyed two
    /// need the server's scrub key).
    #[param(pattern = "^(redact|mask|pseudonymize|hash)$")]
    pub mode: Option<String>,
}

/// Scrubs the body line by line and returns it in the same format. The
/// `custos-findings` header carries the number of values replaced.
#[utoipa::path(post, path = "/v1/scrub", tag = "scrub", params(ScrubQuery),
    request_body(content = String, content_type = "text/plain", description = "Lines of text, JSON or logfmt"),
    security(("api_key" = [])),
    responses((status = 200, description = "The scrubbed lines: text/plain, or application/x-ndjson for format=json",
            content((String = "text/plain"), (String = "application/x-ndjson"))),
        (status = 400, body = Problem), (status = 413, body = Problem)))]
pub async fn scrub(
    State(s): State<AppState>,
    KeyAuth(_key): KeyAuth,
    ApiQuery(q): ApiQuery<ScrubQuery>,
    headers: HeaderMap,
    ApiBytes(body): ApiBytes,
) -> Result<Response, Problem> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("text/plain")
        .to_ascii_lowercase();
    let format = match q.format.as_deref() {
        Some(f) => f
            .parse::<Format>()
            .map_err(|_| Problem::invalid("format", "use one of text, json, logfmt"))?,
        None if content_type.contains("json") => Format::Json,
        None => Format::Text,
    };
    let mode = q
        .mode
        .as_deref()
        .unwrap_or("redact")
        .parse::<Mode>()
        .map_err(|_| Problem::invalid("mode", "use one of redact, mask, pseudonymize, hash"))?;
    // Build (or fetch) the scrubber before spawning, so a bad mode is a 400.
    s.scrubbers.get(mode)?;
    let scrubbers = s.scrubbers.clone();
    let (out, report) = tokio::task::spawn_blocking(move || {
        let scrubber = scrubbers.get(mode).map_err(|_| ())?;
        let mut out = Vec::with_capacity(body.len());
        let report = scrubber
            .scrub_stream(&body[..], &mut out, format)
            .map_err(|_| ())?;
        Ok::<_, ()>((out, report))
    })
    .await
    .map_err(|_| scrub_failed())?
    .map_err(|()| scrub_failed())?;
    let mut res = (StatusCode::OK, out).into_response();
    let ct = if format == Format::Json {
        "application/x-ndjson"
    } else {
        "text/plain; charset=utf-8"
    };
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    if let Ok(v) = HeaderValue::from_str(&report.total().to_string()) {
        res.headers_mut().insert("custos-findings", v);
    }
    Ok(res)
}

fn scrub_failed() -> Problem {
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal",
        "Internal error",
        "scrubbing failed; see the server log",
    )
}
