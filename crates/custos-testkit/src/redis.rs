//! A real Redis server for tests: from `CUSTOS_TEST_REDIS_URL`, or a
//! throw-away `redis-server` started once per test process.
//!
//! The throw-away server listens on 127.0.0.1 on a free port, persists
//! nothing (`--save "" --appendonly no`), runs in its own temp dir, and is
//! stopped (and the dir deleted) by a small watchdog shell once the test
//! process exits. Redis tests are skipped when no server can be had, each
//! with a `SKIPPED` line on the run's output, unless `CUSTOS_REQUIRE_REDIS=1`
//! (CI), where they fail instead.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Logical databases of the throw-away server: one fresh per
/// [`RedisServer::fresh_url`] call.
const DATABASES: u32 = 1024;

/// A Redis server the tests may use.
#[derive(Debug)]
pub struct RedisServer {
    url: String,
    /// Whether we started it (and so own its logical databases).
    owned: bool,
    next_db: AtomicU32,
}

static SERVER: OnceLock<Result<RedisServer, String>> = OnceLock::new();

/// The shared server, or `None` when none is available: the calling test
/// is then reported as skipped on the run's output
/// ([`crate::report_skip`]), or fails when `CUSTOS_REQUIRE_REDIS=1`.
pub fn server() -> Option<&'static RedisServer> {
    let s = SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("CUSTOS_TEST_REDIS_URL") {
            if !url.trim().is_empty() {
                return Ok(RedisServer {
                    url,
                    owned: false,
                    next_db: AtomicU32::new(0),
                });
            }
        }
        start_server().map(|url| RedisServer {
            url,
            owned: true,
            next_db: AtomicU32::new(1),
        })
    });
    match s {
        Ok(server) => Some(server),
        Err(why) => {
            if required() {
                panic!("CUSTOS_REQUIRE_REDIS=1 but no Redis: {why}");
            }
            crate::report_skip(
                &format!("no Redis server: {}", crate::short(why)),
                "set CUSTOS_TEST_REDIS_URL or install redis-server",
            );
            None
        }
    }
}

fn required() -> bool {
    std::env::var("CUSTOS_REQUIRE_REDIS").is_ok_and(|v| v == "1")
}

impl RedisServer {
    /// The server's URL as given (`redis://127.0.0.1:PORT`).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A URL for one test. On the throw-away server each call gets its own
    /// empty logical database (`redis://…/N`), so tests cannot see each
    /// other's keys. On a server from `CUSTOS_TEST_REDIS_URL` the URL is
    /// returned as is, shared: tests must then use keys of their own
    /// (random ids), which they do anyway.
    pub fn fresh_url(&self) -> String {
        if !self.owned {
            return self.url.clone();
        }
        let db = self.next_db.fetch_add(1, Ordering::Relaxed);
        assert!(db < DATABASES, "more than {DATABASES} Redis test databases");
        format!("{}/{db}", self.url.trim_end_matches('/'))
    }
}

/// Sends `PING` and waits for `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

fn start_server() -> Result<String, String> {
    match Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => {}
        Ok(_) => return Err("redis-server --version failed".into()),
        Err(_) => return Err("redis-server not found (install redis-server)".into()),
    }
    let dir = tempfile::Builder::new()
        .prefix("custos-redis-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))?
        .port();
    // The watchdog stops the server and deletes its dir once this test
    // process is gone.
    let script = format!(
        "redis-server --port {port} --bind 127.0.0.1 --save '' --appendonly no \
         --daemonize no --databases {DATABASES} --dir '{dir}' \
         >'{dir}/log' 2>&1 & r=$!; \
         while [ -d /proc/{parent} ] && kill -0 $r 2>/dev/null; do sleep 1; done; \
         kill $r 2>/dev/null; wait $r; rm -rf '{dir}'",
        dir = dir.display(),
        parent = std::process::id(),
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting redis-server: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if ping(port) {
            return Ok(format!("redis://127.0.0.1:{port}"));
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("redis-server did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
