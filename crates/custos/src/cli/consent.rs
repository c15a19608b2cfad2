//! `custos consent …`: the consent ledger from the command line, on the
//! store directly (like `custos audit` and `custos keys`): check, grant,
//! withdraw, history, bulk import of existing records, and a consistency
//! check / rebuild of the materialised state.
//!
//! Purposes come from the data map given with `--map` (or `CUSTOS_MAP`);
//! without one the built-in demo map is used, with a warning, so that the
//! commands work against `custos demo`'s store. The operator acts as the
//! system administrator: audit entries name `admin`.
//!
//! Import file: CSV with a header row naming the columns, in any order:
//! `subject` (a `sub_…` id) or `external_id`, `purpose`, `action` (grant,
//! withdraw, object), `at` (RFC 3339 or a date; the original time),
//! and optionally `version`, `channel` (default `import`), `ip`,
//! `user_agent`, `form_id`, `affirmative`, `gpc` (true/false, 1/0, yes/no).
//! Every rejected line is reported as `FILE:LINE:FIELD: why`; the others
//! are imported in batches with their original timestamps.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use custos_core::consent::{Action, Channel, PurposeRule};
use custos_core::ids::{Audience, Purpose, SubjectId, TenantId};
use custos_store::import_csv::{Bad, Col, ImportReader};
use custos_store::{Actor, CheckTarget, ConsentInput, ImportEvent, ImportSubject, Vault};

use super::serve::runtime;
use super::store_args::StoreArgs;

/// Lines per `import_consent` call.
const IMPORT_BATCH: usize = custos_store::IMPORT_CALL_EVENTS;

/// `custos consent …`
#[derive(Debug, clap::Args)]
pub(crate) struct ConsentArgs {
    #[command(subcommand)]
    command: ConsentCommand,
}

/// Flags shared by every consent command.
#[derive(Debug, Clone, clap::Args)]
struct Common {
    #[command(flatten)]
    store: StoreArgs,
    /// Tenant id.
    #[arg(long)]
    tenant: String,
    /// Data map whose purposes govern the ledger (default: the built-in demo map).
    #[arg(long, env = "CUSTOS_MAP")]
    map: Option<PathBuf>,
}

#[derive(Debug, clap::Subcommand)]
enum ConsentCommand {
    /// May this purpose be carried out for a subject now? Exit 0 if allowed, 1 if not.
    Check {
        #[command(flatten)]
        common: Common,
        /// Subject id (`sub_…`).
        #[arg(long, conflicts_with = "token", required_unless_present = "token")]
        subject: Option<String>,
        /// A token issued for an audience.
        #[arg(long)]
        token: Option<String>,
        /// Purpose id.
        #[arg(long)]
        purpose: String,
    },
    /// Record a grant on the subject's behalf (they must have acted: pass --affirmative).
    Grant {
        #[command(flatten)]
        common: Common,
        /// Subject id.
        #[arg(long)]
        subject: String,
        /// Purpose id.
        #[arg(long)]
        purpose: String,
        /// Policy version whose text was shown.
        #[arg(long)]
        version: i64,
        /// Confirms the subject gave consent by an affirmative act.
        #[arg(long)]
        affirmative: bool,
        /// Channel (`phone`, `letter`, …).
        #[arg(long, default_value = "cli")]
        channel: String,
    },
    /// Record a withdrawal (consent purposes) or an objection (legitimate interest).
    Withdraw {
        #[command(flatten)]
        common: Common,
        /// Subject id.
        #[arg(long)]
        subject: String,
        /// Purpose id.
        #[arg(long)]
        purpose: String,
        /// Channel.
        #[arg(long, default_value = "cli")]
        channel: String,
    },
    /// Print the subject's ledger as JSON.
    History {
        #[command(flatten)]
        common: Common,
        /// Subject id.
        #[arg(long)]
        subject: String,
        /// Reveal IP addresses and user agents, declaring this purpose (audited).
        #[arg(long)]
        reveal_purpose: Option<String>,
    },
    /// Import existing consent records from a CSV file (see `custos consent import --help`).
    Import {
        #[command(flatten)]
        common: Common,
        /// The CSV file.
        file: PathBuf,
    },
    /// Compare the materialised state with the events; `--rebuild` recomputes it.
    Verify {
        #[command(flatten)]
        common: Common,
        /// Rebuild the materialised state from the events first.
        #[arg(long)]
        rebuild: bool,
    },
}

fn load_rules(map: Option<&Path>) -> anyhow::Result<HashMap<String, PurposeRule>> {
    let dm = match map {
        Some(p) => custos_map::load(p)
            .map(|(m, _)| m)
            .map_err(|e| anyhow::anyhow!("{e} (run custos map check {})", p.display()))?,
        None => {
            eprintln!("note: no --map given; using the built-in demo map's purposes");
            custos_map::load_str(custos_map::DEMO_MAP, "demo-map.yaml")
                .map(|(m, _)| m)
                .map_err(|d| anyhow::anyhow!("the built-in map has {} error(s)", d.len()))?
        }
    };
    Ok(dm
        .consent_rules()
        .into_iter()
        .map(|r| (r.id.to_string(), r))
        .collect())
}

fn rule<'a>(rules: &'a HashMap<String, PurposeRule>, p: &str) -> anyhow::Result<&'a PurposeRule> {
    rules
        .get(p)
        .with_context(|| format!("purpose {p:?} is not declared in the data map"))
}

struct Ctx {
    vault: Vault,
    tenant: TenantId,
    rules: HashMap<String, PurposeRule>,
}

async fn open(c: &Common) -> anyhow::Result<Ctx> {
    let tenant = TenantId::parse(&c.tenant).context("--tenant")?;
    let rules = load_rules(c.map.as_deref())?;
    let vault = c.store.open(false).await?;
    Ok(Ctx {
        vault,
        tenant,
        rules,
    })
}

pub(crate) fn run(args: ConsentArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        match args.command {
            ConsentCommand::Check {
                common,
                subject,
                token,
                purpose,
            } => {
                let ctx = open(&common).await?;
                let rule = rule(&ctx.rules, &purpose)?;
                let target = match (subject, token) {
                    (Some(s), _) => {
                        CheckTarget::Subject(SubjectId::parse(&s).context("--subject")?)
                    }
                    (None, Some(t)) => CheckTarget::Token {
                        token: t,
                        audience: None::<Audience>,
                    },
                    (None, None) => bail!("give --subject or --token"),
                };
                let r = ctx
                    .vault
                    .consent()
                    .check(&Actor::Admin, &ctx.tenant, &target, rule)
                    .await;
                ctx.vault.close().await;
                let answer = r?;
                println!("{}", serde_json::to_string_pretty(&answer)?);
                Ok(if answer.allowed {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
            ConsentCommand::Grant {
                common,
                subject,
                purpose,
                version,
                affirmative,
                channel,
            } => {
                let input = ConsentInput {
                    action: Action::Grant,
                    version: Some(version),
                    channel: Channel::parse(&channel).context("--channel")?,
                    affirmative,
                    gpc: false,
                    form_id: None,
                    ip: None,
                    user_agent: None,
                };
                record(&common, &subject, &purpose, input).await
            }
            ConsentCommand::Withdraw {
                common,
                subject,
                purpose,
                channel,
            } => {
                let rules = load_rules(common.map.as_deref())?;
                let basis = rule(&rules, &purpose)?.basis;
                let action = if basis == custos_core::consent::Basis::LegitimateInterest {
                    Action::Object
                } else {
                    Action::Withdraw
                };
                let input = ConsentInput {
                    action,
                    version: None,
                    channel: Channel::parse(&channel).context("--channel")?,
                    affirmative: true,
                    gpc: false,
                    form_id: None,
                    ip: None,
                    user_agent: None,
                };
                record(&common, &subject, &purpose, input).await
            }
            ConsentCommand::History {
                common,
                subject,
                reveal_purpose,
            } => {
                let ctx = open(&common).await?;
                let id = SubjectId::parse(&subject).context("--subject")?;
                let purpose = reveal_purpose
                    .map(|p| Purpose::parse(&p))
                    .transpose()
                    .context("--reveal-purpose")?;
                let r = ctx
                    .vault
                    .consent()
                    .history(&Actor::Admin, &ctx.tenant, &id, purpose.as_ref())
                    .await;
                ctx.vault.close().await;
                println!("{}", serde_json::to_string_pretty(&r?)?);
                Ok(ExitCode::SUCCESS)
            }
            ConsentCommand::Import { common, file } => import(&common, &file).await,
            ConsentCommand::Verify { common, rebuild } => {
                let ctx = open(&common).await?;
                if rebuild {
                    let n = ctx.vault.consent().rebuild_state(&ctx.tenant).await?;
                    println!("rebuilt {n} state rows from the events");
                }
                let c = ctx.vault.consent().verify_state(&ctx.tenant).await;
                ctx.vault.close().await;
                let c = c?;
                println!(
                    "{} events, {} (subject, purpose) states derived, {} materialised, {} mismatches",
                    c.events, c.derived, c.materialised, c.mismatches
                );
                Ok(if c.mismatches == 0 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                })
            }
        }
    })
}

async fn record(
    common: &Common,
    subject: &str,
    purpose: &str,
    input: ConsentInput,
) -> anyhow::Result<ExitCode> {
    let ctx = open(common).await?;
    let id = SubjectId::parse(subject).context("--subject")?;
    let rule = rule(&ctx.rules, purpose)?.clone();
    let gpc: Vec<PurposeRule> = Vec::new();
    let r = ctx
        .vault
        .consent()
        .record(&Actor::Admin, &ctx.tenant, &id, &rule, &input, &gpc)
        .await;
    ctx.vault.close().await;
    for e in r? {
        println!(
            "recorded {} {} of {} (version {}) at {}",
            e.id,
            e.action,
            e.purpose,
            e.version.map_or("-".to_owned(), |v| v.to_string()),
            e.at
        );
    }
    Ok(ExitCode::SUCCESS)
}

// ----- import ----------------------------------------------------------------

/// A rejected line: where and why (never the value).
struct Rejected {
    line: u64,
    field: String,
    reason: String,
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

/// Turns one record (its fields in the order of `cols`, as
/// [`ImportReader`] hands them out) into an event, or says which field is
/// wrong.
fn parse_event(cols: &[Col], fields: &[String]) -> Result<ImportEvent, Bad> {
    let mut subject = None;
    let mut purpose = None;
    let mut action = None;
    let mut at = None;
    let mut input = ConsentInput {
        action: Action::Grant,
        version: None,
        channel: Channel::parse("import").map_err(|_| ("channel", "invalid"))?,
        affirmative: false,
        gpc: false,
        form_id: None,
        ip: None,
        user_agent: None,
    };
    for (col, raw) in cols.iter().zip(fields) {
        let v = raw.trim();
        let opt = (!v.is_empty()).then(|| v.to_owned());
        match col {
            Col::Subject => {
                if let Some(v) = opt {
                    subject =
                        Some(ImportSubject::Id(SubjectId::parse(&v).map_err(|_| {
                            ("subject", "expected sub_ followed by 32 hex digits")
                        })?));
                }
            }
            Col::ExternalId => {
                if subject.is_none() {
                    subject = opt.map(ImportSubject::External);
                }
            }
            Col::Purpose => {
                purpose =
                    Some(Purpose::parse(v).map_err(|_| ("purpose", "not a valid purpose id"))?)
            }
            Col::Action => {
                action = Some(Action::parse(v).ok_or(("action", "use grant, withdraw or object"))?)
            }
            Col::At => {
                at = Some(
                    custos_core::Timestamp::parse(v)
                        .map(custos_core::Timestamp::micros)
                        .map_err(|_| {
                            (
                                "at",
                                "expected an RFC 3339 time (2023-05-01T10:00:00Z) or a date",
                            )
                        })?,
                )
            }
            Col::Version => {
                input.version = match opt {
                    Some(v) => Some(
                        v.parse::<i64>()
                            .ok()
                            .filter(|n| *n > 0)
                            .ok_or(("version", "expected a positive whole number"))?,
                    ),
                    None => None,
                }
            }
            Col::Channel => {
                if let Some(v) = opt {
                    input.channel = Channel::parse(&v).map_err(|_| {
                        ("channel", "use lowercase letters, digits, '_', '-' or '.'")
                    })?;
                }
            }
            Col::Ip => input.ip = opt,
            Col::UserAgent => input.user_agent = opt,
            Col::FormId => input.form_id = opt,
            Col::Affirmative => {
                input.affirmative =
                    parse_bool(v).ok_or(("affirmative", "expected true or false"))?
            }
            Col::Gpc => input.gpc = parse_bool(v).ok_or(("gpc", "expected true or false"))?,
        }
    }
    input.action = action.ok_or(("action", "missing"))?;
    Ok(ImportEvent {
        subject: subject.ok_or(("subject", "missing (give subject or external_id)"))?,
        purpose: purpose.ok_or(("purpose", "missing"))?,
        at_us: at.ok_or(("at", "missing"))?,
        input,
    })
}

async fn import(common: &Common, file: &Path) -> anyhow::Result<ExitCode> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let name = file.display().to_string();
    let mut rows = ImportReader::new(f, &name)?;

    let ctx = open(common).await?;
    let started = Instant::now();
    let mut rejected: Vec<Rejected> = Vec::new();
    let mut accepted = 0u64;
    let mut batch: Vec<ImportEvent> = Vec::with_capacity(IMPORT_BATCH);
    let mut batch_lines: Vec<u64> = Vec::with_capacity(IMPORT_BATCH);
    let mut total = 0u64;
    let outcome: anyhow::Result<()> = async {
        while let Some(row) = rows.next_row()? {
            total += 1;
            match row.fields.and_then(|f| parse_event(rows.cols(), &f)) {
                Ok(ev) => {
                    batch.push(ev);
                    batch_lines.push(row.line);
                }
                Err((field, reason)) => rejected.push(Rejected {
                    line: row.line,
                    field: field.to_owned(),
                    reason: reason.to_owned(),
                }),
            }
            if batch.len() >= IMPORT_BATCH {
                accepted += flush(&ctx, &mut batch, &mut batch_lines, &mut rejected).await?;
            }
        }
        accepted += flush(&ctx, &mut batch, &mut batch_lines, &mut rejected).await?;
        Ok(())
    }
    .await;
    ctx.vault.close().await;
    outcome?;
    let secs = started.elapsed().as_secs_f64();
    rejected.sort_by_key(|r| r.line);
    for r in &rejected {
        println!("{name}:{}:{}: {}", r.line, r.field, r.reason);
    }
    println!(
        "imported {accepted} of {total} events from {name} in {secs:.2} s ({:.0} events/s); {} line(s) rejected",
        accepted as f64 / secs.max(1e-9),
        rejected.len()
    );
    Ok(if rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn flush(
    ctx: &Ctx,
    batch: &mut Vec<ImportEvent>,
    lines: &mut Vec<u64>,
    rejected: &mut Vec<Rejected>,
) -> anyhow::Result<u64> {
    if batch.is_empty() {
        return Ok(0);
    }
    let report = ctx
        .vault
        .consent()
        .import(&Actor::Admin, &ctx.tenant, &ctx.rules, batch)
        .await?;
    for r in report.rejected {
        rejected.push(Rejected {
            line: lines.get(r.index).copied().unwrap_or(0),
            field: r.field,
            reason: r.reason,
        });
    }
    batch.clear();
    lines.clear();
    Ok(report.accepted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The header's columns and every record's fields (or what is wrong).
    fn read_all(input: &[u8]) -> (Vec<Col>, Vec<Result<Vec<String>, Bad>>) {
        let mut r = ImportReader::new(input, "f.csv").unwrap();
        let mut rows = Vec::new();
        while let Some(row) = r.next_row().unwrap() {
            rows.push(row.fields);
        }
        (r.cols().to_vec(), rows)
    }

    #[test]
    fn records_become_events_or_name_the_field() {
        let (cols, rows) = read_all(
            b"at,action,external_id,purpose,gpc\r\n\
            2021-03-01,grant,\"two\r\nlines\",newsletter,Yes\r\n\
            2021-03-01,grnt,u-1,newsletter,no\n\
            2021-03-01,grant,u-2,newsletter,maybe\n",
        );
        let ev = parse_event(&cols, rows[0].as_ref().unwrap()).unwrap();
        assert!(matches!(ev.subject, ImportSubject::External(ref e) if e == "two\r\nlines"));
        assert!(ev.input.gpc);
        assert_eq!(
            parse_event(&cols, rows[1].as_ref().unwrap()).err(),
            Some(("action", "use grant, withdraw or object"))
        );
        assert_eq!(
            parse_event(&cols, rows[2].as_ref().unwrap()).err(),
            Some(("gpc", "expected true or false"))
        );
    }

    proptest! {
        #[test]
        fn arbitrary_records_never_panic(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut input = b"subject,purpose,action,at,gpc,version\n".to_vec();
            input.extend_from_slice(&bytes);
            let (cols, rows) = read_all(&input);
            for f in rows.into_iter().flatten() {
                let _ = parse_event(&cols, &f);
            }
        }
    }
}
