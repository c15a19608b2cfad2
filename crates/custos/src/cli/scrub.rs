//! `custos scrub`: placeholder until issue 6 lands.

/// Arguments of `custos scrub`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScrubArgs {}

pub(crate) fn run(_args: ScrubArgs) -> anyhow::Result<()> {
    anyhow::bail!("custos scrub is not built yet")
}
