//! `custos keys …`: key rotation by rewrapping (data is never re-encrypted).

use anyhow::Context;
use custos_core::ids::TenantId;

use super::secret::Secret;
use super::serve::runtime;
use super::store_args::StoreArgs;

/// `custos keys …`
#[derive(Debug, clap::Args)]
pub(crate) struct KeysArgs {
    #[command(subcommand)]
    command: KeysCommand,
}

// The commands are `rotate-…` by design: each names what it rotates.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, clap::Subcommand)]
enum KeysCommand {
    /// Rewrap every tenant key and the audit signing key under a new root
    /// key. Restart servers with the new key afterwards.
    RotateRoot {
        #[command(flatten)]
        store: StoreArgs,
        /// The new root key, base64 of 32 bytes.
        #[arg(long, env = "CUSTOS_NEW_ROOT_KEY", hide_env_values = true)]
        new_root_key: Secret,
    },
    /// Give the audit log a new signing key: the current one is retired
    /// (its public key stays in the history and endorses the new one).
    /// Give auditors the new `custos audit public-key` afterwards.
    RotateAudit {
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
            KeysCommand::RotateRoot {
                store,
                new_root_key,
            } => {
                let vault = store.open(false).await?;
                let old = store.root_key(false)?;
                let new = super::store_args::decode_key(
                    new_root_key.expose(),
                    "CUSTOS_NEW_ROOT_KEY (--new-root-key)",
                )?;
                let n = vault.keystore().rotate_root(&old, &new).await?;
                vault.close().await;
                println!(
                    "rewrapped {n} keys under the new root key (fingerprint {})",
                    new.fingerprint()
                );
                println!("restart every server with the new root key now.");
            }
            KeysCommand::RotateAudit { store } => {
                let vault = store.open(false).await?;
                let rotated = vault.rotate_audit_key().await;
                vault.close().await;
                let (old, new) = rotated?;
                println!("audit signing key {old} retired; key {new} signs from now on");
                println!("running servers take it up after their next checkpoint; give auditors the new `custos audit public-key`.");
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
