//! Benchmark driver for `bench/scrub/run.sh`.
//!
//! `scrub_bench predict CORPUS.jsonl OUT.jsonl` writes custos' spans (char
//! offsets, detector names) for each corpus line and prints the median
//! detection time over 5 runs as JSON.
//! `scrub_bench throughput FILE [RUNS]` scrubs FILE (text format, all
//! detectors, one thread) into a sink and prints the median MB/s and lines/s.
//! `scrub_bench scrub FILE OUT` writes the scrubbed FILE to OUT (for diffs).

// A benchmark driver: aborting on bad input is fine.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::io::{BufRead, Write};
use std::time::Instant;

use custos_scrub::{Format, Scrubber};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let scrubber = Scrubber::new_default()?;
    match args.get(1).map(String::as_str) {
        Some("predict") => {
            let texts: Vec<String> = std::io::BufReader::new(std::fs::File::open(&args[2])?)
                .lines()
                .map(|l| -> Result<String, Box<dyn std::error::Error>> {
                    let v: serde_json::Value = serde_json::from_str(&l?)?;
                    Ok(v["text"].as_str().unwrap_or_default().to_owned())
                })
                .collect::<Result<_, _>>()?;
            let mut times = Vec::new();
            let mut found = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                found = texts
                    .iter()
                    .map(|t| scrubber.find(t.as_bytes()))
                    .collect::<Vec<_>>();
                times.push(t.elapsed().as_secs_f64());
            }
            let mut out = std::io::BufWriter::new(std::fs::File::create(&args[3])?);
            for (text, fs) in texts.iter().zip(&found) {
                let chars = |b: usize| text[..b].chars().count();
                let spans: Vec<_> = fs
                    .iter()
                    .map(|f| serde_json::json!([chars(f.start), chars(f.end), f.detector.name()]))
                    .collect();
                writeln!(out, "{}", serde_json::Value::Array(spans))?;
            }
            println!(
                "{}",
                serde_json::json!({"seconds": median(times), "texts": texts.len()})
            );
        }
        Some("throughput") => {
            let runs: usize = args.get(3).and_then(|r| r.parse().ok()).unwrap_or(3);
            let (mut mbs, mut lps) = (Vec::new(), Vec::new());
            let mut findings = 0;
            for _ in 0..runs {
                let file = std::fs::File::open(&args[2])?;
                let t = Instant::now();
                let report = scrubber.scrub_stream(file, std::io::sink(), Format::Text)?;
                let secs = t.elapsed().as_secs_f64();
                mbs.push(report.bytes as f64 / 1e6 / secs);
                lps.push(report.lines as f64 / secs);
                findings = report.total();
            }
            println!(
                "{}",
                serde_json::json!({"file": args[2], "mb_per_s": median(mbs), "lines_per_s": median(lps), "findings": findings})
            );
        }
        Some("scrub") => {
            // Scrubbed output of FILE (text format) to OUT, for comparisons.
            let file = std::fs::File::open(&args[2])?;
            let out = std::io::BufWriter::new(std::fs::File::create(&args[3])?);
            let report = scrubber.scrub_stream(file, out, Format::Text)?;
            println!("{report}");
        }
        _ => eprintln!(
            "usage: scrub_bench predict CORPUS OUT | throughput FILE [RUNS] | scrub FILE OUT"
        ),
    }
    Ok(())
}
