//! Load generation, statistics and machine information shared by the suites.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one timed round of concurrent clients did.
#[derive(Debug, Default)]
pub(crate) struct Round {
    /// Successful operations.
    pub(crate) ok: u64,
    /// Failed operations.
    pub(crate) errors: u64,
    /// Wall time from start until the last client finished.
    pub(crate) secs: f64,
    /// Latency of every successful operation, in microseconds.
    pub(crate) lat_us: Vec<u64>,
    /// Successful operations per client.
    pub(crate) per_client_ok: Vec<u64>,
    /// The first error seen, for the report.
    pub(crate) first_error: Option<String>,
}

impl Round {
    /// Successful operations per second.
    pub(crate) fn rate(&self) -> f64 {
        if self.secs > 0.0 {
            self.ok as f64 / self.secs
        } else {
            0.0
        }
    }
}

/// Runs `clients` concurrent loops of `op(client, iteration)` for `dur`.
/// Each client starts its next operation only when the previous one is
/// answered (closed loop), as an application's worker would.
pub(crate) async fn run_for<F, Fut>(
    clients: usize,
    dur: Duration,
    op: Arc<F>,
) -> anyhow::Result<Round>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        let op = op.clone();
        set.spawn(async move {
            let mut out = Round::default();
            let mut i = 0u64;
            while start.elapsed() < dur {
                let t = Instant::now();
                match op(c, i).await {
                    Ok(()) => {
                        out.ok += 1;
                        out.lat_us.push(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
                i += 1;
            }
            (c, out)
        });
    }
    collect(set, clients, start).await
}

/// Runs `total` operations `op(client, n)` (n = 0..total, each once) on
/// `clients` concurrent loops.
pub(crate) async fn run_count<F, Fut>(
    clients: usize,
    total: u64,
    op: Arc<F>,
) -> anyhow::Result<Round>
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let start = Instant::now();
    let next = Arc::new(AtomicU64::new(0));
    let mut set = tokio::task::JoinSet::new();
    for c in 0..clients {
        let op = op.clone();
        let next = next.clone();
        set.spawn(async move {
            let mut out = Round::default();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    break;
                }
                let t = Instant::now();
                match op(c, n).await {
                    Ok(()) => {
                        out.ok += 1;
                        out.lat_us.push(t.elapsed().as_micros() as u64);
                    }
                    Err(e) => {
                        out.errors += 1;
                        if out.first_error.is_none() {
                            out.first_error = Some(format!("{e:#}"));
                        }
                    }
                }
            }
            (c, out)
        });
    }
    collect(set, clients, start).await
}

async fn collect(
    mut set: tokio::task::JoinSet<(usize, Round)>,
    clients: usize,
    start: Instant,
) -> anyhow::Result<Round> {
    let mut all = Round {
        per_client_ok: vec![0; clients],
        ..Round::default()
    };
    while let Some(r) = set.join_next().await {
        let (c, r) = r?;
        all.ok += r.ok;
        all.errors += r.errors;
        all.lat_us.extend(r.lat_us);
        if let Some(slot) = all.per_client_ok.get_mut(c) {
            *slot = r.ok;
        }
        if all.first_error.is_none() {
            all.first_error = r.first_error;
        }
    }
    all.secs = start.elapsed().as_secs_f64();
    Ok(all)
}

/// Nearest-rank percentile (`p` in 0..=100) of unsorted samples.
pub(crate) fn percentile(samples: &[u64], p: f64) -> u64 {
    let mut v = samples.to_vec();
    v.sort_unstable();
    percentile_sorted(&v, p)
}

fn percentile_sorted(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let idx = rank.clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().unwrap_or(0)
}

/// Median of floats (mean of the two middle ones for an even count).
pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return 0.0;
    }
    let hi = v.get(n / 2).copied().unwrap_or(0.0);
    if n % 2 == 1 {
        hi
    } else {
        let lo = v.get(n / 2 - 1).copied().unwrap_or(0.0);
        (lo + hi) / 2.0
    }
}

/// Microseconds as milliseconds with 2 decimals.
pub(crate) fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// Milliseconds (float) for display.
pub(crate) fn ms_f(us: f64) -> String {
    if us >= 100_000.0 {
        format!("{:.0} ms", us / 1000.0)
    } else {
        format!("{:.2} ms", us / 1000.0)
    }
}

/// Thousands separators.
pub(crate) fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A rate like `8,123/s`.
pub(crate) fn per_sec(r: f64) -> String {
    format!("{}/s", thousands(r.round() as u64))
}

/// Small deterministic PRNG (SplitMix64) for picking lookup targets; the
/// benchmark needs reproducible spread, not secrecy.
#[derive(Debug)]
pub(crate) struct SplitMix(u64);

impl SplitMix {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough value in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Facts about the machine that explain the figures.
#[derive(Debug)]
pub(crate) struct Machine {
    pub(crate) nproc: usize,
    pub(crate) cpu: String,
    pub(crate) kernel: String,
    pub(crate) loadavg: String,
    pub(crate) fsync_p50_us: u64,
    pub(crate) fsync_p99_us: u64,
    pub(crate) git: String,
}

impl Machine {
    /// Reads /proc and measures the latency of a 4 KiB write + fdatasync in
    /// `dir` (where the stores live): every durable commit pays at least one.
    pub(crate) fn probe(dir: &std::path::Path) -> anyhow::Result<Self> {
        let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        let loadavg = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "n/a".into());
        let git = std::process::Command::new("git")
            .args(["rev-parse", "--short", "HEAD"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|| "n/a".into());
        let (fsync_p50_us, fsync_p99_us) = fsync_latency(dir)?;
        Ok(Self {
            nproc,
            cpu,
            kernel,
            loadavg,
            fsync_p50_us,
            fsync_p99_us,
            git,
        })
    }
}

fn fsync_latency(dir: &std::path::Path) -> anyhow::Result<(u64, u64)> {
    use std::io::Write;
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    let mut lat = Vec::with_capacity(100);
    for _ in 0..100 {
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        lat.push(t.elapsed().as_micros() as u64);
    }
    drop(f);
    std::fs::remove_file(&path)?;
    Ok((percentile(&lat, 50.0), percentile(&lat, 99.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_median() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&[], 50.0), 0);
        assert!((median(&[3.0, 1.0, 2.0]) - 2.0).abs() < 1e-9);
        assert!((median(&[4.0, 1.0, 2.0, 3.0]) - 2.5).abs() < 1e-9);
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }
}
