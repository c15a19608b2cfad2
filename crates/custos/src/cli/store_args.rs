//! Where the stores and the root key are: the flags (each with its
//! `CUSTOS_*` variable) shared by every command that opens the vault.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use base64::Engine as _;
use custos_core::keys::RootKey;
use custos_core::secret::Key32;
use custos_store::owner_only::create_dir as create_private_dir;
use custos_store::{OpenMode, Vault, VaultConfig};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use super::secret::Secret;

/// Flags naming the data store, the key store and the data directory.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct StoreArgs {
    /// Directory for the embedded stores and the development root key.
    #[arg(long, env = "CUSTOS_DATA_DIR", default_value = "custos-data")]
    pub(crate) data_dir: PathBuf,
    /// Data store URL (`sqlite:` or `postgres:`); default: SQLite in the
    /// data directory. Secret: it may carry a password.
    #[arg(long, env = "CUSTOS_DATABASE_URL", hide_env_values = true)]
    pub(crate) database_url: Option<Secret>,
    /// Key store URL, a different database; default: SQLite in
    /// `<data-dir>/keys/`. Secret: it may carry a password.
    #[arg(long, env = "CUSTOS_KEYSTORE_URL", hide_env_values = true)]
    pub(crate) keystore_url: Option<Secret>,
    /// The root key, base64 of 32 bytes; keep it apart from both stores
    /// and their backups. Without it or a key file: the development key
    /// `<data-dir>/root.key` (created by `custos serve` with a warning).
    #[arg(long, env = "CUSTOS_ROOT_KEY", hide_env_values = true)]
    pub(crate) root_key: Option<Secret>,
    /// A file holding the root key (base64 of 32 bytes).
    #[arg(long, env = "CUSTOS_ROOT_KEY_FILE", conflicts_with = "root_key")]
    pub(crate) root_key_file: Option<PathBuf>,
    /// The erasure ledger file: every erasure, ids only, kept apart from
    /// both stores so that restoring them from an older copy cannot bring
    /// anyone back. Keep it out of the stores' backups (e.g. with the root
    /// key). Default: `<data-dir>/erasures.ledger`.
    #[arg(long, env = "CUSTOS_ERASURE_LEDGER")]
    pub(crate) erasure_ledger: Option<PathBuf>,
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

impl StoreArgs {
    /// Resolves URLs (creating directories for embedded stores), loads the
    /// root key and opens the vault.
    pub(crate) async fn open(&self, allow_generated_root: bool) -> anyhow::Result<Vault> {
        self.open_as(allow_generated_root, OpenMode::Serve).await
    }

    /// [`StoreArgs::open`] for a purpose other than serving (recovery,
    /// inspection).
    pub(crate) async fn open_as(
        &self,
        allow_generated_root: bool,
        mode: OpenMode,
    ) -> anyhow::Result<Vault> {
        // The root key first: a missing one fails before anything is written.
        let root_key = self.root_key(allow_generated_root)?;
        create_private_dir(&self.data_dir)
            .with_context(|| format!("creating data directory {}", self.data_dir.display()))?;
        let database_url = match &self.database_url {
            Some(u) => u.expose().to_owned(),
            None => sqlite_url(&self.data_dir.join("data.db")),
        };
        let keystore_url = match &self.keystore_url {
            Some(u) => u.expose().to_owned(),
            None => {
                let dir = self.data_dir.join("keys");
                create_private_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
                sqlite_url(&dir.join("keys.db"))
            }
        };
        let ledger = self
            .erasure_ledger
            .clone()
            .unwrap_or_else(|| self.data_dir.join("erasures.ledger"));
        let vault = Vault::open(VaultConfig {
            read_connections: 8,
            erasure_ledger: Some(ledger),
            mode,
            ..VaultConfig::new(database_url, keystore_url, root_key)
        })
        .await?;
        Ok(vault)
    }
}

pub(crate) fn decode_key(b64: &str, source: &str) -> anyhow::Result<RootKey> {
    let bytes = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .with_context(|| format!("{source}: not valid base64"))?,
    );
    let key = Key32::from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{source}: must be base64 of exactly 32 bytes"))?;
    Ok(RootKey::new(key))
}

impl StoreArgs {
    /// The root key: `--root-key`, `--root-key-file`, or (development
    /// only) the generated file `<data-dir>/root.key`, outside the key
    /// store.
    pub(crate) fn root_key(&self, allow_generated: bool) -> anyhow::Result<RootKey> {
        if let Some(v) = &self.root_key {
            return decode_key(v.expose(), "CUSTOS_ROOT_KEY (--root-key)");
        }
        if let Some(path) = &self.root_key_file {
            let s = Zeroizing::new(std::fs::read_to_string(path).with_context(|| {
                format!(
                    "reading CUSTOS_ROOT_KEY_FILE (--root-key-file) {}",
                    path.display()
                )
            })?);
            return decode_key(&s, &path.display().to_string());
        }
        if allow_generated && !self.development_key_exists() {
            if let Some(existing) = self.existing_store() {
                bail!(
                    "no root key for the existing store {existing}: set CUSTOS_ROOT_KEY (--root-key) or CUSTOS_ROOT_KEY_FILE (--root-key-file) to the key it was created with (a new development key would not open it)"
                );
            }
        }
        development_root_key(&self.data_dir, allow_generated)
    }

    fn development_key_exists(&self) -> bool {
        self.data_dir.join("root.key").exists()
    }

    /// The store a development root key must not be generated for: an
    /// embedded key store or data store that already exists, or a key
    /// store given by URL (which this cannot tell is new without
    /// opening it, and a development key is no key for a server store).
    fn existing_store(&self) -> Option<String> {
        if self.keystore_url.is_some() {
            return Some("given by CUSTOS_KEYSTORE_URL (--keystore-url)".into());
        }
        let keys = self.data_dir.join("keys").join("keys.db");
        let data = self.data_dir.join("data.db");
        [keys, data]
            .into_iter()
            .find(|p| p.exists())
            .map(|p| p.display().to_string())
    }

    /// The URLs of the stores for reading the audit log without the root
    /// key: the data store (which must exist) and the key store if there
    /// is one. Embedded stores are opened read-only.
    pub(crate) fn audit_urls(&self) -> anyhow::Result<(String, Option<String>)> {
        let read_only = |p: &Path| format!("sqlite://{}?mode=ro", p.display());
        let data = match &self.database_url {
            Some(u) => u.expose().to_owned(),
            None => {
                let p = self.data_dir.join("data.db");
                if !p.exists() {
                    bail!(
                        "no data store at {} (set CUSTOS_DATA_DIR or CUSTOS_DATABASE_URL)",
                        p.display()
                    );
                }
                read_only(&p)
            }
        };
        let keys = match &self.keystore_url {
            Some(u) => Some(u.expose().to_owned()),
            None => {
                let p = self.data_dir.join("keys").join("keys.db");
                p.exists().then(|| read_only(&p))
            }
        };
        Ok((data, keys))
    }
}

/// The development root key `<data-dir>/root.key`, generated when
/// `allow_generated` and missing.
fn development_root_key(data_dir: &Path, allow_generated: bool) -> anyhow::Result<RootKey> {
    let path = data_dir.join("root.key");
    if path.exists() {
        let s = Zeroizing::new(
            std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?,
        );
        eprintln!(
            "WARNING: using the development root key {} — set CUSTOS_ROOT_KEY or CUSTOS_ROOT_KEY_FILE in production and keep it away from the data",
            path.display()
        );
        return decode_key(&s, &path.display().to_string());
    }
    if !allow_generated {
        bail!("no root key: set CUSTOS_ROOT_KEY (--root-key, base64 of 32 bytes) or CUSTOS_ROOT_KEY_FILE (--root-key-file)");
    }
    let mut raw = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(raw.as_mut());
    let b64 = Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(raw.as_ref()));
    // Made here before the stores are: the owner's alone, like theirs.
    create_private_dir(data_dir)
        .with_context(|| format!("creating data directory {}", data_dir.display()))?;
    write_private(&path, b64.as_bytes())?;
    eprintln!();
    eprintln!("##################################################################");
    eprintln!("# WARNING: no root key given; generated a DEVELOPMENT root key at");
    eprintln!("#   {}", path.display());
    eprintln!("# Whoever holds this file and the stores can read all data.");
    eprintln!("# In production set CUSTOS_ROOT_KEY or CUSTOS_ROOT_KEY_FILE and");
    eprintln!("# keep the root key apart from both databases and their backups.");
    eprintln!("##################################################################");
    eprintln!();
    Key32::from_slice(raw.as_ref())
        .map(RootKey::new)
        .map_err(|_| anyhow::anyhow!("generated key has the wrong length"))
}

/// Writes a file readable only by its owner.
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(bytes)?;
    f.sync_all()?;
    Ok(())
}
