//! `custos audit …`: verify the log (with the root key, or with public
//! keys alone), print the public key history, export and check the
//! self-contained proof (docs/audit.md).

use std::path::{Path, PathBuf};

use anyhow::Context;
use custos_core::audit_keys::PublicKeyHistory;
use custos_core::audit_proof::AuditProof;
use custos_store::{AuditLog, AuditReport};

use super::serve::runtime;
use super::store_args::StoreArgs;

/// `custos audit …`
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Verify the audit log; exit 0 if intact, 1 if not.
    Verify {
        #[command(flatten)]
        store: StoreArgs,
        /// Verify with the public keys of this file (from `custos audit
        /// public-key`) and those they endorse, without the root key.
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print (or write) the history of the audit signing keys' public
    /// keys: what an auditor needs to verify without any secret.
    PublicKey {
        #[command(flatten)]
        store: StoreArgs,
        /// Write it to this file instead of printing it.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Export the audit log (no root key needed).
    Export {
        #[command(flatten)]
        store: StoreArgs,
        /// Export the self-contained proof: every entry (hashes and
        /// non-personal fields), the signed checkpoints, the anchor and
        /// the public key history.
        #[arg(long, required = true)]
        proof: bool,
        /// Where to write it.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
    /// Check an exported proof offline; exit 0 if intact, 1 if not.
    VerifyProof {
        /// The proof file (from `custos audit export --proof`).
        proof: PathBuf,
        /// Trust only the keys of this public key history and those they
        /// endorse (otherwise the proof's own history is only checked for
        /// consistency: compare its key ids with the operator's).
        #[arg(long, value_name = "FILE")]
        public_key: Option<PathBuf>,
    },
}

fn read_history(path: &Path) -> anyhow::Result<PublicKeyHistory> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading public key file {}", path.display()))?;
    PublicKeyHistory::from_json(&text)
        .with_context(|| format!("public key file {}", path.display()))
}

fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<std::process::ExitCode> {
    use std::process::ExitCode;
    match args.command {
        AuditCommand::Verify {
            store,
            public_key,
            json,
        } => runtime()?.block_on(async move {
            let report = match public_key {
                Some(file) => {
                    let trusted = read_history(&file)?;
                    let (data, keys) = store.audit_urls()?;
                    let log = AuditLog::open(&data, keys.as_deref()).await?;
                    let report = log.verify(&trusted).await;
                    log.close().await;
                    report?
                }
                None => {
                    // As it is, even a data store restored from an older
                    // copy: the report says what is wrong with it.
                    let vault = store
                        .open_as(false, custos_store::OpenMode::Inspect)
                        .await?;
                    let report = vault.audit().verify().await;
                    vault.close().await;
                    report?
                }
            };
            print_report(&report, json)?;
            Ok(
                if report.first_break.is_some() || report.rolled_back.is_some() {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                },
            )
        }),
        AuditCommand::PublicKey { store, output } => runtime()?.block_on(async move {
            let (data, keys) = store.audit_urls()?;
            let log = AuditLog::open(&data, keys.as_deref()).await?;
            let mut history = log.public_key_history().await;
            log.close().await;
            if history.as_ref().is_ok_and(|h| h.keys.is_empty()) || history.is_err() {
                // A store this version never opened: opening it with the
                // root key starts its history.
                let vault = store
                    .open_as(false, custos_store::OpenMode::Inspect)
                    .await?;
                history = vault.public_key_history().await;
                vault.close().await;
            }
            let text = history?.to_json();
            match output {
                Some(path) => write_new(&path, &text)?,
                None => print!("{text}"),
            }
            Ok(ExitCode::SUCCESS)
        }),
        AuditCommand::Export {
            store,
            proof: _,
            output,
        } => runtime()?.block_on(async move {
            let (data, keys) = store.audit_urls()?;
            let log = AuditLog::open(&data, keys.as_deref()).await?;
            let proof = log.proof().await;
            log.close().await;
            let proof = proof?;
            write_new(&output, &proof.to_json())?;
            println!(
                "wrote the proof of {} audit entries and {} checkpoints to {}",
                proof.entries.len(),
                proof.checkpoints.len() + usize::from(proof.anchor.is_some()),
                output.display()
            );
            Ok(ExitCode::SUCCESS)
        }),
        AuditCommand::VerifyProof { proof, public_key } => {
            let trusted = public_key.as_deref().map(read_history).transpose()?;
            let bytes =
                std::fs::read(&proof).with_context(|| format!("reading {}", proof.display()))?;
            match AuditProof::verify(&bytes, trusted.as_ref()) {
                Ok(r) => {
                    println!(
                        "proof intact: {} entries, {} signed checkpoints verified; signing keys {}{}",
                        r.entries,
                        r.checkpoints,
                        r.key_ids.join(", "),
                        if trusted.is_some() {
                            " (trusted through the public key file)"
                        } else {
                            " (not checked against a trusted public key file)"
                        }
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    println!("proof BROKEN: {e}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}

fn print_report(report: &AuditReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    if let Some(b) = &report.first_break {
        println!("audit log BROKEN: {b}");
        println!("{} entries verified before the break", report.entries);
    } else {
        println!(
            "audit log intact: {} entries, {} signed checkpoints verified",
            report.entries, report.checkpoints
        );
    }
    for r in &report.recoveries {
        println!(
            "recovered at {}: the store was restored to entry {}; entries {}..={} of the earlier chain were lost ({})",
            r.at,
            r.restored_seq,
            r.restored_seq + 1,
            r.anchored_seq,
            r.reason
        );
    }
    if let Some(why) = &report.rolled_back {
        println!("the data store was restored from an older copy and not recovered: {why}; run `custos recover`");
    }
    Ok(())
}
