//! `custos dsr …`: data-subject requests from the command line, through a
//! running server's API (the server's executor does the work, so the CLI
//! needs only its URL and an API key with the `dsr` scope): create, plan
//! (dry run), status (optionally waiting, with a progress bar over the
//! steps), list, complete a manual step, retry or skip a failed one, and
//! export an access archive
//! (downloaded with a progress bar).
//!
//! Problems from the server are printed as `code: message` and exit 2
//! (like every command's errors); `status` exits 1 for a failed request.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::serve::runtime;

/// `custos dsr …`
#[derive(Debug, clap::Args)]
pub(crate) struct DsrArgs {
    #[command(flatten)]
    api: Api,
    #[command(subcommand)]
    command: DsrCommand,
}

/// Where the server is and how to authenticate.
#[derive(Debug, Clone, clap::Args)]
struct Api {
    /// Base URL of a running custos server.
    #[arg(
        long,
        env = "CUSTOS_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    url: String,
    /// API key with the `dsr` scope.
    #[arg(long, env = "CUSTOS_API_KEY", hide_env_values = true, global = true)]
    key: Option<String>,
}

#[derive(Debug, clap::Subcommand)]
enum DsrCommand {
    /// Record a request; prints its id, status and due date.
    Create {
        /// access, portability, erasure, rectification, restriction or objection.
        #[arg(long = "type")]
        kind: String,
        /// The person's email address.
        #[arg(long, conflicts_with = "phone")]
        email: Option<String>,
        /// The person's phone number (E.164).
        #[arg(long)]
        phone: Option<String>,
        /// The application authenticated the person: no one-time code.
        #[arg(long)]
        vouched: bool,
        /// Rectification: `field=new value` (repeatable).
        #[arg(long = "change", value_name = "FIELD=VALUE")]
        changes: Vec<String>,
    },
    /// Dry run: the steps and what each system holds of the person.
    Plan {
        /// Request id (`req_…`).
        id: String,
    },
    /// Status and steps of a request.
    Status {
        /// Request id (`req_…`).
        id: String,
        /// Wait until the request completes, fails or waits for a person
        /// or processor, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Requests of the tenant, earliest due first.
    List {
        /// Only this status.
        #[arg(long)]
        status: Option<String>,
        /// Only open requests past their due date.
        #[arg(long)]
        overdue: bool,
    },
    /// Tick off a manual step.
    Complete {
        /// Request id (`req_…`).
        id: String,
        /// Step number.
        step: u32,
        /// What was done (no personal data, please).
        #[arg(long)]
        note: Option<String>,
    },
    /// Run a failed step again from its first attempt (its cause was
    /// fixed); a failed request runs again.
    Retry {
        /// Request id (`req_…`).
        id: String,
        /// Step number.
        step: u32,
        /// Why (kept sealed with the request, audited as an action).
        #[arg(long)]
        reason: String,
    },
    /// Skip a failed step (done another way, or impossible); the
    /// completion record says it was skipped.
    Skip {
        /// Request id (`req_…`).
        id: String,
        /// Step number.
        step: u32,
        /// Why (kept sealed with the request, audited as an action).
        #[arg(long)]
        reason: String,
    },
    /// Download the access archive (ZIP) of a request.
    Export {
        /// Request id (`req_…`).
        id: String,
        /// Where to write the ZIP (default: `<id>.zip`).
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
}

struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req
            .send()
            .await
            .with_context(|| format!("no answer from {}", self.base))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            bail!(
                "{}: {}",
                body.get("code")
                    .and_then(Value::as_str)
                    .unwrap_or(status.as_str()),
                body.get("detail")
                    .or_else(|| body.get("message"))
                    .and_then(Value::as_str)
                    .unwrap_or("request failed")
            );
        }
        Ok(body)
    }
}

fn text(v: &Value, k: &str) -> String {
    match v.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "-".to_owned(),
        Some(other) => other.to_string(),
    }
}

fn print_steps(r: &Value) {
    let empty = Vec::new();
    for s in r.get("steps").and_then(Value::as_array).unwrap_or(&empty) {
        let counts = s
            .get("result")
            .and_then(|x| x.get("datasets"))
            .and_then(Value::as_array)
            .map(|ds| {
                ds.iter()
                    .map(|d| {
                        format!(
                            "{} found={} deleted={} anonymized={} retained={}",
                            text(d, "dataset"),
                            text(d, "found"),
                            text(d, "deleted"),
                            text(d, "anonymized"),
                            text(d, "retained")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        println!(
            "  {:>2}. {:<18} {:<60} {}{}",
            text(s, "step"),
            text(s, "status"),
            text(s, "title"),
            counts,
            s.get("error")
                .and_then(Value::as_str)
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default()
        );
    }
}

fn print_plan(r: &Value) {
    let empty = Vec::new();
    let steps = r.get("steps").and_then(Value::as_array).unwrap_or(&empty);
    for (i, s) in steps.iter().enumerate() {
        println!(
            "  {:>2}. {:<16} {}",
            i + 1,
            text(s, "kind"),
            text(s, "title")
        );
        for d in s
            .get("datasets")
            .and_then(Value::as_array)
            .unwrap_or(&empty)
        {
            println!(
                "        {:<20} found={} delete={} anonymize={} retain={}{}",
                text(d, "dataset"),
                text(d, "found"),
                text(d, "deleted"),
                text(d, "anonymized"),
                text(d, "retained"),
                d.get("retained_ground")
                    .and_then(Value::as_str)
                    .map(|g| format!(" ({g})"))
                    .unwrap_or_default()
            );
        }
        if let Some(e) = s.get("error").and_then(Value::as_str) {
            println!("        error: {e}");
        }
    }
}

fn done_steps(r: &Value) -> (u64, u64) {
    let steps = r.get("steps").and_then(Value::as_array);
    let total = steps.map_or(0, |s| s.len() as u64);
    let done = steps.map_or(0, |s| {
        s.iter()
            .filter(|x| x.get("status").and_then(Value::as_str) == Some("done"))
            .count() as u64
    });
    (done, total)
}

pub(crate) fn run(args: DsrArgs) -> anyhow::Result<ExitCode> {
    let key = args
        .api
        .key
        .clone()
        .context("give an API key with the dsr scope: --key or CUSTOS_API_KEY")?;
    let client = Client {
        base: args.api.url.trim_end_matches('/').to_owned(),
        key,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .context("HTTP client")?,
    };
    runtime()?.block_on(async move {
        use reqwest::Method;
        match args.command {
            DsrCommand::Create {
                kind,
                email,
                phone,
                vouched,
                changes,
            } => {
                let identity = match (email, phone) {
                    (Some(e), None) => json!({ "email": e }),
                    (None, Some(p)) => json!({ "phone": p }),
                    _ => bail!("give --email or --phone"),
                };
                let mut body =
                    json!({ "type": kind, "identity": identity, "verified_by_app": vouched });
                if !changes.is_empty() {
                    let mut m = BTreeMap::new();
                    for (i, c) in changes.iter().enumerate() {
                        let Some((f, v)) = c.split_once('=') else {
                            bail!("--change #{}: expected FIELD=VALUE", i + 1);
                        };
                        m.insert(f.trim().to_owned(), v.to_owned());
                    }
                    if let Some(o) = body.as_object_mut() {
                        o.insert("changes".into(), json!(m));
                    }
                }
                let r = client
                    .call(Method::POST, "/v1/requests", Some(body))
                    .await?;
                println!(
                    "{}  {}  due {}  verification: {}{}",
                    text(&r, "id"),
                    text(&r, "status"),
                    text(&r, "due_at"),
                    text(&r, "verification"),
                    if r.get("merged") == Some(&Value::Bool(true)) {
                        "  (merged with an open request)"
                    } else {
                        ""
                    }
                );
            }
            DsrCommand::Plan { id } => {
                let r = client
                    .call(Method::POST, &format!("/v1/requests/{id}/plan"), None)
                    .await?;
                println!("plan of {} ({}):", text(&r, "request"), text(&r, "type"));
                print_plan(&r);
            }
            DsrCommand::Status { id, wait } => {
                let path = format!("/v1/requests/{id}");
                let mut r = client.call(Method::GET, &path, None).await?;
                if wait {
                    let bar = indicatif::ProgressBar::new(0);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "{spinner} {msg} [{bar:30}] {pos}/{len} steps",
                        )
                        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                    );
                    loop {
                        let (done, total) = done_steps(&r);
                        bar.set_length(total);
                        bar.set_position(done);
                        let status = text(&r, "status");
                        bar.set_message(status.clone());
                        if [
                            "completed",
                            "failed",
                            "rejected",
                            "waiting_manual",
                            "waiting_processor",
                        ]
                        .contains(&status.as_str())
                        {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(250)).await;
                        r = client.call(Method::GET, &path, None).await?;
                    }
                    bar.finish_and_clear();
                }
                println!(
                    "{}  {}  {}  received {}  due {}{}",
                    text(&r, "id"),
                    text(&r, "type"),
                    text(&r, "status"),
                    text(&r, "received_at"),
                    text(&r, "due_at"),
                    if r.get("overdue") == Some(&Value::Bool(true)) {
                        "  OVERDUE"
                    } else {
                        ""
                    }
                );
                print_steps(&r);
                if text(&r, "status") == "failed" {
                    return Ok(ExitCode::FAILURE);
                }
            }
            DsrCommand::List { status, overdue } => {
                let mut q = Vec::new();
                if let Some(s) = status {
                    q.push(format!("status={s}"));
                }
                if overdue {
                    q.push("overdue=true".to_owned());
                }
                let path = format!("/v1/requests?{}", q.join("&"));
                let r = client.call(Method::GET, &path, None).await?;
                let empty = Vec::new();
                let list = r
                    .get("requests")
                    .and_then(Value::as_array)
                    .unwrap_or(&empty);
                for x in list {
                    println!(
                        "{}  {:<13} {:<17} due {}{}",
                        text(x, "id"),
                        text(x, "type"),
                        text(x, "status"),
                        text(x, "due_at"),
                        if x.get("overdue") == Some(&Value::Bool(true)) {
                            "  OVERDUE"
                        } else {
                            ""
                        }
                    );
                }
                eprintln!("{} request(s)", list.len());
            }
            DsrCommand::Complete { id, step, note } => {
                let r = client
                    .call(
                        Method::POST,
                        &format!("/v1/requests/{id}/steps/{step}/complete"),
                        Some(json!({ "note": note })),
                    )
                    .await?;
                println!("step {} {}", text(&r, "step"), text(&r, "status"));
            }
            DsrCommand::Retry { id, step, reason } => {
                decide(&client, "retry", &id, step, &reason).await?;
            }
            DsrCommand::Skip { id, step, reason } => {
                decide(&client, "skip", &id, step, &reason).await?;
            }
            DsrCommand::Export { id, out } => {
                let link = client
                    .call(Method::GET, &format!("/v1/requests/{id}/archive"), None)
                    .await?;
                let url = format!("{}{}", client.base, text(&link, "url"));
                let mut res = client
                    .http
                    .get(&url)
                    .send()
                    .await
                    .context("downloading the archive")?;
                if !res.status().is_success() {
                    bail!("archive download answered {}", res.status());
                }
                let out = out.unwrap_or_else(|| PathBuf::from(format!("{id}.zip")));
                let bar = indicatif::ProgressBar::new(res.content_length().unwrap_or(0));
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{bytes}/{total_bytes} [{bar:30}] {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                let mut file = std::fs::File::create(&out)
                    .with_context(|| format!("{}: cannot create", out.display()))?;
                while let Some(chunk) = res.chunk().await.context("downloading the archive")? {
                    file.write_all(&chunk)
                        .with_context(|| format!("{}: cannot write", out.display()))?;
                    bar.inc(chunk.len() as u64);
                }
                bar.finish_and_clear();
                println!("{} written ({} bytes)", out.display(), bar.position());
            }
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Retries or skips (`action`) a failed step with a reason.
async fn decide(
    client: &Client,
    action: &str,
    id: &str,
    step: u32,
    reason: &str,
) -> anyhow::Result<()> {
    let r = client
        .call(
            reqwest::Method::POST,
            &format!("/v1/requests/{id}/steps/{step}/{action}"),
            Some(json!({ "reason": reason })),
        )
        .await?;
    println!("step {} {}", text(&r, "step"), text(&r, "status"));
    Ok(())
}
