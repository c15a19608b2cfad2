//! The audit signing key of its own and the key hierarchy, on the vault
//! over real stores (SQLite and PostgreSQL): a root rotation keeps every
//! checkpoint verifiable; an audit key rotation too, and with public keys
//! alone; a store of the old kind (checkpoints signed with the
//! root-derived key, keys wrapped with the root key itself) opens,
//! migrates and verifies; a subject key without its subject row does not
//! survive a start.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use custos_core::audit::Checkpoint;
use custos_core::audit_keys::KeyOrigin;
use custos_core::audit_proof::AuditProof;
use custos_core::ids::{SubjectId, TenantId};
use custos_core::keys::RootKey;
use custos_core::secret::Key32;
use custos_store::{AuditLog, Vault, VaultConfig, ORPHAN_GRACE_US};
use custos_testkit::{backend_tests, TestStore};
use rand_core::OsRng;
use sqlx::{AnyPool, Row};

backend_tests!(
    root_rotation_keeps_old_and_new_checkpoints_verifiable,
    audit_key_rotation_verifies_with_public_keys_alone,
    a_store_signed_with_the_root_derived_key_migrates_and_verifies,
    a_subject_key_without_its_subject_does_not_survive_a_start,
);

fn root(bytes: [u8; 32]) -> RootKey {
    RootKey::new(Key32::from_bytes(bytes))
}

fn config(store: &TestStore, key: [u8; 32]) -> VaultConfig {
    let mut cfg = store.config();
    cfg.root_key = root(key);
    cfg
}

/// Opens, creates `n` tenants from `first` (audited), closes (which signs
/// a checkpoint of the tail).
async fn some_entries(store: &TestStore, key: [u8; 32], first: usize, n: usize) {
    let v = Vault::open(config(store, key)).await.unwrap();
    for i in first..first + n {
        let t = TenantId::parse(&format!("t{i}")).unwrap();
        v.tenants().create(&t, "Tenant").await.unwrap();
    }
    v.close().await;
}

async fn pool(url: &str) -> AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .unwrap()
}

async fn verify(store: &TestStore, key: [u8; 32]) -> custos_store::AuditReport {
    let v = Vault::open(config(store, key)).await.unwrap();
    let r = v.audit().verify().await.unwrap();
    v.close().await;
    r
}

/// Before, checkpoints were signed with a key derived from the root key,
/// and verified with the current one: after `keys rotate-root` every old
/// checkpoint failed ("signature invalid") for good.
async fn root_rotation_keeps_old_and_new_checkpoints_verifiable(store: TestStore) {
    let old = store.root_key;
    some_entries(&store, old, 0, 3).await;
    let new = [9u8; 32];
    let v = Vault::open(config(&store, old)).await.unwrap();
    let n = v
        .keystore()
        .rotate_root(&root(old), &root(new))
        .await
        .unwrap();
    assert!(n >= 4, "3 tenant keys and the audit key rewrapped: {n}");
    v.close().await;
    some_entries(&store, new, 3, 2).await;
    let r = verify(&store, new).await;
    assert_eq!(r.first_break, None, "{r:?}");
    assert!(r.checkpoints >= 3, "{r:?}");
    assert!(Vault::open(config(&store, old)).await.is_err());
}

/// A rotated audit key keeps the old checkpoints verifiable: the history
/// keeps the old public key, and the new key is endorsed by the old one,
/// so a public key file taken before the rotation still verifies the
/// whole log and its proof, with no secret.
async fn audit_key_rotation_verifies_with_public_keys_alone(store: TestStore) {
    let key = store.root_key;
    some_entries(&store, key, 0, 2).await;
    let v = Vault::open(config(&store, key)).await.unwrap();
    let before = v.public_key_history().await.unwrap();
    let (old, new) = v.rotate_audit_key().await.unwrap();
    assert_ne!(old, new);
    v.close().await;
    some_entries(&store, key, 2, 2).await;

    let log = AuditLog::open(&store.database_url, Some(&store.keystore_url))
        .await
        .unwrap();
    let history = log.public_key_history().await.unwrap();
    assert_eq!(history.keys.len(), 2);
    assert_eq!(history.keys[0].key_id, old);
    let r = log.verify(&before).await.unwrap();
    assert_eq!(r.first_break, None, "{r:?}");
    // Both keys signed checkpoints.
    let data = pool(&store.database_url).await;
    let ids: Vec<Option<String>> =
        sqlx::query_scalar("SELECT DISTINCT key_id FROM audit_checkpoints")
            .fetch_all(&data)
            .await
            .unwrap();
    assert!(ids.contains(&Some(old.clone())) && ids.contains(&Some(new.clone())));
    let proof = log.proof().await.unwrap().to_json();
    let checked = AuditProof::verify(proof.as_bytes(), Some(&before)).unwrap();
    assert_eq!(checked.key_ids, vec![old, new]);
    // An entry edited behind custos' back is named.
    let first: i64 = sqlx::query_scalar("SELECT MIN(seq) FROM audit_checkpoints")
        .fetch_one(&data)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET outcome = 'edited' WHERE seq = $1")
        .bind(first)
        .execute(&data)
        .await
        .unwrap();
    let r = log.verify(&before).await.unwrap();
    assert_eq!(r.first_bad_seq, Some(first), "{r:?}");
    log.close().await;
    data.close().await;
}

/// A store as the previous version left it: checkpoints and anchor signed
/// with the root-derived key and no key id, no key history, tenant keys
/// wrapped with the root key itself (wrap format 1). Built by converting
/// a fresh store with the legacy derivation and wrapping.
async fn make_legacy(store: &TestStore, key: [u8; 32]) {
    let root = root(key);
    let legacy = root.legacy_audit_signing_key();
    let data = pool(&store.database_url).await;
    let keys = pool(&store.keystore_url).await;
    for r in sqlx::query("SELECT seq, hash FROM audit_checkpoints")
        .fetch_all(&data)
        .await
        .unwrap()
    {
        let seq: i64 = r.get(0);
        let hash: Vec<u8> = r.get(1);
        let cp = Checkpoint::sign(&legacy, seq, hash.try_into().unwrap());
        sqlx::query("UPDATE audit_checkpoints SET signature = $1, key_id = NULL WHERE seq = $2")
            .bind(cp.signature)
            .bind(seq)
            .execute(&data)
            .await
            .unwrap();
    }
    let r = sqlx::query("SELECT seq, hash FROM audit_anchor")
        .fetch_one(&keys)
        .await
        .unwrap();
    let (seq, hash): (i64, Vec<u8>) = (r.get(0), r.get(1));
    let cp = Checkpoint::sign(&legacy, seq, hash.try_into().unwrap());
    sqlx::query("UPDATE audit_anchor SET signature = $1, key_id = NULL")
        .bind(cp.signature)
        .execute(&keys)
        .await
        .unwrap();
    sqlx::query("DELETE FROM audit_signing_keys")
        .execute(&keys)
        .await
        .unwrap();
    for r in sqlx::query("SELECT tenant, version, wrapped FROM tenant_keys")
        .fetch_all(&keys)
        .await
        .unwrap()
    {
        let t = TenantId::parse(&r.get::<String, _>(0)).unwrap();
        let v: i64 = r.get(1);
        let kek = root
            .unwrap_tenant_kek(&t, v, &r.get::<Vec<u8>, _>(2))
            .unwrap();
        sqlx::query("UPDATE tenant_keys SET wrapped = $1 WHERE tenant = $2")
            .bind(root.legacy().wrap_tenant_kek(&t, v, &kek, &mut OsRng))
            .bind(t.as_str())
            .execute(&keys)
            .await
            .unwrap();
    }
    for r in sqlx::query("SELECT tenant, wrapped FROM tenant_index_roots")
        .fetch_all(&keys)
        .await
        .unwrap()
    {
        let t = TenantId::parse(&r.get::<String, _>(0)).unwrap();
        let idx = root.unwrap_index_root(&t, &r.get::<Vec<u8>, _>(1)).unwrap();
        sqlx::query("UPDATE tenant_index_roots SET wrapped = $1 WHERE tenant = $2")
            .bind(root.legacy().wrap_index_root(&t, &idx, &mut OsRng))
            .bind(t.as_str())
            .execute(&keys)
            .await
            .unwrap();
    }
    sqlx::query("UPDATE keystore_meta SET wrap_format = 1")
        .execute(&keys)
        .await
        .unwrap();
    data.close().await;
    keys.close().await;
}

async fn a_store_signed_with_the_root_derived_key_migrates_and_verifies(store: TestStore) {
    let key = store.root_key;
    some_entries(&store, key, 0, 3).await;
    make_legacy(&store, key).await;
    let v = Vault::open(config(&store, key)).await.unwrap();
    // The tenant keys opened (rewrapped to format 2) ...
    let t = TenantId::parse("t1").unwrap();
    assert!(v
        .keystore()
        .tenant_keys(&root(key), &t)
        .await
        .unwrap()
        .is_some());
    // ... and the root-derived key is the history's first key.
    let h = v.public_key_history().await.unwrap();
    h.check().unwrap();
    assert_eq!(h.keys.len(), 2);
    assert_eq!(h.keys[0].origin, KeyOrigin::RootDerived);
    assert_eq!(h.keys[0].key_id, root(key).legacy_audit_signing_key().id());
    assert_eq!(
        h.keys[1].previous.as_deref(),
        Some(h.keys[0].key_id.as_str())
    );
    v.close().await;
    let keys = pool(&store.keystore_url).await;
    let format: i64 = sqlx::query_scalar("SELECT wrap_format FROM keystore_meta")
        .fetch_one(&keys)
        .await
        .unwrap();
    assert_eq!(format, 2);
    keys.close().await;
    // Old and new checkpoints verify, with the root key and without.
    some_entries(&store, key, 3, 2).await;
    let r = verify(&store, key).await;
    assert_eq!(r.first_break, None, "{r:?}");
    let log = AuditLog::open(&store.database_url, Some(&store.keystore_url))
        .await
        .unwrap();
    let r = log.verify(&h).await.unwrap();
    assert_eq!(r.first_break, None, "{r:?}");
    let proof = log.proof().await.unwrap().to_json();
    AuditProof::verify(proof.as_bytes(), Some(&h)).unwrap();
    log.close().await;
}

/// Before, a crash between storing a subject's key and committing its
/// row left the key forever. Now a start destroys keys without a subject
/// (older than the grace period for creations in flight), audited.
async fn a_subject_key_without_its_subject_does_not_survive_a_start(store: TestStore) {
    let key = store.root_key;
    some_entries(&store, key, 0, 1).await;
    let keys = pool(&store.keystore_url).await;
    let now = custos_store::now_us();
    let orphan = SubjectId::generate(&mut OsRng).to_string();
    let young = SubjectId::generate(&mut OsRng).to_string();
    // The server started an hour ago (which checked the keys written
    // until then) and crashed a little longer than the grace period ago,
    // between storing a key and committing its row.
    sqlx::query("UPDATE keystore_meta SET swept_us = $1")
        .bind(now - 3_600_000_000)
        .execute(&keys)
        .await
        .unwrap();
    for (s, at) in [(&orphan, now - ORPHAN_GRACE_US - 1_000_000), (&young, now)] {
        sqlx::query(
            "INSERT INTO subject_keys (subject, tenant, kek_version, wrapped, created_us) \
             VALUES ($1, 't0', 1, $2, $3)",
        )
        .bind(s)
        .bind(vec![1u8; 60])
        .bind(at)
        .execute(&keys)
        .await
        .unwrap();
    }
    let v = Vault::open(config(&store, key)).await.unwrap();
    assert_eq!(v.recovered().orphan_keys, 1);
    v.close().await;
    let left: Vec<String> = sqlx::query_scalar("SELECT subject FROM subject_keys")
        .fetch_all(&keys)
        .await
        .unwrap();
    assert!(!left.contains(&orphan), "the orphan key survived");
    // A key younger than the grace period may be a creation in flight.
    assert!(left.contains(&young));
    keys.close().await;
    let data = pool(&store.database_url).await;
    let outcome: String = sqlx::query_scalar(
        "SELECT outcome FROM audit_log WHERE action = 'subject_keys.orphans_destroyed'",
    )
    .fetch_one(&data)
    .await
    .unwrap();
    assert!(outcome.starts_with("1 "), "{outcome}");
    data.close().await;
    let r = verify(&store, key).await;
    assert_eq!(r.first_break, None, "{r:?}");
}
