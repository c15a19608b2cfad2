//! Tidy checks of the workspace, run as ordinary tests (as rust-analyzer
//! does): the layering of the crates, a core without I/O, libraries that
//! read no environment, a writer that knows no domain, and files of a
//! readable length. Each failure says which file or manifest breaks which
//! rule.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every crate's manifest, by crate name.
fn manifests() -> BTreeMap<String, toml::Table> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let path = entry.unwrap().path().join("Cargo.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let table: toml::Table = text.parse().unwrap();
        let name = table["package"]["name"].as_str().unwrap().to_owned();
        out.insert(name, table);
    }
    out
}

fn deps<'a>(manifest: &'a toml::Table, section: &str) -> Vec<&'a str> {
    manifest
        .get(section)
        .and_then(|d| d.as_table())
        .map(|t| t.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// Rust sources under `dir`, without their `#[cfg(test)]` tails.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                // `tests.rs`-style submodules hold only tests.
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                if p.file_name().is_some_and(|n| n == "tests.rs") {
                    continue;
                }
                out.push((p, without_tests(&text)));
            }
        }
    }
    out
}

/// `text` without its top-level `#[cfg(test)] mod … { … }` blocks (and
/// `#[cfg(test)] mod tests;` lines).
fn without_tests(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line == "#[cfg(test)]" && lines.peek().is_some_and(|l| l.starts_with("mod ")) {
            let head = lines.next().unwrap_or_default();
            if head.ends_with('{') {
                for l in lines.by_ref() {
                    if l == "}" {
                        break;
                    }
                }
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The layers, bottom up. A crate depends only on crates of lower layers:
/// arrows point down, so there is no cycle and no surface reached from a
/// library.
const LAYERS: &[&[&str]] = &[
    &["custos-core"],
    &["custos-map", "custos-scrub"],
    &["custos-store", "custos-connectors"],
    &["custos-dsr", "custos-testkit"],
    &["custos-server"],
    &["custos"],
    &["custos-bench"],
];

fn layer(name: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| l.contains(&name))
        .unwrap_or_else(|| panic!("crate {name} has no layer in tidy.rs's LAYERS: add it"))
}

#[test]
fn dependencies_point_down_only() {
    let all = manifests();
    for (name, m) in &all {
        for dep in deps(m, "dependencies") {
            if all.contains_key(dep) {
                assert!(
                    layer(dep) < layer(name),
                    "{name} depends on {dep}, which is not below it (see LAYERS in tidy.rs)"
                );
            }
        }
    }
    // The test kit serves whatever router it is given: no surface crate.
    let kit = deps(&all["custos-testkit"], "dependencies");
    for surface in ["custos-server", "custos", "custos-dsr"] {
        assert!(
            !kit.contains(&surface),
            "custos-testkit depends on {surface}"
        );
    }
}

#[test]
fn the_core_does_no_io() {
    let all = manifests();
    let core = &all["custos-core"];
    for dep in deps(core, "dependencies") {
        assert!(
            ![
                "tokio",
                "sqlx",
                "axum",
                "reqwest",
                "rusqlite",
                "hyper",
                "getrandom",
                "rand"
            ]
            .contains(&dep),
            "custos-core depends on {dep}: the core does no I/O"
        );
    }
    let rand_core = &core["dependencies"]["rand_core"];
    let features = rand_core
        .get("features")
        .and_then(|f| f.as_array())
        .map(|a| a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>())
        .unwrap_or_default();
    assert!(
        !features.contains(&"getrandom"),
        "custos-core enables rand_core's getrandom: callers hand in randomness"
    );
    for (path, code) in sources(&root().join("crates/custos-core/src")) {
        for forbidden in [
            "std::env",
            "std::fs",
            "TcpStream",
            "TcpListener",
            "UdpSocket",
            "ToSocketAddrs",
            "SystemTime",
            "Instant::now",
            "now_utc",
            "OsRng",
            "thread_rng",
        ] {
            assert!(
                !code.contains(forbidden),
                "{} uses {forbidden}: the core reads no clock, environment, file or socket \
                 and draws no randomness (take them as parameters)",
                path.display()
            );
        }
    }
}

#[test]
fn libraries_read_no_environment() {
    // The binary reads its configuration; the test kit and the benchmarks
    // find their servers.
    let readers = ["custos", "custos-testkit", "custos-bench"];
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        if readers.contains(&name.as_str()) {
            continue;
        }
        for (path, code) in sources(&dir.join("src")) {
            for reader in ["env::var(", "env::var_os(", "env::vars(", "env::vars_os("] {
                // Doc comments may show how a caller does it.
                let found = code
                    .lines()
                    .any(|l| l.contains(reader) && !l.trim_start().starts_with("//"));
                assert!(
                    !found,
                    "{} reads the environment ({reader}…): libraries take values; \
                     the binary's configuration reads them",
                    path.display()
                );
            }
        }
    }
}

#[test]
fn the_writer_knows_no_domain() {
    let dir = root().join("crates/custos-store/src/writer");
    for (path, code) in sources(&dir) {
        for line in code.lines().filter(|l| l.contains("crate::")) {
            for domain in ["vault", "consent", "request", "execution"] {
                assert!(
                    !line.contains(&format!("crate::{domain}")),
                    "{} names the {domain} module: domain modules hand the writer a Change \
                     or an AuditedRead, the writer never calls them",
                    path.display()
                );
            }
        }
    }
}

/// Files a stranger can read: none under `crates/*/src` above 1,000
/// lines unless its module doc says why ("This file is long because").
#[test]
fn source_files_stay_readable() {
    for entry in std::fs::read_dir(root().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        let mut stack = vec![src];
        while let Some(d) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in rd {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                    continue;
                }
                if p.extension().is_none_or(|e| e != "rs") {
                    continue;
                }
                let text = std::fs::read_to_string(&p).unwrap();
                assert!(
                    text.starts_with("//!"),
                    "{} does not open with a //! paragraph on its role",
                    p.display()
                );
                let lines = text.lines().count();
                assert!(
                    lines <= 1000 || text.contains("This file is long because"),
                    "{} has {lines} lines: split it along its seams or say why at its top",
                    p.display()
                );
            }
        }
    }
}
