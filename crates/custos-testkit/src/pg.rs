//! A real PostgreSQL server for tests: from `CUSTOS_TEST_DATABASE_URL`, or
//! a throw-away cluster started once per test process.
//!
//! The throw-away cluster runs as the `postgres` user when the tests run as
//! root (PostgreSQL refuses root), listens on 127.0.0.1 on a free port, and
//! is stopped and deleted by a small watchdog shell when the test process
//! exits. Without a server, PostgreSQL tests are skipped, each with a
//! `SKIPPED` line on the run's output, unless `CUSTOS_REQUIRE_PG=1`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use sqlx::Connection as _;

/// A PostgreSQL server the tests may create databases on.
#[derive(Debug)]
pub struct PgServer {
    admin_url: String,
}

static SERVER: OnceLock<Result<PgServer, String>> = OnceLock::new();

/// The shared server, or `None` when none is available: the calling test
/// is then reported as skipped on the run's output
/// ([`crate::report_skip`]), or fails when `CUSTOS_REQUIRE_PG=1`.
pub fn server() -> Option<&'static PgServer> {
    let s = SERVER.get_or_init(|| {
        if let Ok(url) = std::env::var("CUSTOS_TEST_DATABASE_URL") {
            if !url.trim().is_empty() {
                return Ok(PgServer { admin_url: url });
            }
        }
        start_cluster().map(|admin_url| PgServer { admin_url })
    });
    match s {
        Ok(server) => Some(server),
        Err(why) => {
            if required() {
                panic!("CUSTOS_REQUIRE_PG=1 but no PostgreSQL: {why}");
            }
            crate::report_skip(
                &format!("no PostgreSQL server: {}", crate::short(why)),
                "set CUSTOS_TEST_DATABASE_URL or install postgresql",
            );
            None
        }
    }
}

fn required() -> bool {
    std::env::var("CUSTOS_REQUIRE_PG").is_ok_and(|v| v == "1")
}

impl PgServer {
    /// Creates a database with a unique name; returns its URL.
    pub async fn create_database(&self, label: &str) -> String {
        let name = format!("custos_t_{label}_{}", uuid::Uuid::new_v4().simple());
        let mut conn = connect_retry(&self.admin_url).await;
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        let _ = conn.close().await;
        with_database(&self.admin_url, &name)
    }
}

impl PgServer {
    /// Copies the database `name` into a new one (it must have no
    /// connections); returns the copy's name.
    pub async fn copy_database(&self, name: &str) -> String {
        let copy = format!(
            "{name}_snap_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut conn = connect_retry(&self.admin_url).await;
        sqlx::query(&format!("CREATE DATABASE \"{copy}\" TEMPLATE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE … TEMPLATE");
        let _ = conn.close().await;
        copy
    }

    /// Replaces the database `name` by a copy of `snapshot`, as an
    /// operator restores a backup (connections to `name` are ended).
    pub async fn restore_database(&self, name: &str, snapshot: &str) {
        let mut conn = connect_retry(&self.admin_url).await;
        sqlx::query(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .expect("DROP DATABASE");
        sqlx::query(&format!(
            "CREATE DATABASE \"{name}\" TEMPLATE \"{snapshot}\""
        ))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE … TEMPLATE");
        let _ = conn.close().await;
    }
}

/// The database name of a `postgres://…/db?params` URL.
pub(crate) fn database_of(url: &str) -> String {
    let base = url.split('?').next().unwrap_or(url);
    base.rsplit('/').next().unwrap_or_default().to_owned()
}

async fn connect_retry(url: &str) -> sqlx::PgConnection {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match sqlx::PgConnection::connect(url).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("connecting to PostgreSQL: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Replaces the database of a `postgres://…/db?params` URL (or of a
/// `mysql://` one: same shape).
pub(crate) fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    let mut out = format!("{}/{db}", &base[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn bin_dir() -> Result<PathBuf, String> {
    if let Ok(d) = std::env::var("CUSTOS_PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| "no /usr/lib/postgresql (install postgresql)".to_owned())?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, p)| p.join("postgres").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .map(|(_, p)| p)
        .ok_or_else(|| "no PostgreSQL binaries under /usr/lib/postgresql".into())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `cmd` as the postgres user when we are root.
fn as_pg_user(root: bool, program: &Path) -> Command {
    if root {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn start_cluster() -> Result<String, String> {
    let bin = bin_dir()?;
    let root = is_root();
    let dir = tempfile::Builder::new()
        .prefix("custos-pg-")
        .tempdir()
        .map_err(|e| format!("temp dir: {e}"))?
        .keep();
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("cannot hand the cluster dir to the postgres user".into());
        }
    }
    let data = dir.join("data");
    let out = as_pg_user(root, &bin.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("free port: {e}"))?
        .port();
    // The watchdog stops the server and deletes the cluster once this test
    // process is gone.
    let script = format!(
        "'{pg}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 \
         -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300 \
         >'{dir}/log' 2>&1 & pg=$!; \
         while [ -d /proc/{parent} ] && kill -0 $pg 2>/dev/null; do sleep 1; done; \
         kill $pg 2>/dev/null; wait $pg; rm -rf '{dir}'",
        pg = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        parent = std::process::id(),
    );
    as_pg_user(root, Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting postgres: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bin.join("pg_isready"))
            .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return Ok(format!("postgres://postgres@127.0.0.1:{port}/postgres"));
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("log")).unwrap_or_default();
            return Err(format!("postgres did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The statements of an SQL script such as a public sample database's dump,
/// `--` comments removed, split on `;`. Only for scripts with no `;`
/// inside a literal (the Fides example is one).
pub fn script_statements(sql: &str) -> Vec<String> {
    let text: Vec<&str> = sql
        .lines()
        .map(|l| l.find("--").map_or(l, |i| l.get(..i).unwrap_or(l)))
        .collect();
    text.join("\n")
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_keeping_parameters() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }
}
