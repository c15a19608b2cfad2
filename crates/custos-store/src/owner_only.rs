//! Directories only their owner may enter (0700 on Unix): where custos
//! keeps stores, key files, the erasure ledger and the mail outbox, each
//! holding personal data or key material. One builder, so every place
//! makes them alike.

use std::path::Path;

/// Creates `path` and its missing parents with mode 0700. An existing
/// directory keeps its mode (the operator may have chosen one).
pub fn create_dir(path: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(path)
}
