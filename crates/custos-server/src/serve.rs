//! Serving the router over TCP (and TLS) so that slow clients cannot
//! starve the server.
//!
//! `axum::serve` has no header timeout: a client that sends a request line
//! and then one byte every few seconds holds a connection (and a task)
//! forever, and a few thousand of them exhaust file descriptors. Here each
//! connection is served by hyper-util's `auto::Builder` (HTTP/1.1 and
//! HTTP/2) with:
//!
//! - a **header timeout**: the request head must arrive within it (hyper's
//!   `header_read_timeout`); the TLS handshake gets the same bound;
//! - a **body timeout**: a handler reading the body gets `408 body_timeout`
//!   (and the connection is closed) once the whole body has not arrived
//!   within it, however slowly it trickles;
//! - an **idle timeout**: a connection with no request in flight that moves
//!   no byte for this long is closed (keep-alive connections, and a client
//!   stalled anywhere else);
//! - a **cap on concurrent connections per client IP** (IPv6 by /64): a
//!   connection over the cap is closed as soon as it is accepted, before
//!   anything is read. Behind a reverse proxy every client is the proxy:
//!   raise the cap or set it to 0 (no cap) there.
//!
//! Shutdown is graceful: the listener closes, every connection finishes
//! its request in flight (new ones on it are refused), and what is still
//! open after [`ConnLimits::shutdown_grace`] is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::time::Instant;

/// The limits of connections (`--header-timeout`, `--body-timeout`,
/// `--idle-timeout`, `--max-connections-per-ip`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnLimits {
    /// The request head (and a TLS handshake) must arrive within this.
    pub header_timeout: Duration,
    /// A request body must arrive whole within this once its head has.
    pub body_timeout: Duration,
    /// A connection with no request in flight and no traffic for this long
    /// is closed.
    pub idle_timeout: Duration,
    /// Concurrent connections of one client address; 0: no cap.
    pub max_conns_per_ip: usize,
    /// How long a shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl Default for ConnLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_conns_per_ip: 64,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// The error of a request body that did not arrive within the body
/// timeout; the extractors answer it with `408 body_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within the body timeout")]
pub struct BodyTimeout;

/// Serves `app` on `listener` until `shutdown` resolves, with `limits`;
/// over TLS when `tls` is given. The handlers see the peer address as
/// `ConnectInfo<SocketAddr>` (the public endpoints' rate limits key on it).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let per_ip = Arc::new(PerIp::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Every connection task holds a sender; all dropped = all finished.
    let (alive_tx, mut alive_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off, the
                    // timeouts free some.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(slot) = per_ip.take(peer.ip(), limits.max_conns_per_ip) else {
            tracing::debug!("connection refused: too many from one address");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let conn = Conn {
            app: app.clone(),
            peer,
            limits,
            stop: stop_rx.clone(),
            _slot: slot,
            _alive: alive_tx.clone(),
        };
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => conn.run(tcp).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => conn.run(stream).await,
                        Ok(Err(_)) | Err(_) => {
                            tracing::debug!("TLS handshake failed or timed out");
                        }
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    drop(alive_tx);
    let _ = tokio::time::timeout(limits.shutdown_grace, alive_rx.recv()).await;
    Ok(())
}

/// Open connections per client address.
#[derive(Default)]
struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One open connection of an address; closing it frees the place.
struct Slot {
    per_ip: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    fn take(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<Slot> {
        let ip = crate::rate_limit::client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_insert(0);
        if max > 0 && *n >= max {
            return None;
        }
        *n += 1;
        Some(Slot {
            per_ip: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.per_ip.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One accepted connection and what it needs to be served.
struct Conn {
    app: Router,
    peer: SocketAddr,
    limits: ConnLimits,
    stop: tokio::sync::watch::Receiver<bool>,
    _slot: Slot,
    _alive: tokio::sync::mpsc::Sender<()>,
}

impl Conn {
    async fn run<S>(mut self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let start = Instant::now();
        let activity = Arc::new(Activity {
            start,
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        });
        let io = TokioIo::new(Tracked {
            inner: stream,
            activity: activity.clone(),
        });
        let (app, peer, body_timeout) = (self.app.clone(), self.peer, self.limits.body_timeout);
        let act = activity.clone();
        let service =
            hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let mut app = app.clone();
                let act = act.clone();
                let mut req = req.map(|b| Body::new(TimedBody::new(b, body_timeout)));
                req.extensions_mut().insert(ConnectInfo(peer));
                act.in_flight.fetch_add(1, Ordering::SeqCst);
                async move {
                    let res = tower_service::Service::call(&mut app, req).await;
                    act.touch();
                    act.in_flight.fetch_sub(1, Ordering::SeqCst);
                    res
                }
            });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout);
        builder
            .http2()
            .timer(TokioTimer::new())
            .keep_alive_interval(Some(self.limits.idle_timeout));
        let conn = builder.serve_connection_with_upgrades(io, service);
        tokio::pin!(conn);
        let idle = self.limits.idle_timeout;
        let mut tick = tokio::time::interval((idle / 4).max(Duration::from_millis(10)));
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = conn.as_mut() => break,
                changed = self.stop.changed(), if !stopping => {
                    stopping = true;
                    if changed.is_ok() {
                        conn.as_mut().graceful_shutdown();
                    }
                }
                _ = tick.tick() => {
                    if activity.idle_for() >= idle && activity.in_flight.load(Ordering::SeqCst) == 0 {
                        tracing::debug!("idle connection closed");
                        break;
                    }
                }
            }
        }
    }
}

/// When a connection last moved a byte, and its requests in flight.
struct Activity {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A stream that records when bytes last moved.
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        res
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(res, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A request body that fails with [`BodyTimeout`] once it has not arrived
/// whole within the body timeout (counted from the request's head).
struct TimedBody {
    inner: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl TimedBody {
    fn new(inner: hyper::body::Incoming, timeout: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimeout)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}
