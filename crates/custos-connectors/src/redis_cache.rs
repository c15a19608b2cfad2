//! Redis (`kind: redis`): datasets are key patterns such as
//! `session:{user_id}` or `cart:{user_id}:*`.
//!
//! A pattern's placeholders (`{user_id}`, `{subject_id}`, `{email}`,
//! `{phone}`, `{token}`, and the aliases `{subject}`, `{external_id}`) are
//! replaced by each known value of the person, every combination being
//! tried. The pattern's own text comes from the map and keeps its glob
//! meaning; the person's values are escaped (`\` before each of `*?[]\`),
//! so a value `*` or `[a-z]*` matches only a key containing those very
//! characters. A pattern without placeholder would match everybody's keys
//! and is refused at connect.
//!
//! Keys are found with `SCAN … MATCH … COUNT 1000`, never `KEYS` (which
//! blocks the server). Erasure `delete` removes them with `UNLINK` (freed in
//! the background); `retain` keeps them, counted with the map's ground;
//! `anonymize` and `shred` are refused at connect. Erasure is idempotent: a
//! key already gone is not counted.

use std::collections::BTreeSet;
use std::time::Duration;

use custos_map::{DatasetId, Location, System, SystemId, SystemKind};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, RedisError, Value as RValue};
use serde_json::{Map, Number, Value};

use crate::template::{mismatch, tokenize, Piece, Strategy};
use crate::{Connector, ConnectorError, DatasetOutcome, Export, FieldChange, Person, Record};

/// Keys asked per `SCAN` round.
const SCAN_COUNT: u32 = 1000;
/// Keys per `UNLINK`.
const UNLINK_BATCH: usize = 500;
/// Bound on `SCAN` rounds for one pattern, against a misbehaving server.
const MAX_SCAN_ROUNDS: u32 = 1_000_000;

/// The connector of a `kind: redis` system, reached at the URL held by the
/// environment variable of `connection.url_env`. Each operation opens one
/// multiplexed connection (with connect and response timeouts), so a
/// restarted server costs nothing but the failed attempt.
#[derive(Clone)]
pub struct RedisConnector {
    system: SystemId,
    client: redis::Client,
    datasets: Vec<KeyDataset>,
    /// The variable holding the URL, for messages that say what to fix.
    var: String,
}

impl std::fmt::Debug for RedisConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the client: its URL may hold a password.
        f.debug_struct("RedisConnector")
            .field("system", &self.system)
            .field("datasets", &self.datasets.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug)]
struct KeyDataset {
    id: DatasetId,
    template: String,
    parts: Vec<Piece>,
    strategy: Strategy,
}

fn parse_template(
    system: &SystemId,
    ds: &DatasetId,
    template: &str,
) -> Result<Vec<Piece>, ConnectorError> {
    // The map's own `*` and `?` stay in the literal: SCAN matches them.
    let parts = tokenize(system, ds, "key pattern", template, false)?;
    if !parts.iter().any(|p| matches!(p, Piece::Placeholder(_))) {
        return Err(mismatch(
            system,
            format!(
                "dataset {ds}: key pattern {template:?} names no identity placeholder; \
                 it would match everybody's keys"
            ),
        ));
    }
    Ok(parts)
}

/// Escapes a value for a Redis glob pattern: it then matches itself only.
pub fn escape_glob(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn redis_kind(e: &RedisError) -> String {
    // The error kind only: a server message could quote a key.
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connection_refusal() {
        "connection refused".to_owned()
    } else if e.is_io_error() {
        "I/O error".to_owned()
    } else {
        format!("{:?}", e.kind())
    }
}

impl RedisConnector {
    /// Configures the connector of `system` from the environment (`env`
    /// looks up a variable). Does not connect yet: an unreachable server
    /// shows as `Unavailable` from the first operation.
    ///
    /// Fails when `connection.url_env` is missing or unset, or its value is
    /// not a Redis URL (`Config`, never quoting the URL: it may hold a
    /// password), or a dataset cannot be honoured on Redis (`Mismatch`: not
    /// a `key:`, a pattern without placeholder, `anonymize` or `shred`).
    /// Only datasets holding personal data take part.
    pub fn connect(
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnectorError> {
        Self::connect_for_tenant(system, env, None)
    }

    /// [`Self::connect`] for a request whose tenant's value (the system's
    /// `tenant_values`) stands for `{tenant}` in the key patterns: a Redis
    /// shared by tenants, each under its own prefix.
    pub fn connect_for_tenant(
        system: &System,
        env: &dyn Fn(&str) -> Option<String>,
        tenant: Option<&str>,
    ) -> Result<Self, ConnectorError> {
        let sid = &system.id;
        let (url, var) = crate::kind_and_setting(system, SystemKind::Redis, "url_env", env)?;
        let client = redis::Client::open(url.as_str()).map_err(|_| ConnectorError::Config {
            system: sid.clone(),
            message: format!("setting {var} is not a valid Redis URL"),
        })?;
        let mut datasets = Vec::new();
        for ds in &system.datasets {
            if !ds.holds_personal_data() {
                continue;
            }
            let Location::Key(template) = &ds.location else {
                return Err(mismatch(
                    sid,
                    format!(
                        "dataset {}: a redis system needs `key:`, found `{}:`",
                        ds.id,
                        ds.location.key()
                    ),
                ));
            };
            let parts = parse_template(
                sid,
                &ds.id,
                &crate::template::with_tenant(sid, &ds.id, template, tenant)?,
            )?;
            let strategy = Strategy::of(sid, ds, None, "Redis keys")?;
            datasets.push(KeyDataset {
                id: ds.id.clone(),
                template: template.clone(),
                parts,
                strategy,
            });
        }
        Ok(Self {
            system: sid.clone(),
            client,
            datasets,
            var: var.to_owned(),
        })
    }

    fn unavailable(&self, ds: &KeyDataset, what: &str, e: &RedisError) -> ConnectorError {
        self.redis_error(
            &format!("dataset {} (key {}): {what}", ds.id, ds.template),
            e,
        )
    }

    /// A Redis error, transient (`Unavailable`: refused, reset, timed out,
    /// loading, busy) or permanent: authentication and a client setting
    /// (`Config`, naming the variable), a missing permission (`NOPERM`).
    fn redis_error(&self, what: &str, e: &RedisError) -> ConnectorError {
        let system = self.system.clone();
        let var = &self.var;
        match e.kind() {
            redis::ErrorKind::AuthenticationFailed => ConnectorError::Config {
                system,
                message: format!("{what}: authentication failed (check the password in {var})"),
            },
            redis::ErrorKind::InvalidClientConfig => ConnectorError::Config {
                system,
                message: format!("setting {var} is not a valid Redis URL"),
            },
            redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm) => ConnectorError::Refused {
                system,
                message: format!("{what}: permission denied to the user of {var}"),
            },
            _ => ConnectorError::Unavailable {
                system,
                message: format!("{what}: {}", redis_kind(e)),
            },
        }
    }

    async fn conn(&self) -> Result<MultiplexedConnection, ConnectorError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(30)));
        self.client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| self.redis_error("cannot connect", &e))
    }

    /// The SCAN patterns of a dataset for the person: one per combination
    /// of values, values escaped.
    fn patterns(ds: &KeyDataset, person: &Person) -> Vec<String> {
        let mut out = vec![String::new()];
        for part in &ds.parts {
            match part {
                Piece::Lit(s) => out.iter_mut().for_each(|p| p.push_str(s)),
                Piece::Glob(c) => out.iter_mut().for_each(|p| p.push(*c)),
                Piece::Placeholder(k) => {
                    let vals: Vec<String> = person
                        .values(*k)
                        .iter()
                        .map(|v| escape_glob(v.expose()))
                        .collect();
                    out = out
                        .iter()
                        .flat_map(|p| vals.iter().map(move |v| format!("{p}{v}")))
                        .collect();
                }
            }
        }
        out
    }

    /// The person's keys of a dataset.
    async fn keys(
        &self,
        con: &mut MultiplexedConnection,
        ds: &KeyDataset,
        person: &Person,
    ) -> Result<BTreeSet<Vec<u8>>, ConnectorError> {
        let mut keys = BTreeSet::new();
        for pattern in Self::patterns(ds, person) {
            let mut cursor: u64 = 0;
            let mut rounds = 0;
            loop {
                let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(&pattern)
                    .arg("COUNT")
                    .arg(SCAN_COUNT)
                    .query_async(con)
                    .await
                    .map_err(|e| self.unavailable(ds, "SCAN failed", &e))?;
                keys.extend(batch);
                cursor = next;
                rounds += 1;
                if cursor == 0 || rounds >= MAX_SCAN_ROUNDS {
                    break;
                }
            }
        }
        Ok(keys)
    }

    /// Reads one key by its type; `None` when it vanished meanwhile.
    async fn read(
        &self,
        con: &mut MultiplexedConnection,
        ds: &KeyDataset,
        key: &[u8],
    ) -> Result<Option<Record>, ConnectorError> {
        let err = |e: RedisError| self.unavailable(ds, "reading a key failed", &e);
        let kind: String = redis::cmd("TYPE")
            .arg(key)
            .query_async(con)
            .await
            .map_err(err)?;
        let value = match kind.as_str() {
            "none" => return Ok(None),
            "string" => {
                let v: RValue = redis::cmd("GET")
                    .arg(key)
                    .query_async(con)
                    .await
                    .map_err(err)?;
                if v == RValue::Nil {
                    return Ok(None);
                }
                to_json(v)
            }
            "hash" => {
                let v: RValue = redis::cmd("HGETALL")
                    .arg(key)
                    .query_async(con)
                    .await
                    .map_err(err)?;
                pairs_to_object(v)
            }
            "list" => to_json(
                redis::cmd("LRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .query_async(con)
                    .await
                    .map_err(err)?,
            ),
            "set" => {
                let mut v = match to_json(
                    redis::cmd("SMEMBERS")
                        .arg(key)
                        .query_async(con)
                        .await
                        .map_err(err)?,
                ) {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                // Sets have no order; sort for a stable archive.
                v.sort_by_key(Value::to_string);
                Value::Array(v)
            }
            "zset" => zset_to_json(
                redis::cmd("ZRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(-1)
                    .arg("WITHSCORES")
                    .query_async(con)
                    .await
                    .map_err(err)?,
            ),
            "stream" => to_json(
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg("-")
                    .arg("+")
                    .query_async(con)
                    .await
                    .map_err(err)?,
            ),
            // A module type (JSON, bloom filters, …): named, not read.
            _ => Value::Null,
        };
        let mut rec = Record::new();
        rec.insert("key".into(), bytes_to_json(key));
        rec.insert("type".into(), Value::String(kind));
        rec.insert("value".into(), value);
        Ok(Some(rec))
    }
}

/// Text when it is UTF-8, else `{"hex": …}`: an archive keeps every byte.
fn bytes_to_json(b: &[u8]) -> Value {
    match std::str::from_utf8(b) {
        Ok(s) => Value::String(s.to_owned()),
        Err(_) => {
            let mut m = Map::new();
            m.insert("hex".into(), Value::String(hex::encode(b)));
            Value::Object(m)
        }
    }
}

fn key_string(v: &RValue) -> String {
    match v {
        RValue::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        RValue::SimpleString(s) => s.clone(),
        RValue::Int(i) => i.to_string(),
        other => to_json(other.clone()).to_string(),
    }
}

fn to_json(v: RValue) -> Value {
    match v {
        RValue::Nil => Value::Null,
        RValue::Int(i) => Value::from(i),
        RValue::BulkString(b) => bytes_to_json(&b),
        RValue::Array(a) | RValue::Set(a) => Value::Array(a.into_iter().map(to_json).collect()),
        RValue::SimpleString(s) => Value::String(s),
        RValue::Okay => Value::String("OK".into()),
        RValue::Map(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (key_string(&k), to_json(v)))
                .collect(),
        ),
        RValue::Attribute { data, .. } => to_json(*data),
        RValue::Double(d) => Number::from_f64(d).map_or(Value::Null, Value::Number),
        RValue::Boolean(b) => Value::Bool(b),
        RValue::VerbatimString { text, .. } => Value::String(text),
        RValue::BigNumber(b) => bytes_to_json(&b),
        _ => Value::Null,
    }
}

/// `HGETALL`: a flat `[field, value, …]` array (RESP2) or a map (RESP3).
fn pairs_to_object(v: RValue) -> Value {
    match v {
        RValue::Array(a) => {
            let mut m = Map::new();
            let mut it = a.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                m.insert(key_string(&k), to_json(v));
            }
            Value::Object(m)
        }
        other => to_json(other),
    }
}

/// `ZRANGE … WITHSCORES`: `[{member, score}, …]` in score order.
fn zset_to_json(v: RValue) -> Value {
    let score = |s: RValue| -> Value {
        match s {
            RValue::BulkString(b) => std::str::from_utf8(&b)
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .and_then(Number::from_f64)
                .map_or_else(|| bytes_to_json(&b), Value::Number),
            other => to_json(other),
        }
    };
    let entry = |m: RValue, s: RValue| -> Value {
        let mut o = Map::new();
        o.insert("member".into(), to_json(m));
        o.insert("score".into(), score(s));
        Value::Object(o)
    };
    match v {
        RValue::Array(a) => {
            let nested = a.iter().all(|x| matches!(x, RValue::Array(_)));
            if nested && !a.is_empty() {
                // RESP3: [[member, score], …]
                Value::Array(
                    a.into_iter()
                        .filter_map(|x| match x {
                            RValue::Array(p) => {
                                let mut p = p.into_iter();
                                Some(entry(p.next()?, p.next()?))
                            }
                            _ => None,
                        })
                        .collect(),
                )
            } else {
                let mut out = Vec::new();
                let mut it = a.into_iter();
                while let (Some(m), Some(s)) = (it.next(), it.next()) {
                    out.push(entry(m, s));
                }
                Value::Array(out)
            }
        }
        other => to_json(other),
    }
}

impl Connector for RedisConnector {
    /// A cache teaches nothing new about the person.
    async fn identify(&self, _person: &Person) -> Result<Person, ConnectorError> {
        Ok(Person::new())
    }

    async fn plan_erasure(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut con = self.conn().await?;
        let mut out = Vec::new();
        for ds in &self.datasets {
            let n = self.keys(&mut con, ds, person).await?.len() as u64;
            out.push(ds.strategy.planned(ds.id.clone(), n));
        }
        Ok(out)
    }

    async fn access(&self, person: &Person) -> Result<Vec<Export>, ConnectorError> {
        let mut con = self.conn().await?;
        let mut out = Vec::new();
        for ds in &self.datasets {
            let mut records = Vec::new();
            for key in self.keys(&mut con, ds, person).await? {
                if let Some(r) = self.read(&mut con, ds, &key).await? {
                    records.push(r);
                }
            }
            out.push(Export {
                dataset: ds.id.clone(),
                records,
                files: Vec::new(),
            });
        }
        Ok(out)
    }

    async fn erase(&self, person: &Person) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        let mut con = self.conn().await?;
        let mut out = Vec::new();
        for ds in &self.datasets {
            let keys: Vec<Vec<u8>> = self.keys(&mut con, ds, person).await?.into_iter().collect();
            let mut o = DatasetOutcome::new(ds.id.clone());
            o.found = keys.len() as u64;
            match &ds.strategy {
                Strategy::Retain(g) => {
                    o.retained = o.found;
                    if o.found > 0 {
                        o.retained_ground = Some(g.clone());
                    }
                }
                Strategy::Delete => {
                    for chunk in keys.chunks(UNLINK_BATCH) {
                        let n: u64 = redis::cmd("UNLINK")
                            .arg(chunk)
                            .query_async(&mut con)
                            .await
                            .map_err(|e| self.unavailable(ds, "UNLINK failed", &e))?;
                        o.deleted += n;
                    }
                }
            }
            out.push(o);
        }
        Ok(out)
    }

    /// Cached copies are not rectified in place: nothing changes (the
    /// application refills its cache from the rectified source).
    async fn rectify(
        &self,
        _person: &Person,
        _changes: &[FieldChange],
    ) -> Result<Vec<DatasetOutcome>, ConnectorError> {
        Ok(self
            .datasets
            .iter()
            .map(|d| DatasetOutcome::new(d.id.clone()))
            .collect())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use custos_map::IdentityKind;

    #[test]
    fn escapes_every_glob_character() {
        assert_eq!(escape_glob("42"), "42");
        assert_eq!(escape_glob("*"), "\\*");
        assert_eq!(escape_glob("[a-z]*"), "\\[a-z\\]\\*");
        assert_eq!(escape_glob("a?b\\c"), "a\\?b\\\\c");
    }

    #[test]
    fn patterns_combine_values_and_keep_the_map_s_globs() {
        let s = SystemId::from("s");
        let ds = KeyDataset {
            id: DatasetId::from("carts"),
            template: "cart:{user_id}:*".into(),
            parts: parse_template(&s, &DatasetId::from("carts"), "cart:{user_id}:*").unwrap(),
            strategy: Strategy::Delete,
        };
        let mut p = Person::new();
        p.add(IdentityKind::UserId, "7");
        p.add(IdentityKind::UserId, "a*");
        assert_eq!(
            RedisConnector::patterns(&ds, &p),
            vec!["cart:7:*".to_owned(), "cart:a\\*:*".to_owned()]
        );
        assert!(RedisConnector::patterns(&ds, &Person::new()).is_empty());
    }

    #[test]
    fn patterns_must_name_the_person() {
        let s = SystemId::from("s");
        let d = DatasetId::from("d");
        assert!(parse_template(&s, &d, "session:*").is_err());
        assert!(parse_template(&s, &d, "session:{nope}").is_err());
        assert!(parse_template(&s, &d, "session:{subject}").is_ok());
    }

    #[test]
    fn zsets_and_hashes_become_objects() {
        let z = RValue::Array(vec![
            RValue::BulkString(b"a".to_vec()),
            RValue::BulkString(b"1.5".to_vec()),
        ]);
        assert_eq!(
            zset_to_json(z),
            serde_json::json!([{"member": "a", "score": 1.5}])
        );
        let h = RValue::Array(vec![
            RValue::BulkString(b"ip".to_vec()),
            RValue::BulkString(b"10.0.0.1".to_vec()),
        ]);
        assert_eq!(pairs_to_object(h), serde_json::json!({"ip": "10.0.0.1"}));
        assert_eq!(
            bytes_to_json(&[0xff, 0x00]),
            serde_json::json!({"hex": "ff00"})
        );
    }
}
