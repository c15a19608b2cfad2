//! Benchmark of `custos map check` on a large map: 200 systems × 50
//! datasets × 20 fields (200,000 fields), generated in memory.
//!
//! Run: `cargo run --release -p custos-map --example map_bench [-- RUNS [OUT.yaml]]`
//! It prints the size of the map, the time of each full check (parse +
//! validate), and the median. With OUT.yaml it also writes the map, so the
//! CLI can be timed on it (`bench/map/run.sh`).

use std::fmt::Write as _;
use std::time::Instant;

fn generate(systems: usize, datasets: usize, fields: usize) -> String {
    let mut o = String::with_capacity(systems * datasets * fields * 60);
    o.push_str("organisation:\n  controller: Bench GmbH\n  contact: privacy@bench.example\n");
    o.push_str("purposes:\n  - id: service\n    title: Provide the service\n    legal_basis: contract\n    subjects: [customer]\n");
    o.push_str("systems:\n");
    const CATS: [&str; 5] = [
        "user.contact.email",
        "user.name",
        "user.device.ip_address",
        "system.operations",
        "user.behavior",
    ];
    for s in 0..systems {
        let _ = writeln!(o, "  - id: sys{s}\n    kind: postgres\n    connection: {{ url_env: SYS{s}_URL }}\n    datasets:");
        for d in 0..datasets {
            let _ = writeln!(
                o,
                "      - id: t{d}\n        table: t{d}\n        purposes: [service]\n        erasure: delete\n        retention: {{ period: 3y, from_column: f0 }}\n        fields:"
            );
            for f in 0..fields {
                let cat = CATS.get(f % CATS.len()).copied().unwrap_or("user");
                if f == 1 {
                    let _ = writeln!(
                        o,
                        "          - {{ name: f{f}, category: {cat}, identity: email }}"
                    );
                } else {
                    let _ = writeln!(o, "          - {{ name: f{f}, category: {cat} }}");
                }
            }
        }
    }
    o
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let out = args.next();
    let src = generate(200, 50, 20);
    if let Some(path) = out {
        if let Err(e) = std::fs::write(&path, &src) {
            eprintln!("cannot write {path}: {e}");
            std::process::exit(2);
        }
    }
    println!(
        "map: 200 systems x 50 datasets x 20 fields, {} bytes",
        src.len()
    );
    let mut times = Vec::with_capacity(runs);
    for i in 0..runs {
        let start = Instant::now();
        let diags = custos_map::check_str(&src, "bench.yaml");
        let ms = start.elapsed().as_secs_f64() * 1000.0;
        let errors = diags.iter().filter(|d| d.is_error()).count();
        println!(
            "run {i}: {ms:.1} ms ({errors} errors, {} warnings)",
            diags.len() - errors
        );
        times.push(ms);
    }
    times.sort_by(f64::total_cmp);
    if let Some(median) = times.get(times.len() / 2) {
        println!("median: {median:.1} ms over {runs} runs");
    }
}
