//! A real MySQL/MariaDB server for tests: from `CUSTOS_TEST_MYSQL_URL`, or
//! a throw-away MariaDB started once per test process.
//!
//! The throw-away server is initialised by `mariadb-install-db` in its own
//! temp dir, listens on 127.0.0.1 on a free port, keeps nothing durable
//! (no binary log, no flush per commit), and is stopped (and the dir
//! deleted) by a small watchdog shell once the test process exits. Tests
//! connect as `custos` (created by an init file, password `custos`), which
//! may create databases. Under root it runs with `--user=root`: MariaDB
//! refuses root otherwise, and its files are ours alone in a private temp
//! dir. MySQL tests are skipped when no server can be had, each with a
//! `SKIPPED` line on the run's output, unless `CUSTOS_REQUIRE_MYSQL=1`
//! (CI), where they fail instead.

use std::io::Read;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection as _;

/// A MySQL server the tests may create databases on.
#[derive(Debug)]
pub struct MysqlServer {
    admin_url: String,
}

static SERVER: OnceLock<Result<MysqlServer, String>> = OnceLock::new();

/// The shared server, or `None` when none is available: the calling test
/// is then reported as skipped on the run's output
/// ([`crate::report_skip`]), or fails when `CUSTOS_REQUIRE_MYSQL=1`.
pub fn server() -> Option<&'static MysqlServer> {
    let s = SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("CUSTOS_TEST_MYSQL_URL") {
            if !url.trim().is_empty() {
                return Ok(MysqlServer { admin_url: url });
            }
        }
        start_server().map(|admin_url| MysqlServer { admin_url })
    });
    match s {
        Ok(server) => Some(server),
        Err(why) => {
            if required() {
                panic!("CUSTOS_REQUIRE_MYSQL=1 but no MySQL: {why}");
            }
            crate::report_skip(
                &format!("no MySQL server: {}", crate::short(why)),
                "set CUSTOS_TEST_MYSQL_URL or install mariadb-server",
            );
            None
        }
    }
}

fn required() -> bool {
    std::env::var("CUSTOS_REQUIRE_MYSQL").is_ok_and(|v| v == "1")
}

impl MysqlServer {
    /// The admin URL as given (`mysql://user:pw@127.0.0.1:PORT`).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Creates an empty utf8mb4 database with a unique name; returns its
    /// URL. Names stay under MySQL's 64 characters for labels up to 20.
    pub async fn create_database(&self, label: &str) -> String {
        let name = format!("custos_t_{label}_{}", uuid::Uuid::new_v4().simple());
        assert!(name.len() <= 64, "database label too long: {label}");
        let mut conn = connect_retry(&self.admin_url).await;
        sqlx::query(&format!(
            "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
        ))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
        let _ = conn.close().await;
        crate::pg::with_database(&self.admin_url, &name)
    }
}

async fn connect_retry(url: &str) -> sqlx::MySqlConnection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::MySqlConnection::connect(url).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connecting to MySQL: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The directory holding `name`: on `PATH`, else the Debian locations
/// (`mariadbd` lives in `/usr/sbin`, often not on a user's `PATH`).
fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Whether something on the port sends a greeting (the server is up; the
/// login itself is retried by [`connect_retry`]).
fn greets(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(500),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 5];
    s.read_exact(&mut buf).is_ok()
}

fn start_server() -> Result<String, String> {
    let server = find("mariadbd")
        .or_else(|| find("mysqld"))
        .ok_or("mariadbd not found (install mariadb-server)")?;
    let install = find("mariadb-install-db")
        .or_else(|| find("mysql_install_db"))
        .ok_or("mariadb-install-db not found (install mariadb-server)")?;
    let dir = tempfile::Builder::new()
        .prefix("custos-mysql-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    let data = dir.join("data");
    let user: &[&str] = if is_root() { &["--user=root"] } else { &[] };
    // Small and fast: a test server holds a few rows per database.
    let tuning = [
        "--innodb-buffer-pool-size=32M",
        "--innodb-log-file-size=8M",
        "--skip-name-resolve",
    ];
    let out = Command::new(&install)
        .arg("--no-defaults")
        .arg(format!("--datadir={}", data.display()))
        .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
        .args(user)
        .args(tuning)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("mariadb-install-db: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(format!(
            "mariadb-install-db failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let init = dir.join("init.sql");
    std::fs::write(
        &init,
        "CREATE USER IF NOT EXISTS 'custos'@'127.0.0.1' IDENTIFIED BY 'custos';\n\
         GRANT ALL PRIVILEGES ON *.* TO 'custos'@'127.0.0.1' WITH GRANT OPTION;\n",
    )
    .map_err(|e| format!("init file: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))?
        .port();
    // The watchdog stops the server and deletes its dir once this test
    // process is gone.
    let script = format!(
        "'{server}' --no-defaults {user} --datadir='{data}' --socket='{dir}/sock' \
         --pid-file='{dir}/pid' --port={port} --bind-address=127.0.0.1 {tuning} \
         --skip-log-bin --innodb-flush-log-at-trx-commit=0 --max-connections=500 \
         --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
         --init-file='{init}' >'{dir}/log' 2>&1 & m=$!; \
         while [ -d /proc/{parent} ] && kill -0 $m 2>/dev/null; do sleep 1; done; \
         kill $m 2>/dev/null; wait $m; rm -rf '{dir}'",
        server = server.display(),
        user = user.join(" "),
        data = data.display(),
        dir = dir.display(),
        tuning = tuning.join(" "),
        init = init.display(),
        parent = std::process::id(),
    );
    Command::new("/bin/sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting mariadbd: {e}"))?;
    wait_ready(&dir, port)?;
    Ok(format!("mysql://custos:custos@127.0.0.1:{port}"))
}

fn wait_ready(dir: &Path, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if greets(port) {
            return Ok(());
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("mariadbd did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
