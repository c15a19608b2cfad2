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
            let vault = store.open(false).await?;
            let report = vault.audit().verify().await?;
            vault.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if let Some(b) = &report.first_break {
                println!("audit log BROKEN: {b}");
                println!("{} entries verified before the break", report.entries);
            } else {
                println!(
                    "audit log intact: {} entries, {} signed checkpoints verified",
                    report.entries, report.checkpoints
                );
            }
            Ok(if report.first_break.is_some() {
                std::process::ExitCode::from(1)
            } else {
                std::process::ExitCode::SUCCESS
            })
        }),
    }
}
