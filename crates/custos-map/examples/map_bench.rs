//! Benchmark of `custos map check` on a large map: 200 systems × 50
//! datasets × 20 fields (200,000 fields), generated in memory.
//!
//! Run: `cargo run --release -p custos-map --example map_bench [-- RUNS [OUT.yaml]]`
//! It writes the map to OUT.yaml (or a file in the temporary directory),
//! then for each run reads the file and checks it (parse + validate, as
//! `custos map check` does). It prints the size of the map, the time of
//! each run with its split (read file, parse YAML, build the model,
//! validate, drop), and the medians. `bench/map/run.sh` also times the CLI
//! on the same file.

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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let out = args.next();
    let src = generate(200, 50, 20);
    let (path, temp) = match out {
        Some(p) => (std::path::PathBuf::from(p), false),
        None => (
            std::env::temp_dir().join(format!("custos-map-bench-{}.yaml", std::process::id())),
            true,
        ),
    };
    if let Err(e) = std::fs::write(&path, &src) {
        eprintln!("cannot write {}: {e}", path.display());
        std::process::exit(2);
    }
    drop(src);
    println!(
        "map: 200 systems x 50 datasets x 20 fields, {} bytes",
        std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0)
    );
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let mut totals = Vec::with_capacity(runs);
    let mut checks = Vec::with_capacity(runs);
    let mut phases: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for i in 0..runs {
        let start = Instant::now();
        let src = match std::fs::read_to_string(&path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("cannot read {}: {e}", path.display());
                std::process::exit(2);
            }
        };
        let read = start.elapsed();
        let check_start = Instant::now();
        let (diags, split) = custos_map::check_str_timed(&src, "bench.yaml");
        let check = ms(check_start.elapsed());
        drop(src);
        let total = ms(start.elapsed());
        let errors = diags.iter().filter(|d| d.is_error()).count();
        let mut line = format!("read {:.1}", ms(read));
        if phases.is_empty() {
            phases.push(("read", Vec::new()));
            phases.extend(split.iter().map(|(n, _)| (*n, Vec::new())));
        }
        if let Some((_, v)) = phases.first_mut() {
            v.push(ms(read));
        }
        for ((name, d), (_, v)) in split.iter().zip(phases.iter_mut().skip(1)) {
            let _ = write!(line, ", {name} {:.1}", ms(*d));
            v.push(ms(*d));
        }
        println!(
            "run {i}: check {check:.1} ms, with reading {total:.1} ms ({errors} errors, {} warnings) [{line}]",
            diags.len() - errors
        );
        totals.push(total);
        checks.push(check);
    }
    let split: Vec<String> = phases
        .iter_mut()
        .map(|(n, v)| format!("{n} {:.1}", median(v)))
        .collect();
    println!("split (medians, ms): {}", split.join(", "));
    println!(
        "median: {:.1} ms over {runs} runs (check: parse + validate); with reading the file {:.1} ms",
        median(&mut checks),
        median(&mut totals)
    );
    if temp {
        let _ = std::fs::remove_file(&path);
    }
}
