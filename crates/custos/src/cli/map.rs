//! `custos map`: placeholder until issue 3 lands.

/// Arguments of `custos map`.
#[derive(Debug, clap::Args)]
pub(crate) struct MapArgs {}

pub(crate) fn run(_args: MapArgs) -> anyhow::Result<()> {
    anyhow::bail!("custos map is not built yet")
}
