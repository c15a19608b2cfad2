//! The vault benchmark's Markdown report.

use std::fmt::Write as _;

use super::Outcome;
use crate::util;

/// The Markdown report of a run.
pub(crate) fn render(o: &Outcome, quick: bool) -> String {
    let m = &o.machine;
    let mut s = String::new();
    let cmd = if quick {
        "cargo run --release -p custos-bench -- vault --quick"
    } else {
        "cargo run --release -p custos-bench -- vault"
    };
    let _ = writeln!(s, "# custos vault benchmark\n");
    let _ = writeln!(s, "- command: `{cmd}`");
    let _ = writeln!(
        s,
        "- machine: nproc = {}, {}, {}; load average at start {}",
        m.nproc, m.cpu, m.kernel, m.loadavg
    );
    let _ = writeln!(
        s,
        "- store: embedded SQLite (WAL, synchronous = FULL) + SQLite key store in a temp dir; 4 KiB write + fdatasync there: p50 {}, p99 {}",
        util::ms(m.fsync_p50_us),
        util::ms(m.fsync_p99_us)
    );
    let _ = writeln!(
        s,
        "- server: custos_server::router in-process on 127.0.0.1 (axum), clients over loopback in the same tokio runtime (the vault's timed rounds: one hyper HTTP/1.1 connection per client; otherwise reqwest); commit {}",
        m.git
    );
    let _ = writeln!(
        s,
        "- total run time: {:.0} s; load average at end {}\n",
        o.elapsed.as_secs_f64(),
        std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "n/a".into())
    );
    let _ = writeln!(s, "| metric | figure (median / p99) | target | result |");
    let _ = writeln!(s, "|---|---|---|---|");
    for x in &o.metrics {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} |",
            x.name,
            x.figure,
            x.target,
            if x.pass { "PASS" } else { "**FAIL**" }
        );
    }
    if !o.notes.is_empty() {
        let _ = writeln!(s, "\nNotes:\n");
        for n in &o.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}
