//! Slow clients cannot starve the server (`custos_server::serve`): heads
//! stalled mid-way are closed after the header timeout, bodies stalled
//! mid-way get 408 and a close after the body timeout, idle connections
//! are closed, connections over the per-address cap are closed at once,
//! and a normal client is answered throughout. Not a storage test: SQLite.
//!
//! `slow_connections_are_held_and_closed` prints the measurement of the
//! report: `cargo test -p custos-server --test it slow::slow_connections
//! -- --nocapture`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use custos_server::serve::ConnLimits;
use custos_testkit::{Backend, TestStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves the real router on loopback with `limits`; returns its address,
/// its admin token, a way to stop it and the task (finished once it has shut down).
async fn start(
    store: &TestStore,
    limits: ConnLimits,
) -> (
    SocketAddr,
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (app, admin) = crate::support::router(store).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        custos_server::serve::serve(listener, app, limits, None, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (addr, admin, stop, task)
}

fn limits(header: u64, body: u64, idle: u64, per_ip: usize) -> ConnLimits {
    ConnLimits {
        header_timeout: Duration::from_millis(header),
        body_timeout: Duration::from_millis(body),
        idle_timeout: Duration::from_millis(idle),
        max_conns_per_ip: per_ip,
        shutdown_grace: Duration::from_secs(2),
    }
}

/// A complete `GET /healthz` on a fresh connection: its status.
async fn healthz(addr: SocketAddr) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Reads until the peer closes (or `within` passes): what it sent, and
/// whether it closed in time.
async fn read_until_closed(tcp: &mut TcpStream, within: Duration) -> (String, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(within, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

const MID_HEADER: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_head_stalled_mid_way_is_closed_after_the_header_timeout() {
    let store = TestStore::new(Backend::Sqlite).await.unwrap();
    let (addr, _admin, stop, task) = start(&store, limits(300, 5_000, 60_000, 0)).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(MID_HEADER).await.unwrap();
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(closed, "a stalled head was not closed");
    assert!(
        t.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t.elapsed()
    );
    // Trickling does not extend it: one byte every 100 ms.
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(MID_HEADER).await.unwrap();
    let t = Instant::now();
    let mut closed = false;
    for _ in 0..30 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if tcp.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        let mut b = [0u8; 64];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut b)).await {
            closed = true;
            break;
        }
    }
    assert!(
        closed && t.elapsed() < Duration::from_secs(2),
        "{:?}",
        t.elapsed()
    );
    assert_eq!(healthz(addr).await, 200);
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_stalled_mid_way_gets_408_and_a_close() {
    let store = TestStore::new(Backend::Sqlite).await.unwrap();
    let (addr, admin, stop, task) = start(&store, limits(5_000, 400, 60_000, 0)).await;
    // The body is read by the JSON extractor once authentication passed:
    // use a real key.
    let key = key_on(addr, &admin).await;
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/subjects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"external"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let t = Instant::now();
    let (text, closed) = read_until_closed(&mut tcp, Duration::from_secs(3)).await;
    assert!(closed, "a stalled body was not closed: {text}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(
        t.elapsed() >= Duration::from_millis(350),
        "{:?}",
        t.elapsed()
    );
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed() {
    let store = TestStore::new(Backend::Sqlite).await.unwrap();
    let (addr, _admin, stop, task) = start(&store, limits(5_000, 5_000, 400, 0)).await;
    // Connected, nothing sent.
    let mut quiet = TcpStream::connect(addr).await.unwrap();
    // One request on a keep-alive connection, then silence.
    let mut kept = TcpStream::connect(addr).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    let (text, closed) = read_until_closed(&mut kept, Duration::from_secs(3)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(closed, "an idle keep-alive connection stayed open");
    let (_, closed) = read_until_closed(&mut quiet, Duration::from_secs(3)).await;
    assert!(closed, "a silent connection stayed open");
    assert!(t.elapsed() < Duration::from_secs(3));
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_closed_at_once() {
    let store = TestStore::new(Backend::Sqlite).await.unwrap();
    let (addr, _admin, stop, task) = start(&store, limits(5_000, 5_000, 60_000, 8)).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(MID_HEADER).await.unwrap();
        held.push(tcp);
    }
    // The ninth is closed before anything is read.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let t = Instant::now();
    let (_, closed) = read_until_closed(&mut extra, Duration::from_secs(1)).await;
    assert!(
        closed && t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // Once one closes, a client of that address is served again.
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(healthz(addr).await, 200);
    drop(held);
    let _ = stop.send(());
    task.await.unwrap();
}

/// The measurement: 300 connections stalled mid-head and 50 mid-body,
/// while a normal client keeps asking; how many are closed within the
/// timeout plus a margin, and how fast the normal client is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_connections_are_held_and_closed() {
    const HEADS: usize = 300;
    const BODIES: usize = 50;
    let (header_ms, body_ms, margin_ms) = (1_000, 1_500, 1_500);
    let store = TestStore::new(Backend::Sqlite).await.unwrap();
    let (addr, admin, stop, task) = start(&store, limits(header_ms, body_ms, 60_000, 0)).await;
    let key = key_on(addr, &admin).await;
    let t0 = Instant::now();
    let mut slow = Vec::new();
    for i in 0..HEADS + BODIES {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        if i < HEADS {
            tcp.write_all(MID_HEADER).await.unwrap();
        } else {
            let head = format!(
                "POST /v1/subjects HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"ext"
            );
            tcp.write_all(head.as_bytes()).await.unwrap();
        }
        slow.push((i < HEADS, tcp));
    }
    let opened = t0.elapsed();
    // A normal client while they are held.
    let mut normal = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        assert_eq!(healthz(addr).await, 200);
        normal.push(t.elapsed());
    }
    let deadline = Duration::from_millis(body_ms.max(header_ms) + margin_ms);
    let waits = slow.into_iter().map(|(is_head, mut tcp)| async move {
        let left = deadline.saturating_sub(t0.elapsed());
        let (_, closed) = read_until_closed(&mut tcp, left).await;
        (is_head, closed)
    });
    let results = futures_util::future::join_all(waits).await;
    let heads_closed = results.iter().filter(|(h, c)| *h && *c).count();
    let bodies_closed = results.iter().filter(|(h, c)| !*h && *c).count();
    let worst_normal = normal.iter().max().copied().unwrap_or_default();
    println!(
        "slow connections: {HEADS} mid-head, {BODIES} mid-body opened in {opened:?}; \
         closed within timeout + {margin_ms} ms: {heads_closed}/{HEADS} heads \
         (header timeout {header_ms} ms), {bodies_closed}/{BODIES} bodies (body timeout \
         {body_ms} ms); normal GET /healthz meanwhile: 5/5 answered, slowest {worst_normal:?}"
    );
    assert_eq!(heads_closed, HEADS);
    assert_eq!(bodies_closed, BODIES);
    assert!(worst_normal < Duration::from_secs(1), "{worst_normal:?}");
    let _ = stop.send(());
    task.await.unwrap();
}

/// A tenant and a `write` key on the server at `addr`.
async fn key_on(addr: SocketAddr, admin: &str) -> String {
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let r = http
        .post(format!("{base}/v1/tenants"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"id": "acme", "name": "Acme"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r: serde_json::Value = http
        .post(format!("{base}/v1/keys"))
        .bearer_auth(admin)
        .json(&serde_json::json!({"tenant": "acme", "scopes": ["write"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    r["key"].as_str().unwrap().to_owned()
}
