//! The rendering is pinned: the checked-in key set (`tests/fixtures/pki/keys/`, test-only keys)
//! and a fixed `now` must give exactly the checked-in certificates and kubeconfigs
//! (`tests/fixtures/pki/golden/`). A change in how certificates or kubeconfigs are rendered fails
//! here; if it is intended, bump `RENDERING` in `assets/pki.rs` (so that existing clusters get
//! their leaves reissued) and regenerate with
//! `LOKO_BLESS=1 cargo test -p steps --test it pki_golden`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use crate::pki_support::full_cluster;
use steps::assets::pki::{PkiInputs, ensure_pki};
use steps::assets::{AssetDir, Sensitivity, kubeconfig};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pki")
}

/// Every file under `root`, relative path → bytes.
fn files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(at) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let rel = path
                    .strip_prefix(root)
                    .expect("under root")
                    .display()
                    .to_string();
                out.insert(rel, std::fs::read(&path).expect("read"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn write_all(root: &Path, files: &BTreeMap<String, Vec<u8>>) {
    let _ = std::fs::remove_dir_all(root);
    for (rel, bytes) in files {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }
}

#[test]
fn the_fixture_keys_render_the_golden_files() {
    let bless = std::env::var_os("LOKO_BLESS").is_some();
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = AssetDir::create(tmp.path().join("assets")).expect("asset dir");
    let keys = files(&fixtures().join("keys"));
    assert!(
        bless || !keys.is_empty(),
        "no fixture keys; LOKO_BLESS=1 creates them"
    );
    for (rel, bytes) in &keys {
        dir.write(rel, bytes, Sensitivity::Secret)
            .expect("copy key");
    }
    let cluster = full_cluster();
    let now = UNIX_EPOCH + Duration::from_secs(1_767_225_600); // 2026-01-01T00:00:00Z
    ensure_pki(&dir, &PkiInputs::from_desired(&cluster), now).unwrap_or_else(|e| panic!("{e}"));
    // A fixed bootstrap token, so that the kubelets' kubeconfig renders the same bytes.
    dir.write(
        steps::assets::bootstrap_token::BOOTSTRAP_TOKEN,
        br#"{"id": "abcdef", "secret": "0123456789abcdef", "expiration": "2026-01-02T00:00:00Z"}"#,
        Sensitivity::Secret,
    )
    .expect("token");
    let token = steps::assets::bootstrap_token::read_token(&dir)
        .expect("read token")
        .expect("a token");
    kubeconfig::write_kubeconfigs(&dir, &cluster, &token).unwrap_or_else(|e| panic!("{e}"));

    let rendered = files(dir.root());
    let (new_keys, outputs): (BTreeMap<_, _>, BTreeMap<_, _>) = rendered
        .into_iter()
        .partition(|(rel, _)| rel.ends_with(".key"));
    if bless {
        write_all(&fixtures().join("keys"), &new_keys);
        write_all(&fixtures().join("golden"), &outputs);
        return;
    }
    assert_eq!(new_keys, keys, "ensure_pki changed or added a key");
    let golden = files(&fixtures().join("golden"));
    assert_eq!(
        outputs.keys().collect::<Vec<_>>(),
        golden.keys().collect::<Vec<_>>(),
        "the set of files changed"
    );
    for (rel, bytes) in &outputs {
        assert!(
            golden[rel] == *bytes,
            "{rel} renders differently from tests/fixtures/pki/golden/{rel}:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}
