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
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use custos_core::consent::{Action, Channel, PurposeRule};
use custos_core::ids::{Audience, Purpose, SubjectId, TenantId};
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

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Col {
    Subject,
    ExternalId,
    Purpose,
    Action,
    At,
    Version,
    Channel,
    Ip,
    UserAgent,
    FormId,
    Affirmative,
    Gpc,
}

/// Every column with its name in the header.
const COLUMNS: [(Col, &str); 12] = [
    (Col::Subject, "subject"),
    (Col::ExternalId, "external_id"),
    (Col::Purpose, "purpose"),
    (Col::Action, "action"),
    (Col::At, "at"),
    (Col::Version, "version"),
    (Col::Channel, "channel"),
    (Col::Ip, "ip"),
    (Col::UserAgent, "user_agent"),
    (Col::FormId, "form_id"),
    (Col::Affirmative, "affirmative"),
    (Col::Gpc, "gpc"),
];

impl Col {
    fn parse(s: &str) -> Option<Self> {
        let s = s.trim();
        COLUMNS.iter().find(|(_, n)| *n == s).map(|(c, _)| *c)
    }

    /// Its name in the header (and in reports of rejected lines).
    fn name(self) -> &'static str {
        COLUMNS
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("line", |(_, n)| n)
    }
}

/// Follows the import file on its way into the CSV reader. The csv crate
/// reports no error for a quoted field that is never closed: the field
/// runs on to the end of the input. Such a field swallows this line too,
/// so the file's quotes are all closed exactly when the last record read
/// is [`END_FIELD`] alone (see [`ImportReader::next_row`]). It also ends
/// the file's last line, so that every record but such a one ends with
/// `\n`.
const END_MARK: &[u8] = b"\n\0custos: end of input\0\n";
/// The one field of the record that [`END_MARK`] ends the input with.
const END_FIELD: &[u8] = b"\0custos: end of input\0";

/// What is wrong with a record: the field (a column name, or `line`) and
/// why; never the value.
type Bad = (&'static str, &'static str);

/// One record of the import file.
#[derive(Debug)]
struct Row {
    /// The line it starts on (a quoted field may span lines).
    line: u64,
    /// Its fields in header order, or which one is wrong.
    fields: Result<Vec<String>, Bad>,
}

/// A record as read, with the line count when it was read.
#[derive(Default)]
struct ReadRecord {
    rec: csv::ByteRecord,
    /// Lines begun up to the end of the record (`\n` read so far + 1).
    end_line: u64,
}

impl ReadRecord {
    /// The line the record starts on: the lines it spans (newlines in
    /// quoted fields) and its own line end (`terminated`) counted back from
    /// where reading it ended. Empty lines before it were read with it and
    /// stay counted.
    fn start_line(&self, terminated: bool) -> u64 {
        let inside = self.rec.as_slice().iter().filter(|b| **b == b'\n').count() as u64;
        self.end_line
            .saturating_sub(inside + u64::from(terminated))
            .max(1)
    }
}

/// The import file read as CSV (RFC 4180 quoting, `\n` or `\r\n` line
/// ends, a UTF-8 byte order mark tolerated): a header row naming the
/// columns in any order, then records of as many fields, each handed out
/// with the line it starts on. Empty and blank lines are skipped.
///
/// Records end at `\n` only (the csv crate's default also ends them at a
/// lone `\r`, which `custos consent import` never did, and its record
/// positions count a `\r\n` line end with the next record): a `\r` that
/// ends a line's last field is the `\r` of its `\r\n` and is dropped.
struct ImportReader<R: Read> {
    csv: csv::Reader<std::io::Chain<BufReader<R>, &'static [u8]>>,
    name: String,
    cols: Vec<Col>,
    /// The record handed out next…
    cur: ReadRecord,
    /// …and the one after it, read ahead to tell the last record.
    ahead: ReadRecord,
    done: bool,
}

impl<R: Read> ImportReader<R> {
    /// Reads and checks the header of `input` (called `name` in errors).
    fn new(input: R, name: &str) -> anyhow::Result<Self> {
        let mut input = BufReader::with_capacity(1 << 16, input);
        if input
            .fill_buf()
            .with_context(|| format!("{name}:1: reading the header"))?
            .starts_with(b"\xEF\xBB\xBF")
        {
            input.consume(3);
        }
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            // Records with the wrong number of fields are reported per line.
            .flexible(true)
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(input.chain(END_MARK));
        let mut r = Self {
            csv,
            name: name.to_owned(),
            cols: Vec::new(),
            cur: ReadRecord::default(),
            ahead: ReadRecord::default(),
            done: false,
        };
        let read = |r: &mut Self| {
            r.read_ahead()
                .with_context(|| format!("{name}:1: reading the header"))
        };
        let mut more = read(&mut r)?;
        while more && is_blank(&r.ahead.rec) {
            more = read(&mut r)?;
        }
        if !more || is_end(&r.ahead.rec) {
            bail!("{name}:1: empty file; expected a header row");
        }
        std::mem::swap(&mut r.cur, &mut r.ahead);
        if !read(&mut r)? {
            let line = r.cur.start_line(false);
            bail!("{name}:{line}: a quoted field of the header is never closed");
        }
        let line = r.cur.start_line(true);
        let n = r.cur.rec.len();
        for (i, h) in r.cur.rec.iter().enumerate() {
            let h = std::str::from_utf8(field(h, i + 1 == n))
                .with_context(|| format!("{name}:{line}: column {} is not valid UTF-8", i + 1))?;
            match Col::parse(h) {
                Some(c) if !r.cols.contains(&c) => r.cols.push(c),
                Some(_) => bail!("{name}:{line}: column {} ({h:?}) appears twice", i + 1),
                None => bail!(
                    "{name}:{line}: unknown column {h:?}; expected subject or external_id, purpose, action, at, and optionally version, channel, ip, user_agent, form_id, affirmative, gpc"
                ),
            }
        }
        for need in [Col::Purpose, Col::Action, Col::At] {
            if !r.cols.contains(&need) {
                bail!("{name}:{line}: the header lacks the {need:?} column");
            }
        }
        if !r.cols.contains(&Col::Subject) && !r.cols.contains(&Col::ExternalId) {
            bail!("{name}:{line}: the header needs a subject or an external_id column");
        }
        Ok(r)
    }

    fn read_ahead(&mut self) -> csv::Result<bool> {
        let more = self.csv.read_byte_record(&mut self.ahead.rec)?;
        self.ahead.end_line = self.csv.position().line();
        Ok(more)
    }

    /// The next record, `None` at the end of the file. Only a failed read
    /// is an error; a bad record is a [`Row`] that says what is wrong.
    fn next_row(&mut self) -> anyhow::Result<Option<Row>> {
        while !self.done {
            std::mem::swap(&mut self.cur, &mut self.ahead);
            let more = self
                .read_ahead()
                .with_context(|| format!("{}:{}: reading", self.name, self.cur.start_line(true)))?;
            if !more {
                self.done = true;
                if is_end(&self.cur.rec) {
                    return Ok(None);
                }
                // The record ran on through END_MARK to the end.
                return Ok(Some(Row {
                    line: self.cur.start_line(false),
                    fields: Err(("line", "a quoted field is never closed")),
                }));
            }
            if is_blank(&self.cur.rec) {
                continue;
            }
            return Ok(Some(Row {
                line: self.cur.start_line(true),
                fields: fields(&self.cols, &self.cur.rec),
            }));
        }
        Ok(None)
    }
}

fn is_end(rec: &csv::ByteRecord) -> bool {
    rec.len() == 1 && rec.get(0) == Some(END_FIELD)
}

/// A line of spaces only (the csv crate skips empty lines itself).
fn is_blank(rec: &csv::ByteRecord) -> bool {
    rec.len() == 1
        && rec
            .get(0)
            .and_then(|f| std::str::from_utf8(f).ok())
            .is_some_and(|f| f.trim().is_empty())
}

/// A field's bytes; the last of a record without the `\r` of a `\r\n`
/// line end (see [`ImportReader`]).
fn field(f: &[u8], last: bool) -> &[u8] {
    match f.split_last() {
        Some((b'\r', rest)) if last => rest,
        _ => f,
    }
}

/// The record's fields as text, one per column.
fn fields(cols: &[Col], rec: &csv::ByteRecord) -> Result<Vec<String>, Bad> {
    if rec.len() != cols.len() {
        return Err((
            "line",
            "wrong number of fields for the header (quote values that contain commas)",
        ));
    }
    let n = cols.len();
    cols.iter()
        .zip(rec)
        .enumerate()
        .map(|(i, (c, f))| {
            std::str::from_utf8(field(f, i + 1 == n))
                .map(str::to_owned)
                .map_err(|_| (c.name(), "not valid UTF-8"))
        })
        .collect()
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "y" => Some(true),
        "false" | "0" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

/// Turns one record (its fields in the order of `cols`, see [`fields`])
/// into an event, or says which field is wrong.
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
            match row.fields.and_then(|f| parse_event(&rows.cols, &f)) {
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

    /// The header's columns and every record of `input`.
    fn read_all(input: &[u8]) -> anyhow::Result<(Vec<Col>, Vec<Row>)> {
        let mut r = ImportReader::new(input, "f.csv")?;
        let mut rows = Vec::new();
        while let Some(row) = r.next_row()? {
            rows.push(row);
        }
        Ok((r.cols, rows))
    }

    fn header_error(input: &[u8]) -> String {
        match read_all(input) {
            Ok(_) => panic!("no error for {input:?}"),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn csv_quoting() {
        let (_, rows) =
            read_all(b"subject,purpose,action,at,gpc\na,\"b,c\",\"d \"\"e\"\"\",,f\na,\"open\n")
                .unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(
            rows[0].fields,
            Ok(vec![
                "a".into(),
                "b,c".into(),
                "d \"e\"".into(),
                String::new(),
                "f".into()
            ])
        );
        assert_eq!(rows[1].line, 3);
        assert_eq!(
            rows[1].fields,
            Err(("line", "a quoted field is never closed"))
        );

        assert_eq!(parse_bool("Yes"), Some(true));
    }

    #[test]
    fn records_keep_the_line_they_start_on() {
        let input = b"\xEF\xBB\xBFat,action,external_id,purpose\r\n\
            2021-03-01,grant,\"two\r\nlines\",newsletter\r\n\
            \r\n   \n\
            2021-03-01,grant,u-1,newsletter,extra\r\n\
            2021-03-01,grant,\"u-\xFF\",newsletter\n\
            2021-03-01,grant,u-2,newsletter";
        let (cols, rows) = read_all(input).unwrap();
        assert_eq!(cols, [Col::At, Col::Action, Col::ExternalId, Col::Purpose]);
        let got: Vec<_> = rows.iter().map(|r| (r.line, r.fields.clone())).collect();
        let ok = |id: &str| {
            Ok(vec![
                "2021-03-01".to_owned(),
                "grant".into(),
                id.into(),
                "newsletter".into(),
            ])
        };
        assert_eq!(
            got,
            [
                (2, ok("two\r\nlines")),
                (
                    6,
                    Err((
                        "line",
                        "wrong number of fields for the header (quote values that contain commas)"
                    ))
                ),
                (7, Err(("external_id", "not valid UTF-8"))),
                (8, ok("u-2")),
            ]
        );
        let ev = parse_event(&cols, rows[0].fields.as_ref().unwrap()).unwrap();
        assert!(matches!(ev.subject, ImportSubject::External(ref e) if e == "two\r\nlines"));
    }

    #[test]
    fn header_errors_name_the_file_and_line() {
        for (input, want) in [
            (&b""[..], "f.csv:1: empty file; expected a header row"),
            (b"\n\n", "f.csv:1: empty file; expected a header row"),
            (
                b"\xEF\xBB\xBF",
                "f.csv:1: empty file; expected a header row",
            ),
            (b" \r\n\t\n", "f.csv:1: empty file; expected a header row"),
            (
                b"subject,purpose,actoin,at\n",
                "f.csv:1: unknown column \"actoin\"",
            ),
            (
                b"\nsubject,purpose,at,at\n",
                "f.csv:2: column 4 (\"at\") appears twice",
            ),
            (
                b"subject,action,at\n",
                "f.csv:1: the header lacks the Purpose column",
            ),
            (
                b"purpose,action,at\n",
                "f.csv:1: the header needs a subject or an external_id column",
            ),
            (
                b"subject,\"purpose,action,at\n1,2,3\n",
                "f.csv:1: a quoted field of the header is never closed",
            ),
            (
                b"\r\n\nsubject,\"purpose,action,at\n1,2,3\n",
                "f.csv:3: a quoted field of the header is never closed",
            ),
            (
                b"subject,purp\xFFose,action,at\n",
                "f.csv:1: column 2 is not valid UTF-8",
            ),
        ] {
            let e = header_error(input);
            assert!(e.starts_with(want), "{input:?}: {e}");
        }
        // A quoted header field works like any other.
        let (cols, rows) = read_all(b"\"subject\",purpose,action,at").unwrap();
        assert_eq!(cols.len(), 4);
        assert!(rows.is_empty());
    }

    /// Values for the property tests: arbitrary text, and text made of
    /// what CSV treats specially.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[a,\"\r\n \t\u{0}\u{feff}é]{0,8}",]
    }

    proptest! {
        #[test]
        fn what_csv_writer_writes_reads_back(
            cols in Just(COLUMNS.map(|(c, _)| c)).prop_shuffle(),
            records in prop::collection::vec(prop::collection::vec(value(), 12), 0..6),
            crlf in any::<bool>(),
            bom in any::<bool>(),
        ) {
            let mut w = csv::WriterBuilder::new()
                .terminator(if crlf { csv::Terminator::CRLF } else { csv::Terminator::Any(b'\n') })
                .from_writer(if bom { b"\xEF\xBB\xBF".to_vec() } else { Vec::new() });
            w.write_record(cols.iter().map(|c| c.name())).unwrap();
            let mut lines = Vec::new();
            for r in &records {
                w.flush().unwrap();
                lines.push(1 + w.get_ref().iter().filter(|b| **b == b'\n').count() as u64);
                w.write_record(r).unwrap();
            }
            let bytes = w.into_inner().unwrap();
            let (got_cols, rows) = read_all(&bytes).unwrap();
            prop_assert_eq!(&got_cols[..], &cols[..]);
            let got: Vec<_> = rows.into_iter().map(|r| (r.line, r.fields)).collect();
            // A value that ends a line with `\r` loses it where the line
            // ends with `\n` alone (see `ImportReader`).
            let records = records.into_iter().map(|mut r| {
                if let Some(last) = r.last_mut().filter(|l| !crlf && l.ends_with('\r')) {
                    last.pop();
                }
                Ok(r)
            });
            let want: Vec<_> = lines.into_iter().zip(records).collect();
            prop_assert_eq!(got, want);
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            with_header in any::<bool>(),
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut input = if with_header {
                b"subject,purpose,action,at,gpc\n".to_vec()
            } else {
                Vec::new()
            };
            input.extend_from_slice(&bytes);
            if let Ok((cols, rows)) = read_all(&input) {
                let mut last = 0;
                for r in rows {
                    prop_assert!(r.line >= last.max(1));
                    last = r.line;
                    if let Ok(f) = r.fields {
                        let _ = parse_event(&cols, &f);
                    }
                }
            }
        }
    }
}
