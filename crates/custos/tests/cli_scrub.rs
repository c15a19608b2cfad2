//! `custos scrub` end to end: stdin/stdout, files, formats, report, keys.

// Test helpers outside #[test] fns: a failed unwrap is a failed test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

fn scrub(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custos"));
    cmd.arg("scrub").args(args).env_remove("CUSTOS_SCRUB_KEY");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn stdin_to_stdout_with_report() {
    let out = scrub(
        &["--report"],
        b"mail ann@corp.io from 203.0.113.9\n\xff\xfe raw\n",
        &[],
    );
    assert!(out.status.success());
    assert_eq!(out.stdout, b"mail [EMAIL] from [IPV4]\n\xff\xfe raw\n");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("email") && err.contains("ipv4") && !err.contains("ann@corp.io"),
        "{err}"
    );
}

#[test]
fn json_format_keeps_keys() {
    let out = scrub(
        &["--format", "json"],
        b"{\"ann@corp.io\":1,\"to\":\"ann@corp.io\"}\n",
        &[],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"ann@corp.io\":1,\"to\":\"[EMAIL]\"}\n"
    );
}

#[test]
fn files_detect_skip_and_allow() {
    let dir = std::env::temp_dir().join(format!("custos-cli-scrub-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("in.log");
    std::fs::write(&file, "ann@corp.io help@custos.example 203.0.113.9\n").unwrap();
    let path = file.to_str().unwrap();
    let out = scrub(
        &["--detect", "email", "--allow", "help@custos.example", path],
        b"",
        &[],
    );
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "[EMAIL] help@custos.example 203.0.113.9\n"
    );
    let out = scrub(&["--skip", "email", path], b"", &[]);
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ann@corp.io help@custos.example [IPV4]\n"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn keyed_modes_need_a_key() {
    let out = scrub(&["--mode", "pseudonymize"], b"ann@corp.io\n", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("scrub.missing_key"));
    let key = "00".repeat(32);
    let out = scrub(
        &["--mode", "pseudonymize"],
        b"ann@corp.io\nANN@corp.io\n",
        &[("CUSTOS_SCRUB_KEY", &key)],
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0], lines[1]);
    assert!(lines[0].starts_with("email:"));
}

#[test]
fn unknown_detector_is_an_error() {
    let out = scrub(&["--skip", "nope"], b"", &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("scrub.unknown_detector"));
}
