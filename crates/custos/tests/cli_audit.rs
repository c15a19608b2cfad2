//! `custos keys rotate-root`/`rotate-audit` and `custos audit
//! verify`/`public-key`/`export --proof`/`verify-proof` as processes, and
//! a missing root key on an existing store.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::path::Path;
use std::process::{Command, Output};

use custos_core::ids::TenantId;
use custos_store::Vault;
use custos_testkit::{backend_tests, TestStore};

backend_tests!(audit_keys_rotate_and_the_log_verifies_with_public_keys_alone);

fn custos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
    for var in [
        "CUSTOS_ROOT_KEY",
        "CUSTOS_ROOT_KEY_FILE",
        "CUSTOS_NEW_ROOT_KEY",
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

fn run(c: &mut Command) -> (Output, String) {
    let out = c.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out, text)
}

/// `custos <args>` on the stores of `store`, with `root` (base64) if given.
fn on_store(store: &TestStore, dir: &Path, args: &[&str], root: Option<&str>) -> (Output, String) {
    let mut c = custos();
    c.args(args)
        .arg("--data-dir")
        .arg(dir)
        .arg("--database-url")
        .arg(&store.database_url)
        .arg("--keystore-url")
        .arg(&store.keystore_url);
    if let Some(r) = root {
        c.env("CUSTOS_ROOT_KEY", r);
    }
    run(&mut c)
}

async fn entries(store: &TestStore, first: usize) {
    let v = store.open().await;
    for i in first..first + 3 {
        let t = TenantId::parse(&format!("t{i}")).unwrap();
        v.tenants().create(&t, "Tenant").await.unwrap();
    }
    v.close().await;
}

/// Before, `keys rotate-root` broke `audit verify` for good, and verifying
/// needed the root key. Now: rotate the root key and the audit key, then
/// verify with the new root key, and with a public key file taken before
/// the rotations and no root key at all; export the proof and check it
/// offline; a tampered proof is refused.
async fn audit_keys_rotate_and_the_log_verifies_with_public_keys_alone(store: TestStore) {
    let dir = store.dir().join("cli");
    let old = store.root_key_b64();
    entries(&store, 0).await;
    let pk = store.dir().join("public-keys.json");
    let (out, text) = on_store(
        &store,
        &dir,
        &["audit", "public-key", "-o", pk.to_str().unwrap()],
        Some(&old),
    );
    assert!(out.status.success(), "{text}");

    let new = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
    let (out, text) = on_store(
        &store,
        &dir,
        &["keys", "rotate-root", "--new-root-key", new],
        Some(&old),
    );
    assert!(out.status.success(), "{text}");
    let (out, text) = on_store(&store, &dir, &["keys", "rotate-audit"], Some(new));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("retired"), "{text}");

    let (out, text) = on_store(&store, &dir, &["audit", "verify"], Some(new));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("intact"), "{text}");
    let (out, text) = on_store(
        &store,
        &dir,
        &["audit", "verify", "--public-key", pk.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("intact"), "{text}");

    let proof = store.dir().join("proof.json");
    let (out, text) = on_store(
        &store,
        &dir,
        &["audit", "export", "--proof", "-o", proof.to_str().unwrap()],
        None,
    );
    assert!(out.status.success(), "{text}");
    let check = |file: &Path| {
        run(custos().args([
            "audit",
            "verify-proof",
            file.to_str().unwrap(),
            "--public-key",
            pk.to_str().unwrap(),
        ]))
    };
    let (out, text) = check(&proof);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("proof intact"), "{text}");
    let doc = std::fs::read_to_string(&proof).unwrap();
    let tampered = store.dir().join("tampered.json");
    std::fs::write(&tampered, doc.replacen("\"ok\"", "\"no\"", 1)).unwrap();
    let (out, text) = check(&tampered);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("BROKEN"), "{text}");
}

/// Before, `custos serve` without a root key on an existing store wrote a
/// new development key, which the store refused, and then every later
/// start used it and was refused. Now it fails naming the settings and
/// writes nothing.
#[test]
fn a_missing_root_key_on_an_existing_store_is_refused_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("custos-data");
    std::fs::create_dir_all(data.join("keys")).unwrap();
    let url = |p: &Path| format!("sqlite://{}?mode=rwc", p.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let cfg = custos_store::VaultConfig::new(
            url(&data.join("data.db")),
            url(&data.join("keys/keys.db")),
            custos_core::keys::RootKey::new(custos_core::secret::Key32::from_bytes([5; 32])),
        );
        Vault::open(cfg).await.unwrap().close().await;
    });
    let listing = |d: &Path| {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = listing(&data);
    let (out, text) = run(custos()
        .current_dir(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CUSTOS_ADMIN_TOKEN", "cadm_cli_test_token_0123456789abcdef"));
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("CUSTOS_ROOT_KEY"), "{text}");
    assert!(text.contains("--root-key-file"), "{text}");
    assert!(
        !data.join("root.key").exists(),
        "a development key was written"
    );
    assert_eq!(listing(&data), before);
}
