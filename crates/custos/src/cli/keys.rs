//! `custos keys …`: key rotation by rewrapping (data is never re-encrypted).

use anyhow::Context;
use custos_core::ids::TenantId;

use super::serve::runtime;
use super::store_args::StoreArgs;

/// `custos keys …`
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Rewrap every tenant key under a new root key (read as base64 from
    /// CUSTOS_NEW_ROOT_KEY). Restart servers with the new key afterwards.
    RotateRoot {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a tenant a new key version and rewrap its subjects' keys.
    RotateTenant {
        #[command(flatten)]
        store: StoreArgs,
        /// Tenant id.
        tenant: String,
    },
}

pub(crate) fn run(args: KeysArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        match args.command {
            KeysCommand::RotateRoot { store } => {
                let new_b64 =
                    zeroize::Zeroizing::new(std::env::var("CUSTOS_NEW_ROOT_KEY").context(
                        "set CUSTOS_NEW_ROOT_KEY to the new root key (base64 of 32 bytes)",
                    )?);
                let vault = store.open(false).await?;
                let old = super::store_args::load_root_key(&store.data_dir, false)?;
                let new = super::store_args::decode_key(&new_b64, "CUSTOS_NEW_ROOT_KEY")?;
                let n = vault.keystore().rotate_root(&old, &new).await?;
                vault.close().await;
                println!(
                    "rewrapped {n} tenant keys under the new root key (fingerprint {})",
                    new.fingerprint()
                );
                println!("restart every server with the new root key now.");
            }
            KeysCommand::RotateTenant { store, tenant } => {
                let t = TenantId::parse(&tenant).context("tenant")?;
                let vault = store.open(false).await?;
                let n = vault.tenants().rotate_key(&t).await?;
                vault.close().await;
                println!("tenant {t}: new key version; {n} subject keys rewrapped");
            }
        }
        Ok(())
    })
}
