//! The Redis connector against a real `redis-server` (the testkit starts a
//! throw-away one; skipped with a notice when none is installed, unless
//! `CUSTOS_REQUIRE_REDIS=1`).

use custos_connectors::redis_cache::RedisConnector;
use custos_connectors::{Connector, ConnectorError};
use custos_map::System;
use redis::AsyncCommands;
use serde_json::json;

use super::{outcome, person};

fn cache() -> System {
    serde_json::from_value(json!({
        "id": "sessions",
        "kind": "redis",
        "connection": { "url_env": "REDIS_URL" },
        "datasets": [
            {
                "id": "sessions",
                "key": "session:{user_id}",
                "subject": { "identity": "user_id" },
                "purposes": ["security"],
                "erasure": "delete",
                "fields": [
                    { "name": "user_id", "category": "user.unique_id", "identity": "user_id" },
                    { "name": "ip", "category": "user.device.ip_address" }
                ]
            },
            {
                "id": "carts",
                "key": "cart:{user_id}:*",
                "purposes": ["account"],
                "fields": [{ "name": "items", "category": "user.financial" }]
            },
            {
                "id": "consents",
                "key": "consent:{subject}",
                "purposes": ["account"],
                "erasure": { "retain": { "ground": "Art. 7(1): proof of consent", "period": "3y", "from_event": "withdrawal" } },
                "fields": [{ "name": "log", "category": "user.privacy_preferences" }]
            },
            {
                "id": "counters",
                "key": "stats:*",
                "fields": [{ "name": "n", "category": "system.operations" }]
            }
        ]
    }))
    .unwrap()
}

struct Fixture {
    url: String,
    con: redis::aio::MultiplexedConnection,
    connector: RedisConnector,
}

async fn fixture() -> Option<Fixture> {
    let server = custos_testkit::redis::server()?;
    let url = server.fresh_url();
    let client = redis::Client::open(url.as_str()).unwrap();
    let con = client.get_multiplexed_async_connection().await.unwrap();
    let u = url.clone();
    let connector =
        RedisConnector::connect(&cache(), &move |k| (k == "REDIS_URL").then(|| u.clone())).unwrap();
    Some(Fixture {
        url,
        con,
        connector,
    })
}

/// Users 42, 420 and 7 with sessions and carts of every type; a user whose
/// id is literally `*`.
async fn seed(con: &mut redis::aio::MultiplexedConnection) {
    for u in ["42", "420", "7", "*"] {
        let _: () = con
            .set(format!("session:{u}"), format!("token-of-{u}"))
            .await
            .unwrap();
        let _: () = con
            .rpush(format!("cart:{u}:items"), &["apple", "pear"])
            .await
            .unwrap();
    }
    let _: () = con
        .hset_multiple("cart:42:meta", &[("currency", "EUR"), ("ip", "10.0.0.42")])
        .await
        .unwrap();
    let _: () = con.sadd("cart:42:tags", &["b", "a"]).await.unwrap();
    let _: () = con
        .zadd_multiple("cart:42:scores", &[(2.5, "x"), (1.0, "y")])
        .await
        .unwrap();
    let _: () = con.set("consent:subj-42", "granted").await.unwrap();
    let _: () = con.set("stats:visits", 1000).await.unwrap();
    let _: () = con.set("session:42x", "not 42's").await.unwrap();
}

async fn all_keys(con: &mut redis::aio::MultiplexedConnection) -> Vec<String> {
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(con).await.unwrap();
    keys.sort();
    keys
}

#[tokio::test]
async fn access_reads_each_key_by_its_type() {
    let Some(mut f) = fixture().await else { return };
    seed(&mut f.con).await;
    let exports = f
        .connector
        .access(&person(&["42"], &["subj-42"]))
        .await
        .unwrap();
    let ids: Vec<&str> = exports.iter().map(|e| e.dataset.as_str()).collect();
    assert_eq!(ids, ["sessions", "carts", "consents"]);

    let sessions = &exports[0].records;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["key"], "session:42");
    assert_eq!(sessions[0]["type"], "string");
    assert_eq!(sessions[0]["value"], "token-of-42");

    let carts: std::collections::BTreeMap<String, &serde_json::Map<_, _>> = exports[1]
        .records
        .iter()
        .map(|r| (r["key"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(
        carts.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "cart:42:items",
            "cart:42:meta",
            "cart:42:scores",
            "cart:42:tags"
        ]
    );
    assert_eq!(carts["cart:42:items"]["type"], "list");
    assert_eq!(carts["cart:42:items"]["value"], json!(["apple", "pear"]));
    assert_eq!(carts["cart:42:meta"]["type"], "hash");
    assert_eq!(
        carts["cart:42:meta"]["value"],
        json!({"currency": "EUR", "ip": "10.0.0.42"})
    );
    assert_eq!(carts["cart:42:tags"]["type"], "set");
    assert_eq!(carts["cart:42:tags"]["value"], json!(["a", "b"]));
    assert_eq!(carts["cart:42:scores"]["type"], "zset");
    assert_eq!(
        carts["cart:42:scores"]["value"],
        json!([{"member": "y", "score": 1.0}, {"member": "x", "score": 2.5}])
    );
    assert_eq!(exports[2].records[0]["value"], "granted");
    assert!(!format!("{exports:?}").contains("token-of"));
}

#[tokio::test]
async fn erase_removes_only_the_persons_keys_and_is_idempotent() {
    let Some(mut f) = fixture().await else { return };
    seed(&mut f.con).await;
    let p = person(&["42"], &["subj-42"]);

    let plan = f.connector.plan_erasure(&p).await.unwrap();
    assert_eq!(outcome(&plan, "sessions").deleted, 1);
    assert_eq!(outcome(&plan, "carts").deleted, 4);
    let c = outcome(&plan, "consents");
    assert_eq!((c.found, c.deleted, c.retained), (1, 0, 1));
    assert_eq!(
        c.retained_ground.as_deref(),
        Some("Art. 7(1): proof of consent")
    );
    assert_eq!(
        all_keys(&mut f.con).await.len(),
        14,
        "a dry run deletes nothing"
    );

    let done = f.connector.erase(&p).await.unwrap();
    assert_eq!(outcome(&done, "sessions").deleted, 1);
    assert_eq!(outcome(&done, "carts").deleted, 4);
    assert_eq!(outcome(&done, "consents").retained, 1);
    assert_eq!(
        all_keys(&mut f.con).await,
        [
            "cart:*:items",
            "cart:420:items",
            "cart:7:items",
            "consent:subj-42",
            "session:*",
            "session:420",
            "session:42x",
            "session:7",
            "stats:visits",
        ]
    );

    let again = f.connector.erase(&p).await.unwrap();
    assert_eq!(outcome(&again, "sessions").deleted, 0);
    assert_eq!(outcome(&again, "carts").deleted, 0);
    assert_eq!(outcome(&again, "carts").found, 0);
}

#[tokio::test]
async fn glob_characters_in_values_match_only_themselves() {
    let Some(mut f) = fixture().await else { return };
    seed(&mut f.con).await;
    let evil = person(
        &["[a-z]*", "4?", "4*", "\\", "?", "[", "42]"],
        &["*", "subj-*"],
    );
    let before = all_keys(&mut f.con).await;
    assert!(f
        .connector
        .access(&evil)
        .await
        .unwrap()
        .iter()
        .all(|e| e.records.is_empty()));
    let done = f.connector.erase(&evil).await.unwrap();
    assert!(
        done.iter().all(|o| o.found == 0 && o.deleted == 0),
        "{done:?}"
    );
    assert_eq!(all_keys(&mut f.con).await, before);

    // The user whose id is literally `*` has exactly their own keys.
    let star = person(&["*"], &[]);
    let done = f.connector.erase(&star).await.unwrap();
    assert_eq!(outcome(&done, "sessions").deleted, 1);
    assert_eq!(outcome(&done, "carts").deleted, 1);
    let after = all_keys(&mut f.con).await;
    assert!(!after.contains(&"session:*".to_owned()));
    assert!(!after.contains(&"cart:*:items".to_owned()));
    assert_eq!(after.len(), before.len() - 2);
}

#[tokio::test]
async fn identify_and_rectify_change_nothing() {
    let Some(mut f) = fixture().await else { return };
    seed(&mut f.con).await;
    let p = person(&["42"], &[]);
    assert!(f.connector.identify(&p).await.unwrap().is_empty());
    let r = f.connector.rectify(&p, &[]).await.unwrap();
    assert!(r.iter().all(|o| o.rectified == 0));
    assert_eq!(all_keys(&mut f.con).await.len(), 14);
    // The fixture's URL names its own logical database.
    assert!(f.url.starts_with("redis://"));
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable_and_names_no_value() {
    // A port nobody listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let c = RedisConnector::connect(&cache(), &move |_| Some(url.clone())).unwrap();
    let e = c.erase(&person(&["secret-user-1"], &[])).await.unwrap_err();
    assert!(e.is_transient(), "{e}");
    assert!(!e.to_string().contains("secret-user-1"), "{e}");
}

#[tokio::test]
async fn maps_redis_cannot_honour_are_refused() {
    let env = |_: &str| Some("redis://127.0.0.1:1".to_owned());
    let mut anon = cache();
    anon.datasets[0].erasure =
        Some(serde_json::from_value(json!({ "anonymize": "set_null" })).unwrap());
    assert!(matches!(
        RedisConnector::connect(&anon, &env).unwrap_err(),
        ConnectorError::Mismatch { .. }
    ));
    let mut everyone = cache();
    everyone.datasets[0].location = custos_map::Location::Key("session:*".into());
    assert!(matches!(
        RedisConnector::connect(&everyone, &env).unwrap_err(),
        ConnectorError::Mismatch { .. }
    ));
    let e = RedisConnector::connect(&cache(), &|_| Some("http://user:pw@host".into())).unwrap_err();
    assert!(matches!(e, ConnectorError::Config { .. }), "{e}");
    assert!(!e.to_string().contains("pw"), "{e}");
    assert!(matches!(
        RedisConnector::connect(&cache(), &|_| None).unwrap_err(),
        ConnectorError::Config { .. }
    ));
}

/// A Redis shared by tenants, each under its own prefix (`{tenant}` in the
/// key, the tenant's value from `tenant_values`): acme's request finds and
/// erases only `acme:session:42`, never globex's; a value with a wildcard
/// (which would widen the SCAN) is refused.
#[tokio::test]
async fn a_redis_shared_by_tenants_is_reached_only_under_the_tenants_prefix() {
    let Some(mut f) = fixture().await else {
        return;
    };
    for t in ["acme", "globex"] {
        let _: () = f.con.set(format!("{t}:session:42"), t).await.unwrap();
    }
    let system: System = serde_json::from_value(json!({
        "id": "sessions",
        "kind": "redis",
        "connection": { "url_env": "REDIS_URL" },
        "tenant_values": { "acme": "acme", "globex": "globex" },
        "datasets": [{
            "id": "sessions",
            "key": "{tenant}:session:{user_id}",
            "subject": { "identity": "user_id" },
            "purposes": ["security"],
            "erasure": "delete",
            "fields": [{ "name": "user_id", "category": "user.unique_id", "identity": "user_id" }]
        }]
    }))
    .unwrap();
    let u = f.url.clone();
    let env = move |k: &str| (k == "REDIS_URL").then(|| u.clone());
    let acme = RedisConnector::connect_for_tenant(&system, &env, Some("acme")).unwrap();
    let found = acme.access(&person(&["42"], &[])).await.unwrap();
    assert_eq!(found[0].records.len(), 1, "{found:?}");
    let done = acme.erase(&person(&["42"], &[])).await.unwrap();
    assert_eq!(outcome(&done, "sessions").deleted, 1);
    assert_eq!(all_keys(&mut f.con).await, ["globex:session:42"]);
    for bad in [Some("*"), Some("a?"), Some("[ab]"), None] {
        assert!(
            matches!(
                RedisConnector::connect_for_tenant(&system, &env, bad),
                Err(ConnectorError::Mismatch { .. })
            ),
            "{bad:?}"
        );
    }
}
