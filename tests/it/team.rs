//! A team runs one cluster from any machine: the journal is bound to the cluster it holds, so a
//! spec of another cluster pointed at it is refused by every command, before anything else.

use std::path::Path;
use std::process::{Command, Output};

const LOKO: &str = env!("CARGO_BIN_EXE_loko");

fn loko(dir: &Path, args: &[&str]) -> Output {
    Command::new(LOKO)
        .current_dir(dir)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LOKO_JOURNAL")
        .output()
        .expect("run loko")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A copy of the tutorial named `name` (another cluster when not "supernova"), in `dir`.
fn spec_named(dir: &Path, name: &str) -> String {
    let tutorial = std::fs::read_to_string(loko_tests::rendered::example_path("tutorial.yaml"))
        .expect("the tutorial");
    let file = format!("{name}.yaml");
    std::fs::write(
        dir.join(&file),
        tutorial.replace("cluster_name: supernova", &format!("cluster_name: {name}")),
    )
    .expect("write the spec");
    file
}

/// Every command that names a spec refuses one of another cluster than `journal` holds, naming
/// both; `extra` points it at that journal.
fn every_command_refuses(dir: &Path, spec: &str, journal: &str, extra: &[&str]) {
    let commands: [&[&str]; 7] = [
        &["plan", spec],
        &["status", spec],
        &["run", spec, "--sim", "--yes"],
        &["destroy", spec, "--sim", "--yes"],
        &["journal", spec],
        &["kubeconfig", spec],
        &[
            "journal",
            "push",
            spec,
            "--to",
            "etcd://127.0.0.1:1/elsewhere",
        ],
    ];
    for command in commands {
        let out = loko(dir, &[command, extra].concat());
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command:?}: {err}");
        assert!(
            err.contains(&format!(
                "journal {journal} belongs to cluster \"supernova\" (zone packet.example.com, project "
            )) && err.contains(&format!("{spec} names \"nova\"")),
            "{command:?}: {err}"
        );
    }
}

#[test]
fn a_journal_refuses_the_spec_of_another_cluster_in_a_directory_and_in_etcd() {
    let etcd = loko_tests::Etcd::start(1);
    let url = etcd.url("shared");
    // Each journal with a simulated cloud of its own, in a directory of its own.
    let (in_etcd, in_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let run = |dir: &Path, extra: &[&str]| {
        let supernova = spec_named(dir, "supernova");
        let args = [&["run", &supernova, "--sim", "--time-scale", "0.02"], extra].concat();
        let out = loko(dir, &args);
        assert!(out.status.success(), "{}", text(&out.stderr));
        spec_named(dir, "nova")
    };

    let nova = run(in_etcd.path(), &["--journal", &url]);
    every_command_refuses(in_etcd.path(), &nova, &url, &["--journal", &url]);
    // The cluster's own spec is not refused.
    let plan = loko(
        in_etcd.path(),
        &["plan", "supernova.yaml", "--journal", &url],
    );
    assert!(plan.status.success(), "{}", text(&plan.stderr));

    let nova = run(in_dir.path(), &[]);
    let state = in_dir.path().join("assets/supernova/.loko");
    let journal = state.join("journal").display().to_string();
    let state = state.display().to_string();
    every_command_refuses(in_dir.path(), &nova, &journal, &["--state-dir", &state]);
}
