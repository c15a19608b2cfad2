//! `custos audit verify`: checks the hash chain, checkpoint signatures and
//! the key store's anchor; names the first bad entry.

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
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

pub(crate) fn run(args: AuditArgs) -> anyhow::Result<std::process::ExitCode> {
    match args.command {
        AuditCommand::Verify { store, json } => runtime()?.block_on(async move {
            // As it is, even a data store restored from an older copy:
            // the report says what is wrong with it.
            let vault = store.open_as(false, custos_store::OpenMode::Inspect).await?;
            let report = vault.audit().verify().await?;
            vault.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
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
            }
            Ok(if report.first_break.is_some() || report.rolled_back.is_some() {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::SUCCESS
            })
        }),
    }
}
