//! The HTTP rounds: record writes and reveals (figures 1 and 2, with a
//! probe at four times the clients) and erasure of a subject with 10,000
//! records against one with a single record (figure 5).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context};
use hyper::Method;
use serde_json::{json, Value};
use sqlx::Row;

use custos_core::ids::{Collection, RecordKey, SubjectId};

use super::{closure, record_fields, rounds_list, summarize, Bench, CLIENTS, PURPOSE};
use crate::util;

impl Bench {
    // ----- 1 and 2: record writes and reveals over HTTP ---------------------

    pub(super) async fn writes_and_reveals(&mut self) -> anyhow::Result<()> {
        eprintln!("[1/6] record writes over HTTP, {CLIENTS} clients");
        let subjects = Arc::new(self.http_subjects(CLIENTS, "writer").await?);
        let mut rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (http, keys, subjects) = (self.http.clone(), self.keys.clone(), subjects.clone());
            let op = closure(move |c, i| {
                let (http, keys, subjects) = (http.clone(), keys.clone(), subjects.clone());
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let path = format!("/v1/subjects/{s}/records/profile/w{r}-{i}");
                    let body = json!({"fields": record_fields(i)});
                    http.load
                        .send_ok(c, Method::PUT, &path, &keys.write, Some(&body))
                        .await
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!("  round {}: {}", r + 1, util::per_sec(round.rate()));
            rounds.push(round);
        }
        let (med, rates, p50, p99, errors, first) = summarize(&rounds);
        self.metric(
            "1. record writes/s (HTTP PUT, 32 clients, durable group commit)",
            format!(
                "**{}** (rounds {}; latency p50 {}, p99 {})",
                util::per_sec(med),
                rounds_list(&rates),
                util::ms(p50),
                util::ms(p99)
            ),
            "≥ 5,000/s",
            med >= 5_000.0 && errors == 0,
        );
        self.error_note("record writes", errors, first);

        // Records of round 1 are what the reveals read.
        let written: Arc<Vec<u64>> = Arc::new(
            rounds
                .first()
                .map(|r| r.per_client_ok.iter().map(|n| (*n).max(1)).collect())
                .unwrap_or_default(),
        );
        eprintln!("[2/6] reveals over HTTP, {CLIENTS} clients");
        let first_subject = subjects.first().ok_or_else(|| anyhow!("no subjects"))?;
        let check = self
            .http
            .send(
                self.http
                    .client
                    .get(self.http.url(&format!(
                        "/v1/subjects/{first_subject}/records/profile/w0-0?purpose={PURPOSE}"
                    )))
                    .bearer_auth(&self.keys.reveal),
            )
            .await
            .context("checking a reveal")?;
        if check.get("masked") != Some(&Value::Bool(false)) {
            bail!("a reveal with the reveal scope came back masked: {check}");
        }
        let mut rounds = Vec::new();
        for r in 0..self.plan.rounds {
            let (http, keys, subjects, written) = (
                self.http.clone(),
                self.keys.clone(),
                subjects.clone(),
                written.clone(),
            );
            let op = closure(move |c, i| {
                let (http, keys, subjects, written) = (
                    http.clone(),
                    keys.clone(),
                    subjects.clone(),
                    written.clone(),
                );
                async move {
                    let s = subjects.get(c).ok_or_else(|| anyhow!("no subject"))?;
                    let n = written.get(c).copied().unwrap_or(1);
                    let path = format!(
                        "/v1/subjects/{s}/records/profile/w0-{}?purpose={PURPOSE}",
                        i % n
                    );
                    http.load
                        .send_ok(c, Method::GET, &path, &keys.reveal, None)
                        .await
                }
            });
            let round = util::run_for(CLIENTS, self.plan.round, op).await?;
            eprintln!("  round {}: {}", r + 1, util::per_sec(round.rate()));
            rounds.push(round);
        }
        let (med, rates, p50, p99, errors, first) = summarize(&rounds);
        self.metric(
            "2. reveals/s (HTTP GET ?purpose=, 32 clients, audited)",
            format!(
                "**{}** (rounds {}; latency p50 {}, p99 {})",
                util::per_sec(med),
                rounds_list(&rates),
                util::ms(p50),
                util::ms(p99)
            ),
            "≥ 20,000/s",
            med >= 20_000.0 && errors == 0,
        );
        self.error_note("reveals", errors, first);

        // Diagnostic: the same loads with 4× the clients. If throughput grows
        // with clients while CPUs are not saturated, the bound is latency
        // (one durable group commit per round trip), not CPU.
        const MORE: usize = 4 * CLIENTS;
        let (http, keys, subjects2) = (self.http.clone(), self.keys.clone(), subjects.clone());
        let op = closure(move |c, i| {
            let (http, keys, subjects) = (http.clone(), keys.clone(), subjects2.clone());
            async move {
                let s = subjects
                    .get(c % CLIENTS)
                    .ok_or_else(|| anyhow!("no subject"))?;
                let path = format!("/v1/subjects/{s}/records/profile/x{c}-{i}");
                let body = json!({"fields": record_fields(i)});
                http.load
                    .send_ok(c, Method::PUT, &path, &keys.write, Some(&body))
                    .await
            }
        });
        let w = util::run_for(MORE, self.plan.round, op).await?;
        let (http, keys, subjects2) = (self.http.clone(), self.keys.clone(), subjects.clone());
        let op = closure(move |c, i| {
            let (http, keys, subjects, written) = (
                http.clone(),
                keys.clone(),
                subjects2.clone(),
                written.clone(),
            );
            async move {
                let s = subjects
                    .get(c % CLIENTS)
                    .ok_or_else(|| anyhow!("no subject"))?;
                let n = written.get(c % CLIENTS).copied().unwrap_or(1);
                let path = format!(
                    "/v1/subjects/{s}/records/profile/w0-{}?purpose={PURPOSE}",
                    i % n
                );
                http.load
                    .send_ok(c, Method::GET, &path, &keys.reveal, None)
                    .await
            }
        });
        let r = util::run_for(MORE, self.plan.round, op).await?;
        eprintln!(
            "  with {MORE} clients: writes {}, reveals {}",
            util::per_sec(w.rate()),
            util::per_sec(r.rate())
        );
        self.notes.push(format!(
            "concurrency probe (1 round each, {MORE} instead of {CLIENTS} clients): record writes {} (p50 {}), reveals {} (p50 {}), errors {}. Throughput that grows with clients means each request's latency, i.e. waiting for a durable group commit, is the bound (Little's law: rate = clients ÷ latency).",
            util::per_sec(w.rate()),
            util::ms(util::percentile(&w.lat_us, 50.0)),
            util::per_sec(r.rate()),
            util::ms(util::percentile(&r.lat_us, 50.0)),
            w.errors + r.errors,
        ));
        Ok(())
    }

    // ----- 5: erasure, 10,000 records vs 1 ---------------------------------

    pub(super) async fn erasure(&mut self) -> anyhow::Result<()> {
        let k = self.plan.erasures;
        let big_n = self.plan.big_records;
        eprintln!("[3/6] erasure: {k} subjects with {big_n} records vs {k} with 1");
        let big = Arc::new(self.http_subjects(k, "erase-big").await?);
        let small = self.http_subjects(k, "erase-small").await?;
        // Filled through the Vault API directly (faster than HTTP, same rows).
        let (vault, p) = (self.vault.clone(), Arc::new(self.principal.clone()));
        let coll = Collection::parse("orders")?;
        let fill_start = Instant::now();
        let op = {
            let (big, vault, p, coll) = (big.clone(), vault.clone(), p.clone(), coll.clone());
            closure(move |_, n| {
                let (big, vault, p, coll) = (big.clone(), vault.clone(), p.clone(), coll.clone());
                async move {
                    let s = big
                        .get((n / big_n) as usize)
                        .ok_or_else(|| anyhow!("no subject"))?;
                    let id = SubjectId::parse(s)?;
                    let key = RecordKey::parse(&format!("o{}", n % big_n))?;
                    vault
                        .subjects()
                        .put_record(&p, &id, &coll, &key, &record_fields(n))
                        .await?;
                    Ok(())
                }
            })
        };
        let fill = util::run_count(CLIENTS, big_n * k as u64, op).await?;
        if fill.errors > 0 {
            bail!(
                "filling big subjects failed: {}",
                fill.first_error.unwrap_or_default()
            );
        }
        for s in &small {
            let id = SubjectId::parse(s)?;
            vault
                .subjects()
                .put_record(&p, &id, &coll, &RecordKey::parse("o0")?, &record_fields(0))
                .await?;
        }
        eprintln!(
            "  filled {} records in {:.1} s",
            util::thousands(fill.ok),
            fill_start.elapsed().as_secs_f64()
        );
        let count = |s: String| {
            let pool = self.vault.read_pool().clone();
            async move {
                let row = sqlx::query("SELECT COUNT(*) FROM records WHERE subject = $1")
                    .bind(s)
                    .fetch_one(&pool)
                    .await?;
                Ok::<i64, anyhow::Error>(row.try_get(0)?)
            }
        };
        for s in big.iter() {
            let n = count(s.clone()).await?;
            if n != big_n as i64 {
                bail!("subject {s} has {n} records, expected {big_n}");
            }
        }
        let mut big_us = Vec::new();
        let mut small_us = Vec::new();
        for (b, s) in big.iter().zip(&small) {
            for (id, out) in [(b, &mut big_us), (s, &mut small_us)] {
                let t = Instant::now();
                let v = self
                    .http
                    .send(
                        self.http
                            .client
                            .delete(self.http.url(&format!("/v1/subjects/{id}")))
                            .bearer_auth(&self.keys.erase)
                            .json(&json!({"reason": "subject_request"})),
                    )
                    .await
                    .context("erasing a subject")?;
                out.push(t.elapsed().as_micros() as f64);
                if v.get("erased_at").is_none() {
                    bail!("unexpected erasure answer {v}");
                }
            }
        }
        // The ciphertext stays (crypto-shredding); the key is gone.
        let left = match big.first() {
            Some(s) => count(s.clone()).await?,
            None => 0,
        };
        let (mb, ms) = (util::median(&big_us), util::median(&small_us));
        let ratio = if ms > 0.0 { mb / ms } else { f64::INFINITY };
        self.metric(
            "5. erasure time, 10,000 records ÷ 1 record (HTTP DELETE)",
            format!(
                "**{ratio:.2}×** (median {} vs {}, {k} subjects each)",
                util::ms_f(mb),
                util::ms_f(ms)
            ),
            "≤ 2×",
            ratio <= 2.0,
        );
        self.notes.push(format!(
            "erasure: a big subject still has {left} record rows after erasure — they are ciphertext under a deleted key (crypto-shredding), so erasure cost does not grow with records; all erasure times: big {:?} ms, small {:?} ms",
            big_us.iter().map(|x| (x / 10.0).round() / 100.0).collect::<Vec<_>>(),
            small_us.iter().map(|x| (x / 10.0).round() / 100.0).collect::<Vec<_>>(),
        ));
        Ok(())
    }
}
