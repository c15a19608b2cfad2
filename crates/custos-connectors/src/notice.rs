//! Signed notices to processors (Art. 19, Art. 28(3)(e)) and their
//! signed confirmations back.
//!
//! The signature is the webhook scheme people already know from Stripe:
//! a header `custos-signature: t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"<t>." ‖ body`, with a secret shared with the processor. The timestamp
//! inside the MAC bounds replays to the tolerance window; the comparison is
//! constant-time; several `v1=` entries may be present (secret rotation) and
//! one matching suffices.
//!
//! The processor's callback ([`ProcessorConfirmation`]) is signed with
//! `v2` ([`sign_callback`]): the MAC also covers the tenant, the request
//! and the step it confirms, under a key derived per tenant from the
//! processor's secret ([`callback_key`]). A callback captured for one
//! person's request, step or tenant therefore verifies for no other;
//! `v1` signatures are not accepted on callbacks.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use custos_core::request::RequestType;
use custos_map::SystemId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;

use crate::ConnectorError;

/// Name of the header that carries the signature.
pub const SIGNATURE_HEADER: &str = "custos-signature";

/// Name of the header that lets a processor drop a repeated notice: the
/// executor retries, the processor must act once.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";

/// A reasonable clock-skew window for [`verify`], in seconds (Stripe's
/// default): long enough for slow queues, short enough to bound replays.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Longest signature header accepted; longer ones are refused unread.
const MAX_HEADER_LEN: usize = 4096;
/// Most `v1=` entries tried: bounds the work an attacker can cause.
const MAX_SIGNATURES: usize = 8;

/// How long one notice may take, connection included.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

type HmacSha256 = Hmac<Sha256>;

fn hmac(secret: &[u8]) -> HmacSha256 {
    match <HmacSha256 as Mac>::new_from_slice(secret) {
        Ok(m) => m,
        // HMAC accepts keys of any length (longer ones are hashed).
        Err(_) => unreachable!("HMAC-SHA256 takes keys of any length"),
    }
}

fn mac(secret: &[u8], timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut m = hmac(secret);
    m.update(timestamp.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m
}

/// Signs `body` at `timestamp` (unix seconds): the value of the
/// [`SIGNATURE_HEADER`], `t=<timestamp>,v1=<hex HMAC-SHA256(secret, "<t>." ‖ body)>`.
pub fn sign(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let tag = mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// Why a signature was not accepted. Says nothing about how close a guess
/// came.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The header is not `t=<int>,v1=<64 hex>[,…]`.
    #[error("malformed signature header")]
    Malformed,
    /// The timestamp is further from now than the tolerance (a replay, or
    /// a clock far off).
    #[error("signature timestamp outside the tolerance window")]
    OutsideTolerance,
    /// No `v1` signature matches the body under this secret (or the secret
    /// is empty, which never verifies).
    #[error("signature does not match")]
    Mismatch,
}

struct Parsed {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<Parsed, SignatureError> {
    parse_scheme(header, "v1")
}

/// Parses `t=<int>` and the entries of `scheme` (`v1`, `v2`); entries of
/// other schemes are ignored, so a header without one of `scheme` is
/// malformed for it.
fn parse_scheme(header: &str, scheme: &str) -> Result<Parsed, SignatureError> {
    if header.len() > MAX_HEADER_LEN {
        return Err(SignatureError::Malformed);
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let Some((k, v)) = item.trim().split_once('=') else {
            return Err(SignatureError::Malformed);
        };
        match k.trim() {
            "t" => {
                let v = v.trim();
                if timestamp.is_some() || v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(SignatureError::Malformed);
                }
                timestamp = Some(v.parse::<i64>().map_err(|_| SignatureError::Malformed)?);
            }
            k if k == scheme => {
                let v = v.trim();
                if v.len() != 64 {
                    return Err(SignatureError::Malformed);
                }
                let sig = hex::decode(v).map_err(|_| SignatureError::Malformed)?;
                if signatures.len() >= MAX_SIGNATURES {
                    return Err(SignatureError::Malformed);
                }
                signatures.push(sig);
            }
            // Other schemes (`v0`, future versions) are ignored, as Stripe does.
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok(Parsed {
            timestamp,
            signatures,
        }),
        _ => Err(SignatureError::Malformed),
    }
}

/// Checks a [`SIGNATURE_HEADER`] value against `body`: the header must
/// parse, its timestamp lie within `tolerance_secs` of `now` (either side),
/// and one of its `v1` signatures equal the HMAC, compared in constant
/// time. An empty secret never verifies (a missing secret must not open
/// the door).
pub fn verify(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let parsed = parse_header(header)?;
    let skew = (i128::from(now) - i128::from(parsed.timestamp)).abs();
    if skew > i128::from(tolerance_secs) {
        return Err(SignatureError::OutsideTolerance);
    }
    if secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    let expected = mac(secret, parsed.timestamp, body);
    // Every candidate is checked, so timing does not tell which matched.
    let mut ok = false;
    for sig in &parsed.signatures {
        ok |= expected.clone().verify_slice(sig).is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// What a processor's callback confirms: the tenant, request and step of
/// the notice it answers. Bound into the callback's signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallbackTarget<'a> {
    /// The tenant id the notice named (`tenant`).
    pub tenant: &'a str,
    /// The request id the notice named (`request_id`).
    pub request_id: &'a str,
    /// The step the notice named (`step`).
    pub step: i64,
}

/// Domain separation of the callback scheme: the key derivation's label
/// and the first line of every signed callback.
pub const CALLBACK_SCHEME: &str = "custos-callback-v2";

/// The key a processor signs its callbacks of one tenant with:
/// `HMAC-SHA256(processor_secret, "custos-callback-v2:" ‖ tenant)`. One
/// tenant's key tells nothing of another's; the secret itself never signs
/// a callback. Zeroized when dropped.
pub fn callback_key(processor_secret: &[u8], tenant: &str) -> zeroize::Zeroizing<[u8; 32]> {
    let mut m = hmac(processor_secret);
    m.update(CALLBACK_SCHEME.as_bytes());
    m.update(b":");
    m.update(tenant.as_bytes());
    zeroize::Zeroizing::new(m.finalize().into_bytes().into())
}

fn callback_mac(
    processor_secret: &[u8],
    target: &CallbackTarget<'_>,
    timestamp: i64,
    body: &[u8],
) -> HmacSha256 {
    let key = callback_key(processor_secret, target.tenant);
    let mut m = hmac(key.as_slice());
    // Lines: ids hold no newline (tenant and request ids are slugs).
    m.update(
        format!(
            "{CALLBACK_SCHEME}\n{}\n{}\n{}\n{timestamp}\n",
            target.tenant, target.request_id, target.step
        )
        .as_bytes(),
    );
    m.update(body);
    m
}

/// Signs a processor's callback for `target` at `timestamp`: the value of
/// the [`SIGNATURE_HEADER`], `t=<timestamp>,v2=<hex HMAC-SHA256(K,
/// "custos-callback-v2\n<tenant>\n<request_id>\n<step>\n<t>\n" ‖ body)>`
/// with `K` = [`callback_key`]. What a processor computes; custos uses it
/// only in tests and documentation.
pub fn sign_callback(
    processor_secret: &[u8],
    target: &CallbackTarget<'_>,
    timestamp: i64,
    body: &[u8],
) -> String {
    let tag = callback_mac(processor_secret, target, timestamp, body)
        .finalize()
        .into_bytes();
    format!("t={timestamp},v2={}", hex::encode(tag))
}

/// Checks a callback's [`SIGNATURE_HEADER`] for `target`: the header must
/// hold `t=` and at least one `v2=` entry, the timestamp lie within
/// `tolerance_secs` of `now`, and one `v2` equal the MAC of
/// [`sign_callback`] (constant time). A signature made for another tenant,
/// request or step, or with `v1`, does not verify; an empty secret never
/// verifies.
pub fn verify_callback(
    processor_secret: &[u8],
    target: &CallbackTarget<'_>,
    header: &str,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let parsed = parse_scheme(header, "v2")?;
    let skew = (i128::from(now) - i128::from(parsed.timestamp)).abs();
    if skew > i128::from(tolerance_secs) {
        return Err(SignatureError::OutsideTolerance);
    }
    if processor_secret.is_empty() {
        return Err(SignatureError::Mismatch);
    }
    let expected = callback_mac(processor_secret, target, parsed.timestamp, body);
    let mut ok = false;
    for sig in &parsed.signatures {
        ok |= expected.clone().verify_slice(sig).is_ok();
    }
    if ok {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// The JSON body of a notice to a processor: what to do, for whom, and
/// where to confirm. Holds the person's identities: never logged (its
/// `Debug` shows kinds and counts only).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// The tenant of the request: the processor derives the key of its
    /// callback from it ([`callback_key`]).
    pub tenant: String,
    /// The request this notice belongs to.
    pub request_id: String,
    /// The position of the step in the request's plan; with `request_id`
    /// it makes the idempotency key.
    pub step: u32,
    /// What the processor is asked to do (`erasure`, `access`, …).
    #[serde(rename = "type")]
    pub request_type: RequestType,
    /// Identity kind (`email`, `user_id`, …) → the person's values, just
    /// enough for the processor to find them.
    pub identities: BTreeMap<String, Vec<String>>,
    /// A rectification (Art. 16, notified under Art. 19): field of the map
    /// → its new value (JSON `null`: cleared; the text `"null"` is text, as
    /// [`crate::FieldChange`] says). Personal data like `identities`: in
    /// the signed body only, never in `Debug`, which names the fields.
    /// Absent for other request types.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub changes: BTreeMap<String, Option<String>>,
    /// Where the processor POSTs its signed [`ProcessorConfirmation`].
    pub callback_url: String,
    /// When custos issued the notice (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
}

impl fmt::Debug for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let identities: BTreeMap<&str, usize> = self
            .identities
            .iter()
            .map(|(k, v)| (k.as_str(), v.len()))
            .collect();
        f.debug_struct("Notice")
            .field("tenant", &self.tenant)
            .field("request_id", &self.request_id)
            .field("step", &self.step)
            .field("type", &self.request_type)
            .field("identities", &identities)
            .field("changes", &self.changes.keys().collect::<Vec<_>>())
            .field("callback_url", &self.callback_url)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

impl Notice {
    /// The value of the [`IDEMPOTENCY_HEADER`]: `<request_id>/<step>`,
    /// the same on every retry of the step.
    pub fn idempotency_key(&self) -> String {
        format!("{}/{}", self.request_id, self.step)
    }
}

/// The HTTP client notices go out with: it never follows a redirect (a
/// notice carries the person's identities, and a `Location` could send them
/// anywhere), so a 3xx answer is a failure of the notice, never a re-send.
#[derive(Clone, Debug)]
pub struct NoticeClient(reqwest::Client);

impl NoticeClient {
    /// A client without redirects and with the notice timeout. Fails (it
    /// never falls back to a default client, which would follow redirects)
    /// if the HTTP stack cannot be set up.
    pub fn new() -> Result<Self, ConnectorError> {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(SEND_TIMEOUT)
            .build()
            .map(Self)
            .map_err(|_| ConnectorError::Config {
                system: SystemId("notices".into()),
                message: "the HTTP client for processor notices could not be built".into(),
            })
    }
}

/// Where a notice goes: the processor (named in every error) and its URL,
/// with the map's `allow_insecure_loopback` for it.
#[derive(Clone, Copy, Debug)]
pub struct NoticeTarget<'a> {
    /// The processor's id in the map.
    pub processor: &'a str,
    /// Its notice URL; never quoted in errors (a path or query may hold a
    /// token).
    pub url: &'a str,
    /// Whether the map allows plain `http://` to a loopback address for it.
    pub allow_insecure_loopback: bool,
}

/// POSTs `notice` as JSON to the target's URL, signed with `secret` at the
/// current time, with the [`SIGNATURE_HEADER`] and the [`IDEMPOTENCY_HEADER`].
///
/// Returns the 2xx status. A URL the map's rules refuse
/// ([`custos_map::notice_url_refusal`]) is a `Config` error and nothing is
/// sent; a 3xx answer is a `Mismatch` (the map names a URL that moved; the
/// redirect is not followed); a 5xx, 408, 425 or 429 and any connection
/// error or timeout is `Unavailable` (retried); another 4xx is `Refused`
/// (the processor will refuse the same notice again: a wrong URL or
/// secret). Each names the processor and the status or error kind only:
/// neither the response body nor the URL is quoted (either may echo the
/// person's data or a token).
pub async fn send_notice(
    client: &NoticeClient,
    to: NoticeTarget<'_>,
    secret: &[u8],
    notice: &Notice,
) -> Result<u16, ConnectorError> {
    let system = || SystemId(format!("processor {}", to.processor));
    if let Some(why) = custos_map::notice_url_refusal(to.url, to.allow_insecure_loopback) {
        return Err(ConnectorError::Config {
            system: system(),
            message: format!("notice URL refused: {why}"),
        });
    }
    let unavailable = |message: String| ConnectorError::Unavailable {
        system: system(),
        message,
    };
    let body = serde_json::to_vec(notice)
        .map_err(|_| unavailable("notice could not be encoded".to_owned()))?;
    let signature = sign(secret, OffsetDateTime::now_utc().unix_timestamp(), &body);
    let res = client
        .0
        .post(to.url)
        .timeout(SEND_TIMEOUT)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .header(IDEMPOTENCY_HEADER, notice.idempotency_key())
        .body(body)
        .send()
        .await
        .map_err(|e| {
            let message = format!("notice not delivered: {}", reqwest_kind(&e));
            if e.is_builder() {
                ConnectorError::Config {
                    system: system(),
                    message,
                }
            } else {
                unavailable(message)
            }
        })?;
    let status = res.status();
    // Dropped unread: a processor's error page may echo what we sent.
    drop(res);
    let message = format!("notice refused with HTTP status {}", status.as_u16());
    if status.is_success() {
        Ok(status.as_u16())
    } else if status.is_redirection() {
        Err(ConnectorError::Mismatch {
            system: system(),
            message: format!(
                "notice answered with a redirect (HTTP {}), which is not followed: \
                 put the processor's final https:// URL in the data map",
                status.as_u16()
            ),
        })
    } else if status.is_client_error() && !matches!(status.as_u16(), 408 | 425 | 429) {
        Err(ConnectorError::Refused {
            system: system(),
            message,
        })
    } else {
        Err(unavailable(message))
    }
}

fn reqwest_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_builder() {
        "invalid URL or request"
    } else if e.is_body() || e.is_request() {
        "request failed"
    } else {
        "transport error"
    }
}

/// A processor's signed answer to a notice, POSTed to its `callback_url`.
/// `note` is the processor's free text and may name the person: `Debug`
/// shows only whether there is one.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorConfirmation {
    /// The processor holds nothing more of the person (erasure done, or
    /// nothing was there).
    pub holds_nothing_more: bool,
    /// Anything the processor wants recorded (a retention ground, a ticket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Counts of what it did, in its own words (`{"deleted": 3}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub counts: Option<serde_json::Value>,
    /// Answering an access or portability notice: what it holds of the
    /// person, per dataset; it goes into the person's archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Vec<ProcessorRecords>>,
}

/// A processor's records of the person in one of its datasets.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorRecords {
    /// The dataset, preferably as the map names it under the processor's
    /// system (`contacts`), so the archive's page can explain it.
    pub dataset: String,
    /// One JSON object per record.
    pub records: Vec<serde_json::Map<String, serde_json::Value>>,
}

impl fmt::Debug for ProcessorRecords {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorRecords")
            .field("dataset", &self.dataset)
            .field("records", &self.records.len())
            .finish()
    }
}

impl ProcessorRecords {
    /// Why these records cannot go into an archive, naming the field.
    pub fn check(list: &[Self]) -> Result<(), (String, &'static str)> {
        for (i, r) in list.iter().enumerate() {
            let name = r.dataset.trim();
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
                return Err((
                    format!("data[{i}].dataset"),
                    "a dataset name of 1 to 128 printable characters",
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Debug for ProcessorConfirmation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorConfirmation")
            .field("holds_nothing_more", &self.holds_nothing_more)
            .field("note", &self.note.as_ref().map(|_| "[redacted]"))
            .field("counts", &self.counts.is_some())
            .field("data", &self.data)
            .finish()
    }
}

/// Why a confirmation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfirmationError {
    /// The signature did not verify.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is not a confirmation (position only: the parser's own
    /// message could quote the body).
    #[error("confirmation body is not valid at line {line}, column {column}")]
    Body {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
}

impl ProcessorConfirmation {
    /// Verifies the signature of a callback for `target` with
    /// [`verify_callback`] and only then parses its body: an unsigned body
    /// is never looked at.
    pub fn from_signed(
        processor_secret: &[u8],
        target: &CallbackTarget<'_>,
        header: &str,
        body: &[u8],
        now: i64,
        tolerance_secs: i64,
    ) -> Result<Self, ConfirmationError> {
        verify_callback(processor_secret, target, header, body, now, tolerance_secs)?;
        serde_json::from_slice(body).map_err(|e| ConfirmationError::Body {
            line: e.line(),
            column: e.column(),
        })
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    #[test]
    fn processor_records_name_their_dataset_and_hide_values_in_debug() {
        let ok: Vec<ProcessorRecords> = serde_json::from_value(serde_json::json!([
            {"dataset": "contacts", "records": [{"email": "a@b.example"}]}
        ]))
        .unwrap();
        assert!(ProcessorRecords::check(&ok).is_ok());
        assert!(!format!("{ok:?}").contains("a@b"));
        let bad = vec![
            ok[0].clone(),
            ProcessorRecords {
                dataset: " ".into(),
                records: vec![],
            },
        ];
        assert_eq!(
            ProcessorRecords::check(&bad).unwrap_err().0,
            "data[1].dataset"
        );
    }

    use super::*;
    use proptest::prelude::*;

    const SECRET: &[u8] = b"whsec_test_secret";

    #[test]
    fn signs_like_the_known_scheme() {
        let h = sign(SECRET, 1_700_000_000, b"{\"a\":1}");
        assert!(h.starts_with("t=1700000000,v1="));
        assert_eq!(h.len(), "t=1700000000,v1=".len() + 64);
        // Independent computation of the MAC over "<t>.<body>".
        let mut m = HmacSha256::new_from_slice(SECRET).unwrap();
        m.update(b"1700000000.{\"a\":1}");
        let want = hex::encode(m.finalize().into_bytes());
        assert!(h.ends_with(&want));
    }

    #[test]
    fn verifies_within_tolerance_only() {
        let body = b"hello";
        let h = sign(SECRET, 1000, body);
        assert_eq!(verify(SECRET, &h, body, 1000, 300), Ok(()));
        assert_eq!(verify(SECRET, &h, body, 1300, 300), Ok(()));
        assert_eq!(verify(SECRET, &h, body, 700, 300), Ok(()));
        assert_eq!(
            verify(SECRET, &h, body, 1301, 300),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(SECRET, &h, body, 699, 300),
            Err(SignatureError::OutsideTolerance)
        );
        assert_eq!(
            verify(b"other", &h, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(b"", &h, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, &h, b"hellO", 1000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_signature_cannot_be_moved_to_another_time() {
        let h = sign(SECRET, 1000, b"x");
        let v1 = h.split_once(",v1=").unwrap().1;
        let moved = format!("t=1001,v1={v1}");
        assert_eq!(
            verify(SECRET, &moved, b"x", 1001, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn accepts_any_of_several_signatures_and_ignores_other_schemes() {
        let good = sign(SECRET, 50, b"b");
        let v1 = good.split_once(",v1=").unwrap().1;
        let h = format!("t=50, v0=abc, v1={}, v1={v1}", "0".repeat(64));
        assert_eq!(verify(SECRET, &h, b"b", 50, 10), Ok(()));
    }

    #[test]
    fn malformed_headers_are_refused() {
        let sig = "a".repeat(64);
        for h in [
            "".to_owned(),
            "t=1".to_owned(),
            format!("v1={sig}"),
            format!("t=,v1={sig}"),
            format!("t=-5,v1={sig}"),
            format!("t=1,t=2,v1={sig}"),
            format!("t=1,v1={}", "a".repeat(63)),
            format!("t=1,v1={}", "g".repeat(64)),
            format!("t=1;v1={sig}"),
            format!("t=99999999999999999999,v1={sig}"),
            format!("t=1,{}", vec![format!("v1={sig}"); 9].join(",")),
        ] {
            assert_eq!(
                verify(SECRET, &h, b"", 1, 10),
                Err(SignatureError::Malformed),
                "{h}"
            );
        }
    }

    const TARGET: CallbackTarget<'static> = CallbackTarget {
        tenant: "acme",
        request_id: "dsr_1",
        step: 4,
    };

    #[test]
    fn callbacks_bind_tenant_request_and_step() {
        let body = br#"{"holds_nothing_more":true}"#;
        let h = sign_callback(SECRET, &TARGET, 1000, body);
        assert!(h.starts_with("t=1000,v2="));
        assert_eq!(
            verify_callback(SECRET, &TARGET, &h, body, 1000, 300),
            Ok(())
        );
        // Independent computation: the tenant key, then the lines and body.
        let mut k = HmacSha256::new_from_slice(SECRET).unwrap();
        k.update(b"custos-callback-v2:acme");
        let key = k.finalize().into_bytes();
        let mut m = HmacSha256::new_from_slice(&key).unwrap();
        m.update(b"custos-callback-v2\nacme\ndsr_1\n4\n1000\n{\"holds_nothing_more\":true}");
        assert!(h.ends_with(&hex::encode(m.finalize().into_bytes())));
        for other in [
            CallbackTarget {
                tenant: "globex",
                ..TARGET
            },
            CallbackTarget {
                request_id: "dsr_2",
                ..TARGET
            },
            CallbackTarget { step: 5, ..TARGET },
        ] {
            assert_eq!(
                verify_callback(SECRET, &other, &h, body, 1000, 300),
                Err(SignatureError::Mismatch),
                "{other:?}"
            );
        }
        assert_eq!(
            verify_callback(SECRET, &TARGET, &h, body, 1301, 300),
            Err(SignatureError::OutsideTolerance)
        );
        // A v1 signature of the same body is no callback signature.
        let v1 = sign(SECRET, 1000, body);
        assert_eq!(
            verify_callback(SECRET, &TARGET, &v1, body, 1000, 300),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_callback(b"", &TARGET, &h, body, 1000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_ne!(
            *callback_key(SECRET, "acme"),
            *callback_key(SECRET, "globex")
        );
    }

    #[test]
    fn confirmations_are_verified_before_parsing() {
        let body = br#"{"holds_nothing_more":true,"note":"ticket 7","counts":{"deleted":2}}"#;
        let h = sign_callback(SECRET, &TARGET, 10, body);
        let c = ProcessorConfirmation::from_signed(SECRET, &TARGET, &h, body, 10, 300).unwrap();
        assert!(c.holds_nothing_more);
        assert_eq!(c.note.as_deref(), Some("ticket 7"));
        assert!(!format!("{c:?}").contains("ticket"));
        assert!(matches!(
            ProcessorConfirmation::from_signed(b"x", &TARGET, &h, body, 10, 300),
            Err(ConfirmationError::Signature(SignatureError::Mismatch))
        ));
        let bad = br#"{"holds_nothing_more":"secret@example.com"}"#;
        let h = sign_callback(SECRET, &TARGET, 10, bad);
        let e = ProcessorConfirmation::from_signed(SECRET, &TARGET, &h, bad, 10, 300).unwrap_err();
        assert!(matches!(e, ConfirmationError::Body { .. }));
        assert!(!e.to_string().contains("secret@"));
    }

    #[test]
    fn notice_serialises_with_type_and_redacts_in_debug() {
        let n = Notice {
            tenant: "acme".into(),
            request_id: "req_1".into(),
            step: 3,
            request_type: RequestType::Erasure,
            identities: BTreeMap::from([("email".into(), vec!["ada@example.com".into()])]),
            changes: BTreeMap::new(),
            callback_url: "https://custos.example/v1/callbacks/req_1/3".into(),
            issued_at: OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap(),
        };
        let v = serde_json::to_value(&n).unwrap();
        assert!(
            v.get("changes").is_none(),
            "only rectifications carry changes"
        );
        assert_eq!(v["type"], "erasure");
        assert_eq!(v["step"], 3);
        assert_eq!(v["identities"]["email"][0], "ada@example.com");
        assert_eq!(v["issued_at"], "2023-11-14T22:13:20Z");
        let back: Notice = serde_json::from_value(v).unwrap();
        assert_eq!(back, n);
        assert_eq!(n.idempotency_key(), "req_1/3");
        assert!(!format!("{n:?}").contains("ada@"));

        // A rectification names its changed fields and their values in the
        // body; `Debug` names the fields only.
        let r = Notice {
            request_type: RequestType::Rectification,
            changes: BTreeMap::from([
                ("name".into(), Some("Ada Byron".into())),
                ("nickname".into(), None),
            ]),
            ..n
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["changes"]["name"], "Ada Byron");
        assert!(
            v["changes"]["nickname"].is_null(),
            "a cleared field is null"
        );
        let back: Notice = serde_json::from_value(v).unwrap();
        assert_eq!(back, r);
        let debug = format!("{r:?}");
        assert!(
            debug.contains("name") && !debug.contains("Byron"),
            "{debug}"
        );
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_headers_never_panics(h in ".{0,200}", body in proptest::collection::vec(any::<u8>(), 0..64), now in any::<i64>(), tol in any::<i64>()) {
            let _ = verify(SECRET, &h, &body, now, tol);
        }

        #[test]
        fn structured_but_wrong_headers_never_panic(t in any::<i64>(), sig in "[0-9a-fA-F]{0,70}", extra in "[ ,=a-z0-9]{0,20}", now in any::<i64>()) {
            let h = format!("t={t},v1={sig}{extra}");
            let _ = verify(SECRET, &h, b"x", now, i64::MAX);
        }

        #[test]
        fn sign_then_verify_round_trips(secret in proptest::collection::vec(any::<u8>(), 1..64), body in proptest::collection::vec(any::<u8>(), 0..256), t in 0i64..4_000_000_000, skew in -300i64..=300) {
            let h = sign(&secret, t, &body);
            prop_assert_eq!(verify(&secret, &h, &body, t + skew, 300), Ok(()));
        }

        #[test]
        fn any_flipped_byte_of_the_body_fails(body in proptest::collection::vec(any::<u8>(), 1..256), idx in any::<prop::sample::Index>(), bit in 0u8..8) {
            let h = sign(SECRET, 100, &body);
            let mut tampered = body.clone();
            let i = idx.index(tampered.len());
            tampered[i] ^= 1 << bit;
            prop_assert_eq!(verify(SECRET, &h, &tampered, 100, 300), Err(SignatureError::Mismatch));
        }
    }
}
