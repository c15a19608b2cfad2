//! `custos ropa`: placeholder until issue 3 lands.

/// Arguments of `custos ropa`.
#[derive(Debug, clap::Args)]
pub(crate) struct RopaArgs {}

pub(crate) fn run(_args: RopaArgs) -> anyhow::Result<()> {
    anyhow::bail!("custos ropa is not built yet")
}
