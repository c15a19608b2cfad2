//! The file-tree connector on real temp directories: uploads with derived
//! thumbnails, traversal attempts, symlinks leading out of the root.

use std::fs;
use std::path::{Path, PathBuf};

use custos_connectors::files::FileConnector;
use custos_connectors::{Connector, ConnectorError, Person};
use custos_map::System;
use serde_json::json;

use super::{outcome, person};

fn fields() -> serde_json::Value {
    json!([
        { "name": "user_id", "category": "user.unique_id", "identity": "user_id" },
        { "name": "image", "category": "user.content.self_image" }
    ])
}

/// The demo map's `uploads`, on a local root, plus a per-subject export.
fn uploads() -> System {
    serde_json::from_value(json!({
        "id": "uploads",
        "kind": "files",
        "connection": { "root_env": "UPLOADS_ROOT" },
        "datasets": [
            {
                "id": "avatars",
                "path": "avatars/{user_id}/*",
                "subject": { "identity": "user_id" },
                "purposes": ["account"],
                "erasure": "delete",
                "fields": fields()
            },
            {
                "id": "thumbnails",
                "path": "thumbs/{user_id}/*",
                "derived_from": "avatars",
                "purposes": ["account"],
                "fields": [{ "name": "image", "category": "user.content.self_image" }]
            },
            {
                "id": "exports",
                "path": "exports/{subject}.json",
                "purposes": ["account"],
                "erasure": "delete",
                "fields": [{ "name": "doc", "category": "user.content.private" }]
            },
            {
                "id": "static",
                "path": "static/*",
                "fields": [{ "name": "logo", "category": "system.operations" }]
            }
        ]
    }))
    .unwrap()
}

fn connect(system: &System, root: &Path) -> Result<FileConnector, ConnectorError> {
    let root = root.display().to_string();
    FileConnector::connect(system, &move |k| {
        (k == "UPLOADS_ROOT").then(|| root.clone())
    })
}

fn write(p: &Path, bytes: &[u8]) {
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

/// A temp dir with `root/` inside and a sentinel beside it.
struct Tree {
    _tmp: tempfile::TempDir,
    base: PathBuf,
    root: PathBuf,
}

impl Tree {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().canonicalize().unwrap();
        let root = base.join("root");
        for (p, b) in [
            ("avatars/42/me.png", &b"me-42"[..]),
            ("avatars/42/old.jpg", b"old-42"),
            ("avatars/420/me.png", b"me-420"),
            ("avatars/7/me.png", b"me-7"),
            ("thumbs/42/me_64.png", b"t-42"),
            ("thumbs/7/me_64.png", b"t-7"),
            ("exports/subj-42.json", b"{\"a\":42}"),
            ("exports/subj-7.json", b"{\"a\":7}"),
            ("static/logo.svg", b"<svg/>"),
        ] {
            write(&root.join(p), b);
        }
        write(&base.join("sentinel.txt"), b"outside");
        write(&base.join("etc/passwd"), b"root:x:0:0");
        Self {
            _tmp: tmp,
            base,
            root,
        }
    }

    fn exists(&self, rel: &str) -> bool {
        self.root.join(rel).exists()
    }

    /// Every file under root and base, relative to base, sorted.
    fn snapshot(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![self.base.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let ft = e.file_type().unwrap();
                let p = e.path();
                let rel = p.strip_prefix(&self.base).unwrap().display().to_string();
                if ft.is_dir() {
                    out.push((format!("{rel}/"), Vec::new()));
                    stack.push(p);
                } else if ft.is_symlink() {
                    out.push((format!("{rel}@"), Vec::new()));
                } else {
                    out.push((rel, fs::read(&p).unwrap()));
                }
            }
        }
        out.sort();
        out
    }
}

#[tokio::test]
async fn access_finds_the_persons_files_and_none_of_others() {
    let t = Tree::new();
    let c = connect(&uploads(), &t.root).unwrap();
    let exports = c.access(&person(&["42"], &["subj-42"])).await.unwrap();
    // Datasets without personal data (`static`) do not take part.
    let ids: Vec<&str> = exports.iter().map(|e| e.dataset.as_str()).collect();
    assert_eq!(ids, ["avatars", "thumbnails", "exports"]);

    let avatars = &exports[0];
    let names: Vec<&str> = avatars.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["avatars/42/me.png", "avatars/42/old.jpg"]);
    assert_eq!(avatars.files[0].bytes, b"me-42");
    assert_eq!(avatars.records.len(), 2);
    assert_eq!(avatars.records[0]["name"], "avatars/42/me.png");
    assert_eq!(avatars.records[0]["size"], 5);
    assert!(avatars.records[0]["modified"]
        .as_str()
        .unwrap()
        .contains('T'));

    assert_eq!(exports[1].files.len(), 1);
    assert_eq!(exports[1].files[0].name, "thumbs/42/me_64.png");
    assert_eq!(exports[2].files.len(), 1);
    assert_eq!(exports[2].files[0].bytes, b"{\"a\":42}");
    // The export never prints its content.
    assert!(!format!("{exports:?}").contains("me-42"));

    // Nobody known: nothing found.
    let none = c.access(&Person::new()).await.unwrap();
    assert!(none.iter().all(|e| e.files.is_empty()));
}

#[tokio::test]
async fn erase_removes_files_and_derived_files_keeps_others_and_is_idempotent() {
    let t = Tree::new();
    let c = connect(&uploads(), &t.root).unwrap();
    let p = person(&["42"], &["subj-42"]);

    let plan = c.plan_erasure(&p).await.unwrap();
    assert_eq!(outcome(&plan, "avatars").found, 2);
    assert_eq!(outcome(&plan, "avatars").deleted, 2);
    assert_eq!(outcome(&plan, "thumbnails").deleted, 1);
    assert_eq!(outcome(&plan, "exports").deleted, 1);
    // A dry run changes nothing.
    assert!(t.exists("avatars/42/me.png"));

    let done = c.erase(&p).await.unwrap();
    assert_eq!(outcome(&done, "avatars").deleted, 2);
    assert_eq!(outcome(&done, "thumbnails").deleted, 1);
    assert_eq!(outcome(&done, "exports").deleted, 1);
    assert!(!t.exists("avatars/42/me.png"));
    assert!(!t.exists("thumbs/42/me_64.png"));
    assert!(!t.exists("exports/subj-42.json"));
    // The person's now-empty directories go; the template's fixed
    // directories stay.
    assert!(!t.exists("avatars/42"));
    assert!(!t.exists("thumbs/42"));
    assert!(t.exists("avatars"));
    assert!(t.exists("exports"));
    // Others' files stay.
    for f in [
        "avatars/420/me.png",
        "avatars/7/me.png",
        "thumbs/7/me_64.png",
        "exports/subj-7.json",
        "static/logo.svg",
    ] {
        assert!(t.exists(f), "{f}");
    }

    let again = c.erase(&p).await.unwrap();
    assert!(
        again.iter().all(|o| o.found == 0 && o.deleted == 0),
        "{again:?}"
    );
    let plan = c.plan_erasure(&p).await.unwrap();
    assert!(plan.iter().all(|o| o.found == 0));
}

#[tokio::test]
async fn the_persons_empty_directory_goes_but_not_one_still_in_use() {
    let t = Tree::new();
    fs::create_dir_all(t.root.join("avatars/55")).unwrap();
    let c = connect(&uploads(), &t.root).unwrap();
    c.erase(&person(&["55"], &[])).await.unwrap();
    assert!(
        !t.exists("avatars/55"),
        "a directory named by the person goes"
    );
    // Someone wrote a file meanwhile: the directory stays with it.
    write(&t.root.join("thumbs/42/new.png"), b"n");
    fs::create_dir_all(t.root.join("thumbs/42/sub")).unwrap();
    write(&t.root.join("thumbs/42/sub/deep.png"), b"d");
    let done = c.erase(&person(&["42"], &[])).await.unwrap();
    assert_eq!(outcome(&done, "thumbnails").deleted, 3);
    assert!(!t.exists("thumbs/42"));
    assert!(t.exists("thumbs/7/me_64.png"));
}

#[tokio::test]
async fn traversal_and_glob_values_are_harmless() {
    let t = Tree::new();
    // A user whose id is literally `*` has a directory named `*`.
    write(&t.root.join("avatars/*/star.png"), b"star");
    let before = t.snapshot();
    let c = connect(&uploads(), &t.root).unwrap();
    let evil = person(
        &[
            "..",
            ".",
            "../../etc/passwd",
            "../sentinel.txt",
            "a/b",
            "..\\..\\etc",
            "?",
            "4?",
            "[0-9]*",
            "42\0",
            ".hidden",
        ],
        &["../sentinel", "*", "subj-*", "../root/exports/subj-42"],
    );
    let exports = c.access(&evil).await.unwrap();
    assert!(exports.iter().all(|e| e.files.is_empty()), "{exports:?}");
    let plan = c.plan_erasure(&evil).await.unwrap();
    assert!(plan.iter().all(|o| o.found == 0), "{plan:?}");
    let done = c.erase(&evil).await.unwrap();
    assert!(
        done.iter().all(|o| o.found == 0 && o.deleted == 0),
        "{done:?}"
    );
    assert_eq!(
        t.snapshot(),
        before,
        "nothing inside or outside the root changed"
    );

    // The value `*` matches the directory literally named `*`, and only it.
    let star = person(&["*"], &[]);
    let exports = c.access(&star).await.unwrap();
    let names: Vec<&str> = exports[0].files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["avatars/*/star.png"]);
    let done = c.erase(&star).await.unwrap();
    assert_eq!(outcome(&done, "avatars").deleted, 1);
    assert!(!t.exists("avatars/*"));
    for f in [
        "avatars/42/me.png",
        "avatars/420/me.png",
        "avatars/7/me.png",
    ] {
        assert!(t.exists(f), "{f}");
    }
    assert!(t.base.join("sentinel.txt").exists());
    assert!(t.base.join("etc/passwd").exists());
}

#[cfg(unix)]
#[tokio::test]
async fn symlinks_leading_out_of_the_root_are_not_followed() {
    use std::os::unix::fs::symlink;
    let t = Tree::new();
    let outside = t.base.join("outside");
    write(&outside.join("secret.txt"), b"secret");
    // A file link inside the person's directory pointing out of the root.
    symlink(
        t.base.join("sentinel.txt"),
        t.root.join("avatars/42/escape.png"),
    )
    .unwrap();
    // A whole user directory that is a link out of the root.
    symlink(&outside, t.root.join("avatars/99")).unwrap();
    // A link to the root's parent as a thumbnail directory.
    symlink(&t.base, t.root.join("thumbs/98")).unwrap();
    // A link that stays inside the root is fine.
    symlink(
        t.root.join("avatars/7/me.png"),
        t.root.join("avatars/42/inside.png"),
    )
    .unwrap();

    let c = connect(&uploads(), &t.root).unwrap();
    let exports = c.access(&person(&["42"], &[])).await.unwrap();
    let names: Vec<&str> = exports[0].files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "avatars/42/inside.png",
            "avatars/42/me.png",
            "avatars/42/old.jpg"
        ]
    );
    for who in ["99", "98"] {
        let e = c.access(&person(&[who], &[])).await.unwrap();
        assert!(e.iter().all(|e| e.files.is_empty()), "{who}");
        let d = c.erase(&person(&[who], &[])).await.unwrap();
        assert!(d.iter().all(|o| o.deleted == 0), "{who}");
    }
    let done = c.erase(&person(&["42"], &[])).await.unwrap();
    assert_eq!(outcome(&done, "avatars").deleted, 3);
    // The inside link was removed, not its target; the escaping link was
    // left alone, and so was what it points to.
    assert!(t.exists("avatars/7/me.png"));
    assert!(fs::symlink_metadata(t.root.join("avatars/42/escape.png")).is_ok());
    assert_eq!(fs::read(t.base.join("sentinel.txt")).unwrap(), b"outside");
    assert_eq!(fs::read(outside.join("secret.txt")).unwrap(), b"secret");
    assert!(t.base.join("etc/passwd").exists());
}

#[tokio::test]
async fn retained_files_stay_and_are_counted_with_their_ground() {
    let t = Tree::new();
    let mut sys = uploads();
    sys.datasets[0].erasure = Some(
        serde_json::from_value(json!({
            "retain": { "ground": "§147 AO", "period": "10y", "from_event": "upload" }
        }))
        .unwrap(),
    );
    let c = connect(&sys, &t.root).unwrap();
    let p = person(&["42"], &[]);
    let plan = c.plan_erasure(&p).await.unwrap();
    let a = outcome(&plan, "avatars");
    assert_eq!((a.found, a.deleted, a.retained), (2, 0, 2));
    assert_eq!(a.retained_ground.as_deref(), Some("§147 AO"));
    // Thumbnails name no erasure of their own: they follow their source.
    assert_eq!(outcome(&plan, "thumbnails").retained, 1);
    let done = c.erase(&p).await.unwrap();
    let a = outcome(&done, "avatars");
    assert_eq!((a.found, a.deleted, a.retained), (2, 0, 2));
    assert!(t.exists("avatars/42/me.png"));
    assert!(t.exists("thumbs/42/me_64.png"));
}

#[tokio::test]
async fn identify_and_rectify_do_nothing() {
    let t = Tree::new();
    let c = connect(&uploads(), &t.root).unwrap();
    let p = person(&["42"], &[]);
    assert!(c.identify(&p).await.unwrap().is_empty());
    let r = c.rectify(&p, &[]).await.unwrap();
    assert_eq!(r.len(), 3);
    assert!(r.iter().all(|o| o.rectified == 0 && o.found == 0));
    assert!(t.exists("avatars/42/me.png"));
}

#[tokio::test]
async fn maps_files_cannot_honour_are_refused_at_connect() {
    let t = Tree::new();
    let mut anon = uploads();
    anon.datasets[0].erasure =
        Some(serde_json::from_value(json!({ "anonymize": "set_null" })).unwrap());
    let e = connect(&anon, &t.root).unwrap_err();
    assert!(matches!(e, ConnectorError::Mismatch { .. }), "{e}");
    assert!(
        e.to_string()
            .contains("anonymize is not possible for files"),
        "{e}"
    );

    let mut everyone = uploads();
    everyone.datasets[0].location = custos_map::Location::Path("avatars/*".into());
    let e = connect(&everyone, &t.root).unwrap_err();
    assert!(matches!(e, ConnectorError::Mismatch { .. }), "{e}");

    let mut up = uploads();
    up.datasets[0].location = custos_map::Location::Path("../{user_id}/*".into());
    assert!(matches!(
        connect(&up, &t.root).unwrap_err(),
        ConnectorError::Mismatch { .. }
    ));

    let e = FileConnector::connect(&uploads(), &|_| None).unwrap_err();
    assert!(matches!(e, ConnectorError::Config { .. }), "{e}");
    assert!(e.to_string().contains("UPLOADS_ROOT"), "{e}");

    // A root that does not exist is a setting to fix: permanent, naming
    // the variable.
    let e = connect(&uploads(), &t.base.join("missing")).unwrap_err();
    assert!(matches!(e, ConnectorError::Config { .. }), "{e}");
    assert!(
        !e.is_transient() && e.to_string().contains("UPLOADS_ROOT"),
        "{e}"
    );
    assert!(
        !e.to_string().contains("missing"),
        "the path is not quoted: {e}"
    );

    // The demo map's uploads live on object storage: no `root_env`.
    let (map, _) = custos_map::load_str(custos_map::DEMO_MAP, "demo-map.yaml").unwrap();
    let demo = map
        .systems
        .iter()
        .find(|s| s.id.as_str() == "uploads")
        .unwrap();
    assert!(matches!(
        FileConnector::connect(demo, &|_| None).unwrap_err(),
        ConnectorError::Config { .. }
    ));
}

/// A tree shared by tenants, each under its own part (`{tenant}` in the
/// path, the tenant's value from `tenant_values`): acme's request finds
/// and erases only acme's files of user 42, never globex's user 42; a
/// value that would leave its part, or none at all, is refused.
#[tokio::test]
async fn a_tree_shared_by_tenants_is_reached_only_in_the_tenants_part() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    for t in ["acme-files", "globex-files"] {
        write(&root.join(t).join("avatars/42/me.png"), t.as_bytes());
    }
    let system: System = serde_json::from_value(json!({
        "id": "shared",
        "kind": "files",
        "connection": { "root_env": "UPLOADS_ROOT" },
        "tenant_values": { "acme": "acme-files", "globex": "globex-files" },
        "datasets": [{
            "id": "avatars",
            "path": "{tenant}/avatars/{user_id}/*",
            "subject": { "identity": "user_id" },
            "purposes": ["account"],
            "erasure": "delete",
            "fields": fields()
        }]
    }))
    .unwrap();
    let r = root.display().to_string();
    let env = move |k: &str| (k == "UPLOADS_ROOT").then(|| r.clone());
    let acme = FileConnector::connect_for_tenant(&system, &env, Some("acme-files")).unwrap();
    let found = acme.access(&person(&["42"], &[])).await.unwrap();
    let files: Vec<&[u8]> = found[0].files.iter().map(|f| f.bytes.as_slice()).collect();
    assert_eq!(files, [b"acme-files".as_slice()]);
    let done = acme.erase(&person(&["42"], &[])).await.unwrap();
    assert_eq!(outcome(&done, "avatars").deleted, 1);
    assert!(!root.join("acme-files/avatars/42/me.png").exists());
    assert!(root.join("globex-files/avatars/42/me.png").exists());
    for bad in [Some(".."), Some("a/b"), Some("*"), Some(""), None] {
        match FileConnector::connect_for_tenant(&system, &env, bad) {
            Err(ConnectorError::Mismatch { message, .. }) => {
                assert!(message.contains("dataset avatars"), "{message}")
            }
            other => panic!("{bad:?}: expected a mismatch, got {other:?}"),
        }
    }
}
