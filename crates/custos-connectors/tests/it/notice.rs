//! `send_notice` against a tiny local HTTP server that checks what a
//! processor would: the signature, the idempotency key, the JSON body.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use custos_connectors::notice::{self, Notice, SignatureError};
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

fn notice() -> Notice {
    Notice {
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
    let client = reqwest::Client::new();
    let n = notice();
    let status = notice::send_notice(&client, &format!("{base}/custos/notices"), SECRET, &n)
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
    let client = reqwest::Client::new();
    let e = notice::send_notice(
        &client,
        &format!("{base}/down?token=t0k"),
        SECRET,
        &notice(),
    )
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
    let e = notice::send_notice(
        &client,
        &format!("http://127.0.0.1:{port}/custos/notices"),
        SECRET,
        &notice(),
    )
    .await
    .unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(!e.to_string().contains("ada@"), "{e}");

    // A 4xx (here 404: a wrong notice URL) will be refused again: it is
    // permanent, naming the status only.
    let e = notice::send_notice(&client, &format!("{base}/nowhere"), SECRET, &notice())
        .await
        .unwrap_err();
    assert!(!e.is_transient(), "{e}");
    assert!(e.to_string().contains("404"), "{e}");
}
