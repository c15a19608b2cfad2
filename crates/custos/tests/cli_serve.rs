//! `custos serve`, `demo` and `audit verify` as processes: first start with
//! no configuration, a kill -9 in the middle of writes and erasures, audit
//! verification of the stores left behind, map reload on SIGHUP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custos_testkit::{backend_tests, TestStore};
use serde_json::{json, Value};

const ADMIN: &str = "cadm_cli_test_token_0123456789abcdef";

fn custos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
    for var in [
        "CUSTOS_ROOT_KEY",
        "CUSTOS_ROOT_KEY_FILE",
        "CUSTOS_ADMIN_TOKEN",
        "CUSTOS_DATABASE_URL",
        "CUSTOS_KEYSTORE_URL",
        "CUSTOS_DATA_DIR",
        "CUSTOS_LISTEN",
        "CUSTOS_MAP",
    ] {
        c.env_remove(var);
    }
    c
}

/// A running server process, its address and the stdout lines it printed
/// up to "listening".
struct Server {
    child: Child,
    base: String,
    stdout: Vec<String>,
    /// Stdout lines printed after the listening line.
    later: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Server {
    fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut stdout = Vec::new();
        let base = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!(
                    "server exited before listening: {stdout:?}\n{}",
                    stderr.lock().unwrap()
                );
            };
            stdout.push(line.clone());
            if let Some(rest) = line.strip_prefix("custos listening on ") {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        let later = Arc::new(Mutex::new(Vec::new()));
        let sink = later.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            base,
            stdout,
            later,
            stderr,
        }
    }

    /// The first stdout line after the listening line that starts with
    /// `prefix`, waiting up to 10 s for it.
    fn wait_line(&self, prefix: &str) -> String {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(l) = self
                .later
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return l.clone();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no line starting with {prefix:?}: {:?}",
                self.later.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(100));
        let s = self.stderr.lock().unwrap().clone();
        s
    }

    fn terminate(mut self) -> String {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while self.child.try_wait().unwrap().is_none() {
            assert!(std::time::Instant::now() < deadline, "no graceful stop");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        let s = self.stderr.lock().unwrap().clone();
        s
    }
}

/// The store flags of `store` on a command.
fn on_store(c: &mut Command, store: &TestStore, dir: &Path) {
    c.arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(&store.database_url)
        .arg("--keystore-url")
        .arg(&store.keystore_url)
        .env("CUSTOS_ROOT_KEY", store.root_key_b64());
}

/// `custos audit verify [--json]` on the stores of `store`.
fn verify_cmd(store: &TestStore, dir: &Path, json: bool) -> Command {
    let mut c = custos();
    c.args(["audit", "verify"]);
    if json {
        c.arg("--json");
    }
    c.arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(&store.database_url)
        .arg("--keystore-url")
        .arg(&store.keystore_url)
        .env("CUSTOS_ROOT_KEY", store.root_key_b64());
    c
}

fn serve_cmd(store: &TestStore, dir: &Path) -> Command {
    let mut c = custos();
    c.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(&store.database_url)
        .arg("--keystore-url")
        .arg(&store.keystore_url)
        .env("CUSTOS_ROOT_KEY", store.root_key_b64())
        .env("CUSTOS_ADMIN_TOKEN", ADMIN)
        .env("CUSTOS_LOG", "debug");
    c
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = http.request(method, url).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status().as_u16();
    let body = res.json::<Value>().await.unwrap_or(Value::Null);
    Ok((status, body))
}

async fn tenant_key(http: &reqwest::Client, base: &str) -> String {
    let (st, _) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/tenants"),
        ADMIN,
        Some(json!({"id": "acme", "name": "Acme"})),
    )
    .await
    .unwrap();
    assert_eq!(st, 201);
    let (st, b) = call(
        http,
        reqwest::Method::POST,
        format!("{base}/v1/keys"),
        ADMIN,
        Some(json!({"tenant": "acme", "scopes": ["write", "reveal", "lookup", "erase", "audit"]})),
    )
    .await
    .unwrap();
    assert_eq!(st, 201);
    b["key"].as_str().unwrap().to_owned()
}

#[test]
fn serve_with_no_configuration_creates_two_stores_and_a_dev_root_key() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = custos();
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    let printed = server.stdout.join("\n");
    let token = printed
        .split_whitespace()
        .find(|w| w.starts_with("cadm_"))
        .expect("admin token printed")
        .to_owned();
    assert!(printed.contains("Authorization: Bearer"));
    let base = server.base.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let (st, _) = call(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/tenants"),
            &token,
            None,
        )
        .await
        .unwrap();
        assert_eq!(st, 200);
    });
    let stderr = server.terminate();
    assert!(stderr.contains("WARNING"), "{stderr}");
    let data = dir.path().join("custos-data");
    assert!(data.join("data.db").exists());
    assert!(data.join("keys/keys.db").exists());
    assert!(data.join("root.key").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(data.join("root.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "root key readable by others: {mode:o}");
        // The directory the development key made is the owner's alone too.
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "data directory open to others: {mode:o}");
    }
}

#[test]
fn demo_prints_a_working_tour() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = custos();
    cmd.current_dir(dir.path())
        .args(["demo", "--listen", "127.0.0.1:0"]);
    let server = Server::start(cmd);
    // `export CUSTOS=… ADMIN=… KEY=… SUPPORT=…`: the tour's credentials.
    let export = server.wait_line("export CUSTOS=");
    let var = |name: &str| {
        export
            .split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} missing in {export}"))
            .to_owned()
    };
    let (base, admin, key, support) = (var("CUSTOS"), var("ADMIN"), var("KEY"), var("SUPPORT"));
    assert_eq!(base, server.base);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let http = reqwest::Client::new();
        let get = |url: String, token: String| {
            let http = http.clone();
            async move { call(&http, reqwest::Method::GET, url, &token, None).await }
        };
        let (st, tenants) = get(format!("{base}/v1/tenants"), admin.clone())
            .await
            .unwrap();
        assert_eq!(st, 200);
        let text = tenants.to_string();
        assert!(text.contains("acme") && text.contains("globex"), "{text}");
        // The seeded subject is found by the blind index, revealed with a
        // purpose, and masked for the support key.
        let (st, found) = get(
            format!("{base}/v1/subjects/lookup?email=jane.doe%40example.com"),
            key.clone(),
        )
        .await
        .unwrap();
        assert_eq!(st, 200, "{found}");
        let id = found["id"].as_str().unwrap().to_owned();
        let record = format!("{base}/v1/subjects/{id}/records/profile/main");
        let (st, clear) = get(format!("{record}?purpose=support"), key.clone())
            .await
            .unwrap();
        assert_eq!(
            (st, clear["masked"].as_bool()),
            (200, Some(false)),
            "{clear}"
        );
        let (st, masked) = get(record, support.clone()).await.unwrap();
        assert_eq!(
            (st, masked["masked"].as_bool()),
            (200, Some(true)),
            "{masked}"
        );
        // The demo loads its data map: the ROPA is served.
        let (st, _) = get(format!("{base}/v1/ropa?format=json"), key.clone())
            .await
            .unwrap();
        assert_eq!(st, 200);
        let (st, _) = get(format!("{base}/v1/tenants"), String::new())
            .await
            .unwrap();
        assert_eq!(st, 401);
    });
    server.terminate();
}

backend_tests!(
    kill9_loses_no_acknowledged_write_and_leaves_no_half_erasure,
    audit_verify_names_the_tampered_entry,
    a_request_survives_kill9_and_completes_once,
    a_restored_data_store_is_refused_until_custos_recover,
);

/// What the clients were told.
#[derive(Default)]
struct Acks {
    /// subject → (email, acknowledged records: key → value)
    subjects: HashMap<String, (String, HashMap<String, i64>)>,
    erase_sent: Vec<String>,
    erase_acked: Vec<String>,
}

async fn kill9_loses_no_acknowledged_write_and_leaves_no_half_erasure(store: TestStore) {
    let dir = store.dir().join("srv");
    let server = Server::start(serve_cmd(&store, &dir));
    let base = server.base.clone();
    let http = reqwest::Client::new();
    let key = tenant_key(&http, &base).await;
    let acks = Arc::new(Mutex::new(Acks::default()));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let (http, key, base, acks) = (http.clone(), key.clone(), base.clone(), acks.clone());
        tasks.push(tokio::spawn(async move {
            for n in 0.. {
                let email = format!("w{w}n{n}@example.com");
                let Ok((201, b)) = call(
                    &http,
                    reqwest::Method::POST,
                    format!("{base}/v1/subjects"),
                    &key,
                    Some(json!({"identities": {"email": email}})),
                )
                .await
                else {
                    return;
                };
                let id = b["id"].as_str().unwrap().to_owned();
                acks.lock()
                    .unwrap()
                    .subjects
                    .insert(id.clone(), (email, HashMap::new()));
                for r in 0..3i64 {
                    let rk = format!("r{r}");
                    match call(
                        &http,
                        reqwest::Method::PUT,
                        format!("{base}/v1/subjects/{id}/records/notes/{rk}"),
                        &key,
                        Some(json!({"fields": {"v": r, "text": "some note"}})),
                    )
                    .await
                    {
                        Ok((200, _)) => {
                            let mut a = acks.lock().unwrap();
                            a.subjects.get_mut(&id).unwrap().1.insert(rk, r);
                        }
                        Ok((st, b)) => panic!("write answered {st}: {b}"),
                        Err(_) => return,
                    }
                }
                // Every other subject is erased right away.
                if n % 2 == 1 {
                    acks.lock().unwrap().erase_sent.push(id.clone());
                    match call(
                        &http,
                        reqwest::Method::DELETE,
                        format!("{base}/v1/subjects/{id}"),
                        &key,
                        Some(json!({"reason": "subject_request"})),
                    )
                    .await
                    {
                        Ok((200, _)) => acks.lock().unwrap().erase_acked.push(id),
                        Ok((st, b)) => panic!("erase answered {st}: {b}"),
                        Err(_) => return,
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let stderr = server.kill9();
    for t in tasks {
        t.await.unwrap();
    }
    let acks = Arc::try_unwrap(acks).ok().unwrap().into_inner().unwrap();
    assert!(
        acks.subjects.len() > 20,
        "too little load: {}",
        acks.subjects.len()
    );
    assert!(!acks.erase_acked.is_empty());
    // The logs of a busy server at debug level hold no personal data.
    assert!(!stderr.contains("@example.com"), "{stderr}");

    let server = Server::start(serve_cmd(&store, &dir));
    let base = server.base.clone();
    let mut checked = 0;
    for (id, (email, records)) in &acks.subjects {
        let (st, b) = call(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/subjects/{id}"),
            &key,
            None,
        )
        .await
        .unwrap();
        let (lst, lb) = call(
            &http,
            reqwest::Method::GET,
            format!("{base}/v1/subjects/lookup?email={email}"),
            &key,
            None,
        )
        .await
        .unwrap();
        if acks.erase_acked.contains(id) {
            assert_eq!(st, 410, "acknowledged erasure of {id} lost: {b}");
        }
        if st == 410 {
            assert!(acks.erase_sent.contains(id), "{id} erased unasked");
            assert_eq!(lst, 404, "erased {id} still found by lookup");
            for rk in records.keys() {
                let (rs, _) = call(
                    &http,
                    reqwest::Method::GET,
                    format!("{base}/v1/subjects/{id}/records/notes/{rk}?purpose=x"),
                    &key,
                    None,
                )
                .await
                .unwrap();
                assert_eq!(rs, 410);
            }
        } else {
            assert_eq!(st, 200, "{id}: {b}");
            assert_eq!((lst, lb["id"].as_str()), (200, Some(id.as_str())));
            for (rk, v) in records {
                let (rs, rb) = call(
                    &http,
                    reqwest::Method::GET,
                    format!("{base}/v1/subjects/{id}/records/notes/{rk}?purpose=x"),
                    &key,
                    None,
                )
                .await
                .unwrap();
                assert_eq!(rs, 200, "acknowledged write {id}/{rk} lost: {rb}");
                assert_eq!(rb["fields"]["v"].as_i64(), Some(*v));
                checked += 1;
            }
        }
    }
    assert!(checked > 0);
    server.terminate();

    // The audit chain survived the crash.
    let out = verify_cmd(&store, &dir, false).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("intact"), "{text}");
}

async fn audit_verify_names_the_tampered_entry(store: TestStore) {
    let dir = store.dir().join("srv");
    let server = Server::start(serve_cmd(&store, &dir));
    let http = reqwest::Client::new();
    let key = tenant_key(&http, &server.base).await;
    for i in 0..5 {
        let (st, _) = call(
            &http,
            reqwest::Method::GET,
            format!(
                "{}/v1/subjects/lookup?email=nobody{i}%40example.com",
                server.base
            ),
            &key,
            None,
        )
        .await
        .unwrap();
        assert_eq!(st, 404);
    }
    server.terminate();
    let verify = || verify_cmd(&store, &dir, true).output().unwrap();
    let ok = verify();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // Edit entry 3 behind custos' back.
    let vault = store.open().await;
    sqlx::query("UPDATE audit_log SET outcome = 'edited' WHERE seq = 3")
        .execute(vault.read_pool())
        .await
        .unwrap();
    vault.close().await;
    let bad = verify();
    assert_eq!(bad.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(report["first_bad_seq"], 3, "{report}");
    // The wrong root key is refused with a clear error, not a panic.
    let wrong = verify_cmd(&store, &dir, false)
        .env(
            "CUSTOS_ROOT_KEY",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        )
        .output()
        .unwrap();
    assert_eq!(wrong.status.code(), Some(2));
    let err = String::from_utf8_lossy(&wrong.stderr);
    assert!(err.contains("root key"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn sighup_reloads_the_map_and_keeps_the_old_one_on_errors() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.yaml");
    std::fs::write(&map, custos_map::DEMO_MAP).unwrap();
    let mut cmd = custos();
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--map"])
        .arg(&map)
        .env("CUSTOS_ADMIN_TOKEN", ADMIN);
    let server = Server::start(cmd);
    let base = server.base.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let controller = |base: &str| {
        let base = base.to_owned();
        rt.block_on(async move {
            let http = reqwest::Client::new();
            let (st, b) = call(
                &http,
                reqwest::Method::GET,
                format!("{base}/v1/map"),
                ADMIN,
                None,
            )
            .await
            .unwrap();
            assert_eq!(st, 200, "{b}");
            b["organisation"].to_string()
        })
    };
    let before = controller(&base);
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &server.child.id().to_string()])
            .status()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
    };
    // A broken map: the old one stays in service.
    std::fs::write(&map, "organisation: [unclosed").unwrap();
    hup();
    assert_eq!(controller(&base), before);
    // A changed, valid map is picked up.
    let renamed =
        custos_map::DEMO_MAP.replace("controller: Acme Intranet GmbH", "controller: Zenith GmbH");
    assert_ne!(renamed, custos_map::DEMO_MAP, "demo map names Acme");
    std::fs::write(&map, renamed).unwrap();
    hup();
    let after = controller(&base);
    assert_ne!(after, before, "{after}");
    assert!(after.contains("Zenith"), "{after}");
    server.terminate();
}

#[test]
fn serves_https_when_given_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output();
    let Ok(made) = made else {
        eprintln!("NOTICE: openssl not installed; HTTPS test skipped");
        return;
    };
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut cmd = custos();
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("CUSTOS_ADMIN_TOKEN", ADMIN);
    let server = Server::start(cmd);
    assert!(server.base.starts_with("https://"), "{}", server.base);
    let out = Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&cert)
        .arg(format!("{}/healthz", server.base))
        .output();
    let Ok(out) = out else {
        server.terminate();
        eprintln!("NOTICE: curl not installed; HTTPS request skipped");
        return;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    // Plain HTTP to the TLS port is refused, not served.
    let plain = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(server.base.replace("https://", "http://") + "/healthz")
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
    server.terminate();

    // A missing key file is a clear error naming the files.
    let out = custos()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .args(["--tls-key", "missing.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.pem"), "{err}");
}

#[test]
fn dsr_cli_carries_requests_through_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = custos();
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CUSTOS_ADMIN_TOKEN", ADMIN);
    let server = Server::start(cmd);
    let base = server.base.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rt.block_on(async {
        let http = reqwest::Client::new();
        let admin_key = tenant_key(&http, &base).await;
        let (st, _) = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/subjects"),
            &admin_key,
            Some(json!({"identities": {"email": "jane@example.com"}})),
        )
        .await
        .unwrap();
        assert_eq!(st, 201);
        let (st, b) = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/keys"),
            ADMIN,
            Some(json!({"tenant": "acme", "scopes": ["dsr"]})),
        )
        .await
        .unwrap();
        assert_eq!(st, 201);
        b["key"].as_str().unwrap().to_owned()
    });
    let dsr = |args: &[&str]| {
        let out = custos()
            .arg("dsr")
            .args(args)
            .env("CUSTOS_URL", &base)
            .env("CUSTOS_API_KEY", &key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Access: created, carried out, exported as a ZIP.
    let (code, out, err) = dsr(&[
        "create",
        "--type",
        "access",
        "--email",
        "jane@example.com",
        "--vouched",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = out.split_whitespace().next().unwrap().to_owned();
    assert!(id.starts_with("req_"), "{out}");
    let (code, out, err) = dsr(&["status", &id, "--wait"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("completed"), "{out}");
    let zip = dir.path().join("jane.zip");
    let (code, out, err) = dsr(&["export", &id, "--out", zip.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(std::fs::read(&zip).unwrap().starts_with(b"PK"), "not a ZIP");
    // Erasure with its dry run first; the list shows both.
    let (code, out, err) = dsr(&[
        "create",
        "--type",
        "erasure",
        "--email",
        "jane@example.com",
        "--vouched",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let erasure = out.split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = dsr(&["plan", &erasure]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("erase in vault"), "{out}");
    let (code, out, err) = dsr(&["status", &erasure, "--wait"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("completed"), "{out}");
    let (code, out, _) = dsr(&["list"]);
    assert_eq!(code, Some(0));
    assert!(out.contains(&id) && out.contains(&erasure), "{out}");
    // Bad input: a clear message and a non-zero exit.
    let (code, _, err) = dsr(&["status", "req_nope"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("invalid_id: id: invalid request id"), "{err}");
    let out = custos()
        .args(["dsr", "list"])
        .env("CUSTOS_URL", &base)
        .env_remove("CUSTOS_API_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUSTOS_API_KEY"));
    server.terminate();
}

/// A vault and one processor that takes notices at `url`.
fn processor_map(url: &str) -> String {
    format!(
        r#"version: 1
organisation: {{ controller: Sample SaaS GmbH, contact: privacy@sample.example }}
purposes:
  - id: account
    title: Provide the account
    legal_basis: contract
    subjects: [customer]
processors:
  - id: crm
    name: Sample CRM Ltd.
    role: processor
    country: IE
    dpa: {{ status: signed, date: "2024-01-01" }}
    notify: {{ url: "{url}" }}
    # A processor played on this host over plain HTTP.
    allow_insecure_loopback: true
    purposes: [account]
systems:
  - id: vault
    kind: vault
    datasets:
      - id: profiles
        collection: profiles
        subject: {{ identity: subject_id }}
        purposes: [account]
        erasure: shred
        retention: {{ period: 30d, from_event: account_closed }}
        fields:
          - {{ name: subject_id, category: user.unique_id, identity: subject_id }}
          - {{ name: email, category: user.contact.email, identity: email }}
  - id: crm_api
    kind: http
    processor: crm
    datasets:
      - id: contacts
        endpoint: "/contacts/{{email}}"
        subject: {{ identity: email }}
        purposes: [account]
        erasure: delete
        retention: {{ period: 2y, from_event: contract_end }}
        fields:
          - {{ name: email, category: user.contact.email, identity: email }}
"#
    )
}

/// An erasure waits for its processor; the server is killed (-9) and
/// started again: the request resumes from the database, the processor's
/// confirmation completes it, and every step ran exactly once.
async fn a_request_survives_kill9_and_completes_once(store: TestStore) {
    use axum::routing::post;
    let dir = tempfile::tempdir().unwrap();
    // The processor: accepts every notice and remembers its step.
    let notices: Arc<Mutex<Vec<Value>>> = Arc::default();
    let seen = notices.clone();
    let app = axum::Router::new().route(
        "/notice",
        post(move |body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                seen.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notice", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    let map = dir.path().join("map.yaml");
    std::fs::write(&map, processor_map(&url)).unwrap();
    let start = || {
        let mut c = serve_cmd(&store, dir.path());
        c.arg("--map")
            .arg(&map)
            .env("CUSTOS_PROCESSOR_SECRET_CRM", "crm-secret");
        Server::start(c)
    };
    let http = reqwest::Client::new();
    let server = start();
    let base = server.base.clone();
    let key = tenant_key(&http, &base).await;
    let (st, subject) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/subjects"),
        &key,
        Some(json!({"identities": {"email": "jane@example.com"}})),
    )
    .await
    .unwrap();
    assert_eq!(st, 201);
    let subject = subject["id"].as_str().unwrap().to_owned();
    let (st, b) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/keys"),
        ADMIN,
        Some(json!({"tenant": "acme", "scopes": ["dsr", "write"]})),
    )
    .await
    .unwrap();
    assert_eq!(st, 201);
    let dsr = b["key"].as_str().unwrap().to_owned();
    let (st, b) = call(
        &http,
        reqwest::Method::POST,
        format!("{base}/v1/requests"),
        &dsr,
        Some(json!({"type": "erasure", "identity": {"email": "jane@example.com"}, "verified_by_app": true})),
    )
    .await
    .unwrap();
    assert_eq!(st, 201, "{b}");
    let id = b["id"].as_str().unwrap().to_owned();
    let status = |base: String| {
        let (http, dsr, id) = (http.clone(), dsr.clone(), id.clone());
        async move {
            let (st, b) = call(
                &http,
                reqwest::Method::GET,
                format!("{base}/v1/requests/{id}"),
                &dsr,
                None,
            )
            .await
            .unwrap();
            assert_eq!(st, 200, "{b}");
            b
        }
    };
    let wait_for = |base: String, want: &'static str| {
        let status = &status;
        async move {
            for _ in 0..300 {
                let b = status(base.clone()).await;
                if b["status"] == want {
                    return b;
                }
                assert_ne!(b["status"], "failed", "{b:#}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            panic!("never {want}: {:#}", status(base).await);
        }
    };
    wait_for(base.clone(), "waiting_processor").await;
    let stderr = server.kill9();
    assert!(!stderr.contains("jane@example.com"), "{stderr}");

    let server = start();
    let base = server.base.clone();
    let step = notices.lock().unwrap().last().unwrap()["step"]
        .as_i64()
        .unwrap();
    let body = json!({"holds_nothing_more": true}).to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let target = custos_connectors::notice::CallbackTarget {
        tenant: "acme",
        request_id: &id,
        step,
    };
    let sig =
        custos_connectors::notice::sign_callback(b"crm-secret", &target, now, body.as_bytes());
    let r = http
        .post(format!("{base}/v1/processor-callbacks/{id}/{step}"))
        .header("custos-signature", sig)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let done = wait_for(base.clone(), "completed").await;
    // Every step once, each done; one notice reached the processor.
    let steps = done["steps"].as_array().unwrap();
    let mut numbers: Vec<i64> = steps.iter().map(|s| s["step"].as_i64().unwrap()).collect();
    numbers.dedup();
    assert_eq!(numbers.len(), steps.len(), "{done:#}");
    assert!(steps.iter().all(|s| s["status"] == "done"), "{done:#}");
    assert_eq!(notices.lock().unwrap().len(), 1);
    let (st, _) = call(
        &http,
        reqwest::Method::GET,
        format!("{base}/v1/subjects/{subject}"),
        &key,
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 410);
    server.terminate();
}

/// The documented recovery, as an operator runs it: a data store put back
/// from a copy taken before an erasure is refused by `custos serve`
/// (naming `custos recover`), `custos recover` replays the erasure, `custos
/// audit verify` reports the recovery and the lost entries, and the person
/// stays erased.
async fn a_restored_data_store_is_refused_until_custos_recover(store: TestStore) {
    let dir = store.dir().join("srv");
    let http = reqwest::Client::new();
    let server = Server::start(serve_cmd(&store, &dir));
    let key = tenant_key(&http, &server.base).await;
    let (st, b) = call(
        &http,
        reqwest::Method::POST,
        format!("{}/v1/subjects", server.base),
        &key,
        Some(json!({"identities": {"email": "jane@example.com"}})),
    )
    .await
    .unwrap();
    assert_eq!(st, 201, "{b}");
    let jane = b["id"].as_str().unwrap().to_owned();
    server.terminate();
    let backup = store.snapshot(custos_testkit::Database::Data).await;

    let server = Server::start(serve_cmd(&store, &dir));
    let (st, b) = call(
        &http,
        reqwest::Method::DELETE,
        format!("{}/v1/subjects/{jane}", server.base),
        &key,
        Some(json!({"reason": "subject_request"})),
    )
    .await
    .unwrap();
    assert_eq!(st, 200, "{b}");
    server.terminate();
    store.restore(&backup).await;

    let refused = serve_cmd(&store, &dir).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("restored from an older copy") && err.contains("custos recover"),
        "{err}"
    );

    let mut recover = custos();
    recover.arg("recover");
    on_store(&mut recover, &store, &dir);
    let out = recover.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("1 erasure(s) replayed"), "{said}");

    let verified = verify_cmd(&store, &dir, false).output().unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{said}");
    assert!(
        said.contains("recovered at") && said.contains("were lost"),
        "{said}"
    );

    let server = Server::start(serve_cmd(&store, &dir));
    let (st, _) = call(
        &http,
        reqwest::Method::GET,
        format!("{}/v1/subjects/{jane}", server.base),
        &key,
        None,
    )
    .await
    .unwrap();
    assert_eq!(st, 410);
    server.terminate();
}

/// A weak chosen admin token stops `serve` before anything is opened,
/// saying which rule it broke and never printing the token.
#[test]
fn a_weak_admin_token_is_refused_at_start() {
    for (token, why) in [
        ("hunter2-hunter2", "too short"),
        (
            "abababababababababababababababababab",
            "too few distinct characters",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = custos()
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("CUSTOS_ADMIN_TOKEN", token)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("CUSTOS_ADMIN_TOKEN") && err.contains(why),
            "{err}"
        );
        assert!(!err.contains(token), "{err}");
        assert!(
            std::fs::read_dir(dir.path()).unwrap().next().is_none(),
            "no store was created"
        );
    }
}

/// A step that failed for good (the map's SQLite file does not exist) is
/// skipped from the command line with a reason; a step that has not
/// failed cannot be retried.
#[test]
fn dsr_cli_skips_a_failed_step_and_refuses_to_retry_a_skipped_one() {
    let dir = tempfile::tempdir().unwrap();
    let map = dir.path().join("map.yaml");
    std::fs::write(
        &map,
        r#"version: 1
organisation: { controller: Test GmbH, contact: privacy@test.example }
purposes:
  - { id: account, title: Accounts, legal_basis: contract, subjects: [customer] }
systems:
  - id: app_db
    kind: sqlite
    connection: { path_env: APP_DB_PATH }
    datasets:
      - id: users
        table: users
        subject: { identity: email }
        purposes: [account]
        erasure: delete
        retention: { period: 30d, from_event: account_closed }
        fields:
          - { name: email, category: user.contact.email, identity: email }
"#,
    )
    .unwrap();
    let mut cmd = custos();
    cmd.current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0", "--map"])
        .arg(&map)
        .env("APP_DB_PATH", dir.path().join("missing.db"))
        .env("CUSTOS_ADMIN_TOKEN", ADMIN);
    let server = Server::start(cmd);
    let base = server.base.clone();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = rt.block_on(async {
        let http = reqwest::Client::new();
        tenant_key(&http, &base).await;
        let (st, b) = call(
            &http,
            reqwest::Method::POST,
            format!("{base}/v1/keys"),
            ADMIN,
            Some(json!({"tenant": "acme", "scopes": ["dsr"]})),
        )
        .await
        .unwrap();
        assert_eq!(st, 201);
        b["key"].as_str().unwrap().to_owned()
    });
    let dsr = |args: &[&str]| {
        let out = custos()
            .arg("dsr")
            .args(args)
            .env("CUSTOS_URL", &base)
            .env("CUSTOS_API_KEY", &key)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = dsr(&[
        "create",
        "--type",
        "access",
        "--email",
        "jane@example.com",
        "--vouched",
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
    let id = out.split_whitespace().next().unwrap().to_owned();
    let (code, out, err) = dsr(&["status", &id, "--wait"]);
    assert_eq!(code, Some(1), "failed: {out}{err}");
    assert!(
        out.contains("APP_DB_PATH"),
        "the error names the setting: {out}"
    );
    let (code, out, err) = dsr(&["skip", &id, "1", "--reason", "no such database here"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("step 1 skipped"), "{out}");
    let (code, out, err) = dsr(&["status", &id, "--wait"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("completed"), "{out}");
    let (code, _, err) = dsr(&["retry", &id, "1", "--reason", "again"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("conflict"), "{err}");
}
