//! The load generator's HTTP client for the timed rounds: one HTTP/1.1
//! keep-alive connection per load client, driven with hyper directly, as
//! `wrk` does. Server and load generator share the machine's two cores,
//! so every microsecond the client spends is one the server cannot: a
//! pooled `reqwest` client parses each URL, checks a connection out of its
//! pool and builds its headers anew, about a third of the client's CPU
//! per request. Setup calls still use `reqwest`.

use std::net::SocketAddr;

use anyhow::{anyhow, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::Mutex;

type Connection = SendRequest<Full<Bytes>>;

/// Connections by load client number; each client's requests are
/// sequential, so its lock is never contended.
pub(crate) struct LoadClient {
    addr: SocketAddr,
    conns: Vec<Mutex<Option<Connection>>>,
}

impl LoadClient {
    pub(crate) fn new(addr: SocketAddr, clients: usize) -> Self {
        Self {
            addr,
            conns: (0..clients).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// Sends a request as load client `client` (reconnecting if its
    /// connection was closed) and checks the status; the body is read but
    /// not parsed.
    pub(crate) async fn send_ok(
        &self,
        client: usize,
        method: Method,
        path: &str,
        bearer: &str,
        json: Option<&Value>,
    ) -> anyhow::Result<()> {
        let slot = self
            .conns
            .get(client)
            .ok_or_else(|| anyhow!("load client {client} has no connection"))?;
        let mut conn = slot.lock().await;
        if conn.as_ref().is_none_or(Connection::is_closed) {
            *conn = Some(self.connect().await?);
        }
        let sender = conn
            .as_mut()
            .ok_or_else(|| anyhow!("load client {client} could not connect"))?;
        sender.ready().await?;
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, "custos")
            .header(AUTHORIZATION, format!("Bearer {bearer}"));
        let body = match json {
            Some(v) => {
                req = req.header(CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(v)?)
            }
            None => Bytes::new(),
        };
        let resp = sender.send_request(req.body(Full::new(body))?).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            bail!("HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        Ok(())
    }

    async fn connect(&self) -> anyhow::Result<Connection> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            // Ends when the connection closes; the next request reconnects.
            let _ = conn.await;
        });
        Ok(sender)
    }
}
