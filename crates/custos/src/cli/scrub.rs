//! `custos scrub`: redact personal data from files or stdin, for use in
//! front of log shippers. Streams in constant memory; bytes that are not
//! UTF-8 pass through; `--report` prints counts per detector to stderr.
//!
//! Keyed modes (`pseudonymize`, `hash`) read the key from `CUSTOS_SCRUB_KEY`
//! (32 bytes as hex or base64) and refuse to run without it: an ephemeral
//! key would silently break correlation with other runs and with the
//! anonymised database copies.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use super::secret::Secret;
use anyhow::Context as _;
use custos_scrub::{Format, Mode, Report, ScrubConfig, ScrubKey, Scrubber};

/// Arguments of `custos scrub`.
#[derive(Debug, clap::Args)]
pub(crate) struct ScrubArgs {
    /// Files to scrub, in order; stdin when none (or `-`).
    files: Vec<PathBuf>,
    /// Input format: in `json` and `logfmt` only values are scrubbed, keys
    /// and structure are kept; lines that do not parse are scrubbed as text.
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// Replacement: `redact` (`[EMAIL]`), `mask` (j***@example.com),
    /// `pseudonymize` (email:7f3a9c2e) or `hash`; the last two need CUSTOS_SCRUB_KEY.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Only these detectors (comma-separated names; see --list-detectors).
    #[arg(long, value_delimiter = ',')]
    detect: Vec<String>,
    /// Turn these detectors off (comma-separated names).
    #[arg(long, value_delimiter = ',')]
    skip: Vec<String>,
    /// A value never replaced (repeatable), e.g. the support address.
    #[arg(long = "allow", value_name = "VALUE")]
    allow: Vec<String>,
    /// Leave private, loopback and link-local IP addresses alone.
    #[arg(long)]
    keep_private_ips: bool,
    /// TOML file with custom detectors, allow-list and defaults.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Print counts per detector to stderr at the end.
    #[arg(long)]
    report: bool,
    /// Print the detector names and exit.
    #[arg(long)]
    list_detectors: bool,
    /// Key of the keyed modes (pseudonymize, hash).
    #[arg(long, env = "CUSTOS_SCRUB_KEY", hide_env_values = true)]
    key: Option<Secret>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Text,
    Json,
    Logfmt,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ModeArg {
    Redact,
    Mask,
    Pseudonymize,
    Hash,
}

pub(crate) fn run(args: ScrubArgs) -> anyhow::Result<()> {
    let scrubber = build(&args)?;
    if args.list_detectors {
        for name in scrubber.detector_names() {
            println!("{name}");
        }
        return Ok(());
    }
    let format = match args.format {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Logfmt => Format::Logfmt,
    };
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(128 * 1024, stdout.lock());
    let mut total = Report::default();
    let stdin_only = args.files.is_empty();
    let inputs: Vec<Option<&PathBuf>> = if stdin_only {
        vec![None]
    } else {
        args.files
            .iter()
            .map(|f| (f.as_os_str() != "-").then_some(f))
            .collect()
    };
    for input in inputs {
        let report = match input {
            None => scrubber.scrub_stream(io::stdin().lock(), &mut out, format),
            Some(path) => {
                let file =
                    File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                scrubber.scrub_stream(file, &mut out, format)
            }
        };
        match report {
            Ok(r) => total.merge(&r),
            // A closed pipe (`custos scrub big.log | head`) is a normal end.
            Err(custos_scrub::ScrubError::Io(e)) if e.kind() == io::ErrorKind::BrokenPipe => {
                return Ok(())
            }
            Err(e) => return Err(e).context("scrubbing failed"),
        }
    }
    match out.flush() {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
        other => other.context("cannot write to stdout")?,
    }
    if args.report {
        eprintln!("{total}");
    }
    Ok(())
}

/// Configuration file first, then flags.
fn build(args: &ScrubArgs) -> anyhow::Result<Scrubber> {
    let mut builder = Scrubber::builder();
    if let Some(path) = &args.config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let config =
            ScrubConfig::from_toml(&text).with_context(|| format!("in {}", path.display()))?;
        builder = builder.config(&config)?;
    }
    if !args.detect.is_empty() {
        builder = builder.detect(args.detect.iter().cloned());
    }
    builder = builder
        .skip(args.skip.iter().cloned())
        .allow(args.allow.iter().cloned());
    if args.keep_private_ips {
        builder = builder.keep_private_ips(true);
    }
    if let Some(mode) = args.mode {
        builder = builder.mode(match mode {
            ModeArg::Redact => Mode::Redact,
            ModeArg::Mask => Mode::Mask,
            ModeArg::Pseudonymize => Mode::Pseudonymize,
            ModeArg::Hash => Mode::Hash,
        });
    }
    if let Some(text) = &args.key {
        let key = ScrubKey::parse(text.expose())
            .with_context(|| format!("{} (--key) is not a valid key", ScrubKey::ENV_VAR))?;
        builder = builder.key(key);
    }
    Ok(builder.build()?)
}
