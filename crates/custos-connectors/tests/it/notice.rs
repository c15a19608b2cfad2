//! `send_notice` against a tiny local HTTP server that checks what a
//! processor would: the signature, the idempotency key, the JSON body; and
//! what it refuses: redirects, plain HTTP the map does not allow.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use custos_connectors::notice::{self, Notice, NoticeClient, NoticeTarget, SignatureError};
use custos_core::request::RequestType;
use time::OffsetDateTime;

const SECRET: &[u8] = b"whsec_processor_shared_secret";

#[derive(Default)]
struct Seen {
    signature: Option<String>,
    idempotency: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
}

async fn receive(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let mut s = seen.lock().unwrap();
    s.signature = h(notice::SIGNATURE_HEADER);
    s.idempotency = h(notice::IDEMPOTENCY_HEADER);
    s.content_type = h("content-type");
    s.body = body.to_vec();
    StatusCode::ACCEPTED
}

async fn refuse() -> (StatusCode, &'static str) {
    // An error page echoing the person: must not reach our errors.
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "no such customer ada@example.com",
    )
}

async fn serve(seen: Arc<Mutex<Seen>>) -> String {
    let app = Router::new()
        .route("/custos/notices", post(receive))
        .route("/down", post(refuse))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}")
}

/// A processor on this host, which the map allows over plain HTTP.
fn local(url: &str) -> NoticeTarget<'_> {
    NoticeTarget {
        processor: "crm",
        url,
        allow_insecure_loopback: true,
    }
}

fn notice() -> Notice {
    Notice {
        tenant: "acme".into(),
        request_id: "req_0123".into(),
        step: 4,
        request_type: RequestType::Erasure,
        identities: BTreeMap::from([
            ("email".to_owned(), vec!["ada@example.com".to_owned()]),
            ("user_id".to_owned(), vec!["42".to_owned()]),
        ]),
        changes: BTreeMap::new(),
        callback_url: "https://custos.example/v1/processor-callbacks/req_0123/4".into(),
        issued_at: OffsetDateTime::now_utc().replace_nanosecond(0).unwrap(),
    }
}

#[tokio::test]
async fn a_notice_arrives_signed_and_verifiable() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let base = serve(seen.clone()).await;
    let client = NoticeClient::new().unwrap();
    let n = notice();
    let url = format!("{base}/custos/notices");
    let status = notice::send_notice(&client, local(&url), SECRET, &n)
        .await
        .unwrap();
    assert_eq!(status, 202);

    let s = seen.lock().unwrap();
    assert_eq!(s.idempotency.as_deref(), Some("req_0123/4"));
    assert_eq!(s.content_type.as_deref(), Some("application/json"));
    let header = s.signature.clone().unwrap();
    let now = OffsetDateTime::now_utc().unix_timestamp();
    // What the processor does: verify, then read.
    assert_eq!(notice::verify(SECRET, &header, &s.body, now, 300), Ok(()));
    assert_eq!(
        notice::verify(b"another secret", &header, &s.body, now, 300),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        notice::verify(SECRET, &header, &s.body, now + 3600, 300),
        Err(SignatureError::OutsideTolerance)
    );
    let got: Notice = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(got, n);
    let raw: serde_json::Value = serde_json::from_slice(&s.body).unwrap();
    assert_eq!(raw["type"], "erasure");
    assert_eq!(raw["identities"]["email"][0], "ada@example.com");
}

#[tokio::test]
async fn outages_are_transient_refusals_permanent_and_both_quote_nothing() {
    let base = serve(Arc::new(Mutex::new(Seen::default()))).await;
    let client = NoticeClient::new().unwrap();
    let url = format!("{base}/down?token=t0k");
    let e = notice::send_notice(&client, local(&url), SECRET, &notice())
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    let msg = e.to_string();
    assert!(msg.contains("503"), "{msg}");
    assert!(!msg.contains("ada@"), "{msg}");
    assert!(!msg.contains("t0k"), "{msg}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/custos/notices");
    let e = notice::send_notice(&client, local(&url), SECRET, &notice())
        .await
        .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(!e.to_string().contains("ada@"), "{e}");

    // A 4xx (here 404: a wrong notice URL) will be refused again: it is
    // permanent, naming the status only.
    let url = format!("{base}/nowhere");
    let e = notice::send_notice(&client, local(&url), SECRET, &notice())
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.to_string().contains("404"), "{e}");
}

/// A listener that counts what reaches it and answers 202.
async fn counting() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            StatusCode::ACCEPTED
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/notices"), hits)
}

#[tokio::test]
async fn a_redirect_fails_the_notice_and_is_never_followed() {
    let (elsewhere, hits) = counting().await;
    for status in [301u16, 302, 307, 308] {
        let location = elsewhere.clone();
        let app = Router::new().fallback(move || {
            let location = location.clone();
            async move {
                (
                    StatusCode::from_u16(status).unwrap(),
                    [(axum::http::header::LOCATION, location)],
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/notices?token=t0k",
            listener.local_addr().unwrap()
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        let e = notice::send_notice(
            &NoticeClient::new().unwrap(),
            local(&url),
            SECRET,
            &notice(),
        )
        .await
        .unwrap_err();
        assert!(!e.is_transient(), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("processor crm"), "{msg}");
        assert!(msg.contains(&format!("redirect (HTTP {status})")), "{msg}");
        assert!(!msg.contains("t0k") && !msg.contains("127.0.0.1"), "{msg}");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "a redirect was followed");
}

#[tokio::test]
async fn plain_http_goes_only_to_a_loopback_the_map_allows() {
    let (url, hits) = counting().await;
    let client = NoticeClient::new().unwrap();
    let refused = [
        // Loopback, but the map does not say so.
        NoticeTarget {
            processor: "crm",
            url: &url,
            allow_insecure_loopback: false,
        },
        // Not loopback (TEST-NET-1): refused even with the flag, unsent.
        NoticeTarget {
            processor: "crm",
            url: "http://192.0.2.1/notices",
            allow_insecure_loopback: true,
        },
        NoticeTarget {
            processor: "crm",
            url: "http://vendor.example/notices",
            allow_insecure_loopback: false,
        },
    ];
    for to in refused {
        let e = notice::send_notice(&client, to, SECRET, &notice())
            .await
            .unwrap_err();
        assert!(!e.is_transient(), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("processor crm") && msg.contains("https://"),
            "{msg}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let allowed = notice::send_notice(&client, local(&url), SECRET, &notice()).await;
    assert_eq!(allowed.unwrap(), 202);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
