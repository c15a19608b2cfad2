//! `custos recover`: brings a data store restored from an older copy back
//! into service. Every erasure the key store or the erasure ledger file
//! records and the data store lacks is replayed into it (audited), the
//! keys of erasures the key store lacks are destroyed again, and an audit
//! chain that no longer reaches its anchor is re-anchored, with the lost
//! stretch kept on record for `custos audit verify`. Run it with the
//! servers stopped.

use super::serve::runtime;
use super::store_args::StoreArgs;

/// Flags of `custos recover`.
#[derive(Debug, clap::Args)]
pub(crate) struct RecoverArgs {
    #[command(flatten)]
    store: StoreArgs,
}

pub(crate) fn run(args: RecoverArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let vault = args
            .store
            .open_as(false, custos_store::OpenMode::Recover)
            .await?;
        let done = vault.recovered().clone();
        vault.close().await;
        println!(
            "recovered: {} erasure(s) replayed into the data store, {} key(s) destroyed again, {} entr(ies) added to the erasure ledger file",
            done.replayed, done.keys_destroyed, done.witnessed
        );
        if let Some((anchored, restored)) = done.chain_restored {
            println!(
                "the audit chain was restored to entry {restored}; entries {}..={anchored} of the earlier chain are lost and recorded as such (custos audit verify)",
                restored + 1
            );
        }
        Ok(())
    })
}
