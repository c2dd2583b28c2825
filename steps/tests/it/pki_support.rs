//! What the PKI tests share: the tutorial's cluster (with edits), a generated asset directory,
//! and the real tools the tests check it with.

#![allow(dead_code)] // Each test crate uses its own part.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

use steps::assets::AssetDir;
use steps::assets::pki::{PkiInputs, PkiReport, ensure_pki};

/// The tutorial's cluster, with `edit` applied to the spec text first.
pub fn tutorial(edit: impl Fn(String) -> String) -> specs::DesiredCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tutorial.yaml");
    let text = std::fs::read_to_string(&path).expect("examples/tutorial.yaml");
    specs::parse(&edit(text), &path.display().to_string())
        .unwrap_or_else(|e| panic!("{e}"))
        .desired()
}

/// The tutorial with three controllers and the aggregation layer on: every certificate exists.
pub fn full_cluster() -> specs::DesiredCluster {
    tutorial(|t| {
        format!(
            "{}\nenable_aggregation: true\n",
            t.replace("controller_count: 1", "controller_count: 3")
        )
    })
}

/// A fresh asset directory in a temporary directory, with the PKI of `cluster` issued at `now`.
pub struct Pki {
    pub tmp: tempfile::TempDir,
    pub dir: AssetDir,
    pub report: PkiReport,
}

impl Pki {
    pub fn issue(cluster: &specs::DesiredCluster, now: SystemTime) -> Pki {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = AssetDir::create(tmp.path().join("assets")).expect("asset dir");
        let report = ensure_pki(&dir, &PkiInputs::from_desired(cluster), now)
            .unwrap_or_else(|e| panic!("{e}"));
        Pki { tmp, dir, report }
    }

    /// The absolute path of `rel` in the asset directory.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path(rel)
    }
}

/// Runs `cmd` and returns its output, whatever its exit status; a tool that is not installed is a
/// failure that says how to get it.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "{cmd:?}: {e}; scripts/test installs the tools the tests use (openssl, etcd, kubectl)"
        )
    })
}

/// stdout and stderr of `out`, for assertions and failure messages.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
