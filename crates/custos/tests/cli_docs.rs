//! The README and the demo's tour, run as printed, so neither can rot:
//! `custos demo` runs as a process (in a fresh directory, with its default
//! data directory, as a newcomer runs it); the tour it prints runs line by
//! line in one `bash -euo pipefail`, and every `curl` must get the HTTP
//! status the line's trailing comment names (200 when it names none);
//! README.md must show the same tour (keys, ids and the port aside); every
//! other command in README.md's code blocks is run here as well. The
//! configuration reference must list what `custos serve --help` does.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn repo(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(p)
}

fn custos() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_custos"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("CUSTOS_") {
            c.env_remove(k);
        }
    }
    c
}

/// `custos demo` as a process; killed when dropped.
struct Demo {
    child: Child,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Demo {
    fn start(dir: &Path) -> Self {
        let mut child = custos()
            .current_dir(dir)
            .args(["demo", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let sink = stdout.clone();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        Self {
            child,
            stdout,
            stderr,
        }
    }

    /// The printed tour: from the `export CUSTOS=` line to the blank line
    /// after it. Waits up to two minutes (a loaded machine, a debug build).
    fn tour(&mut self) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            {
                let out = self.stdout.lock().unwrap();
                if let Some(start) = out.iter().position(|l| l.starts_with("export CUSTOS=")) {
                    if let Some(len) = out[start..].iter().position(|l| l.trim().is_empty()) {
                        return out[start..start + len].to_vec();
                    }
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "custos demo exited ({status}) before printing its tour:\n{}\n{}",
                    self.stdout.lock().unwrap().join("\n"),
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no tour printed within 2 minutes:\n{}",
                self.stdout.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HTTP status a tour line expects: its trailing comment's leading
/// number (`# 410: erased`), else 200.
fn expected_status(line: &str) -> u16 {
    line.rsplit_once("  # ")
        .and_then(|(_, comment)| comment.get(..3))
        .and_then(|d| d.parse().ok())
        .unwrap_or(200)
}

/// Fenced `sh` blocks of a markdown file, as lists of lines.
fn sh_blocks(markdown: &str) -> Vec<Vec<String>> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<String>> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_start()) {
            (None, l) if l.starts_with("```sh") || l.starts_with("```bash") => {
                current = Some(Vec::new())
            }
            (Some(_), l) if l.starts_with("```") => blocks.extend(current.take()),
            (Some(b), _) => b.push(line.to_owned()),
            _ => {}
        }
    }
    blocks
}

/// An `export A=… B=…` line's variable names; `None` for other lines.
fn exported_names(line: &str) -> Option<Vec<&str>> {
    let rest = line.strip_prefix("export ")?;
    Some(
        rest.split_whitespace()
            .map(|w| w.split_once('=').map_or(w, |(n, _)| n))
            .collect(),
    )
}

/// README.md's tour is the demo's, but for the values of its `export`
/// lines (keys, ids, the port).
fn assert_readme_shows(printed: &[String], readme: &str) {
    let blocks = sh_blocks(readme);
    let shown = blocks
        .iter()
        .find(|b| b.first().is_some_and(|l| l.starts_with("export CUSTOS=")))
        .expect("README.md has a ```sh block starting with `export CUSTOS=`: the demo's tour");
    let mut diffs = Vec::new();
    for i in 0..printed.len().max(shown.len()) {
        let (p, s) = (printed.get(i), shown.get(i));
        let same = match (p, s) {
            (Some(p), Some(s)) => match (exported_names(p), exported_names(s)) {
                (Some(a), Some(b)) => a == b,
                _ => p.trim_end() == s.trim_end(),
            },
            _ => false,
        };
        if !same {
            diffs.push(format!(
                "line {}:\n  demo:   {}\n  README: {}",
                i + 1,
                p.map_or("(none)", |s| s.as_str()),
                s.map_or("(none)", |s| s.as_str())
            ));
        }
    }
    assert!(
        diffs.is_empty(),
        "README.md's tour differs from what `custos demo` prints \
         (crates/custos/src/cli/demo.rs):\n{}",
        diffs.join("\n")
    );
}

fn tools_present() -> bool {
    ["curl", "jq"].iter().all(|t| {
        Command::new(t)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// Runs the tour in one bash; returns the HTTP statuses per tour line.
fn run_tour(tour: &[String], dir: &Path) -> BTreeMap<usize, Vec<String>> {
    let log = dir.join("statuses.log");
    // `curl` is wrapped: it runs as written and notes the status of its
    // last response (`-D` dumps the headers) against the line it is on.
    let mut script = String::from(
        r#"set -euo pipefail
curl() {
  local h rc=0
  h=$(mktemp)
  command curl -D "$h" "$@" || rc=$?
  printf '%s %s\n' "$TOUR_LINE" "$(awk '/^HTTP\//{s=$2} END{print s}' "$h")" >>"$TOUR_LOG"
  rm -f "$h"
  return $rc
}
"#,
    );
    for (i, line) in tour.iter().enumerate() {
        script.push_str(&format!("TOUR_LINE={}\n{line}\n", i + 1));
    }
    let script_path = dir.join("tour.sh");
    std::fs::write(&script_path, script).unwrap();
    let out_path = dir.join("tour.out");
    let err_path = dir.join("tour.err");
    let mut bash = Command::new("bash")
        .arg(&script_path)
        .current_dir(dir)
        .env("TOUR_LOG", &log)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .unwrap();
    // Two requests wait for the executor: generous on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(300);
    let status = loop {
        if let Some(s) = bash.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = bash.kill();
            let _ = bash.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let log = std::fs::read_to_string(&log).unwrap_or_default();
    let mut statuses: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for l in log.lines() {
        let (n, code) = l.split_once(' ').unwrap_or((l, ""));
        statuses
            .entry(n.parse().unwrap())
            .or_default()
            .push(code.to_owned());
    }
    let report = || {
        let tail = |p: &Path| {
            let s = std::fs::read_to_string(p).unwrap_or_default();
            s.chars()
                .rev()
                .take(3000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<String>()
        };
        format!(
            "statuses by line: {statuses:?}\n--- stdout (end)\n{}\n--- stderr (end)\n{}",
            tail(&out_path),
            tail(&err_path)
        )
    };
    match status {
        None => panic!("the tour did not finish within 5 minutes\n{}", report()),
        Some(s) if !s.success() => {
            let last = statuses.keys().last().copied().unwrap_or(0);
            panic!(
                "the tour failed ({s}); last line with a response: {last}\n{}",
                report()
            )
        }
        Some(_) => statuses,
    }
}

/// Every `curl` of a line got the status its comment names.
fn assert_statuses(tour: &[String], statuses: &BTreeMap<usize, Vec<String>>) {
    let mut wrong = Vec::new();
    for (i, line) in tour.iter().enumerate() {
        if !line.contains("curl ") {
            continue;
        }
        let want = expected_status(line).to_string();
        match statuses.get(&(i + 1)) {
            None => wrong.push(format!("line {}: no response: {line}", i + 1)),
            Some(got) if got.iter().any(|g| *g != want) => {
                wrong.push(format!("line {}: got {got:?}, want {want}: {line}", i + 1))
            }
            Some(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "tour lines answered otherwise than their comments say:\n{}",
        wrong.join("\n")
    );
}

/// The other commands of README.md's code blocks: `custos …` (or `cargo
/// run … -p custos -- …`) lines run here, against what the demo left in
/// `dir`; `cargo test --workspace` is what `.ci/run` runs. Anything else
/// is a command no test runs, and fails.
fn run_readme_commands(readme: &str, dir: &Path) {
    let ci = std::fs::read_to_string(repo(".ci/run")).unwrap();
    for block in sh_blocks(readme) {
        if block
            .first()
            .is_some_and(|l| l.starts_with("export CUSTOS="))
        {
            continue; // the tour
        }
        for raw in block {
            let line = raw
                .split_once("  #")
                .map_or(raw.as_str(), |(c, _)| c)
                .trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line == "cargo test --workspace" {
                assert!(
                    ci.contains("cargo test --workspace"),
                    ".ci/run no longer runs README's `cargo test --workspace`"
                );
                continue;
            }
            let args = line
                .strip_prefix("cargo run --release -p custos -- ")
                .or_else(|| line.strip_prefix("custos "))
                .unwrap_or_else(|| panic!("README.md shows `{line}`, which no test runs"));
            assert!(
                !args.contains(['"', '\'', '|', '>', '<', '$', '&', ';']),
                "README command `{line}`: keep it plain words, so this test can run it"
            );
            let args: Vec<&str> = args.split_whitespace().collect();
            if args == ["demo"] {
                continue; // the process this test started
            }
            let out = custos().current_dir(dir).args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "README command `{line}` failed ({}):\n{}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

#[test]
fn readme_and_demo_tour_run_as_printed() {
    let dir = tempfile::tempdir().unwrap();
    let mut demo = Demo::start(dir.path());
    let tour = demo.tour();
    let readme = std::fs::read_to_string(repo("README.md")).unwrap();
    assert_readme_shows(&tour, &readme);

    if tools_present() {
        let statuses = run_tour(&tour, dir.path());
        assert_statuses(&tour, &statuses);
        // The access archive was downloaded: a ZIP with the page for people
        // and Jane's avatar from the demo's uploads.
        let zip = std::fs::read(dir.path().join("jane.zip")).expect("jane.zip downloaded");
        assert!(zip.starts_with(b"PK\x03\x04"), "jane.zip is not a ZIP");
        for name in [
            "index.html",
            "avatars/u-1/avatar.png",
            "data/app/invoices.json",
        ] {
            assert!(
                zip.windows(name.len()).any(|w| w == name.as_bytes()),
                "jane.zip lacks {name}"
            );
        }
        // Notices to the map's recipient went to the demo's outbox.
        let outbox = dir.path().join("custos-demo/outbox");
        let mails = std::fs::read_dir(&outbox).unwrap().count();
        assert!(mails >= 2, "{mails} mails in {}", outbox.display());
    } else if std::env::var("CUSTOS_REQUIRE_TOOLS").is_ok_and(|v| v == "1") {
        panic!("CUSTOS_REQUIRE_TOOLS=1 but curl or jq is missing: the tour needs both");
    } else {
        custos_testkit::report_skip(
            "the tour needs curl and jq",
            "install curl and jq; CUSTOS_REQUIRE_TOOLS=1 makes this a failure",
        );
    }

    run_readme_commands(&readme, dir.path());
    drop(demo);
}

/// Every setting docs/configuration.md documents for `custos serve` is a
/// flag of `custos serve --help`, with its variable: the reference and the
/// binary cannot drift apart, and nothing is read from the environment
/// behind the help's back.
#[test]
fn every_documented_setting_is_in_serve_help() {
    let doc = std::fs::read_to_string(repo("docs/configuration.md")).expect("configuration.md");
    let section = doc
        .split("## `custos serve`")
        .nth(1)
        .and_then(|s| s.split("### Settings the map names").next())
        .expect("the serve section");
    let help = custos().args(["serve", "--help"]).output().expect("help");
    assert!(help.status.success());
    let help = String::from_utf8_lossy(&help.stdout);
    let mut seen = 0;
    for row in section.lines().filter(|l| l.starts_with("| `--")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        let flags = cells.get(1).copied().unwrap_or_default();
        let vars = cells.get(2).copied().unwrap_or_default();
        for name in flags.split(", ").chain(vars.split(", ")) {
            let name = name.trim_matches('`');
            assert!(
                help.contains(name),
                "docs/configuration.md documents {name}, which `custos serve --help` does not list"
            );
            seen += 1;
        }
    }
    assert!(seen >= 30, "the table was not read ({seen} names)");
}

/// `--show-config` prints the effective configuration with every secret
/// as `***`.
#[test]
fn show_config_hides_secrets() {
    let out = custos()
        .args(["serve", "--show-config"])
        .env("CUSTOS_ADMIN_TOKEN", "admin-hunter2")
        .env("CUSTOS_ROOT_KEY", "root-hunter2")
        .env("CUSTOS_DATABASE_URL", "postgres://u:db-hunter2@h/d")
        .env("CUSTOS_SMTP_URL", "smtp://u:smtp-hunter2@h")
        .env("CUSTOS_SCRUB_KEY", "scrub-hunter2")
        .env("CUSTOS_MAIL_FROM", "custos@example.com")
        .output()
        .expect("show-config");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(
        text.contains("***") && text.contains("custos@example.com"),
        "{text}"
    );
    let help = custos()
        .args(["serve", "--help"])
        .env("CUSTOS_ADMIN_TOKEN", "admin-hunter2")
        .output()
        .expect("help");
    assert!(!String::from_utf8_lossy(&help.stdout).contains("hunter2"));
}
