//! Everything loko's Ignition puts on a node, read by the program that reads it there: every
//! script through `shellcheck`, every unit and drop-in through `systemd-analyze verify`, every
//! firewall through `iptables-restore --test` / `ip6tables-restore --test` (in a network
//! namespace of its own: the host's tables are never touched). Every node of every example is
//! read: controllers and workers, Calico and flannel, Flatcar and iPXE (the installer too).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use loko_tests::rendered::{Rendered, data_url, render_example};
use serde_json::Value;
use sim::judge::systemd::{Unit, expand};

/// The examples whose nodes are read: calico (tutorial, hybrid), flannel with RAIDs (flannel),
/// three controllers, arm64 and iPXE (hybrid).
const EXAMPLES: [&str; 3] = ["tutorial.yaml", "hybrid.yaml", "flannel.yaml"];

/// One file or unit text of a node, named for failure messages.
struct Artifact {
    /// `<example> <hostname> [installer] <path or unit>`.
    origin: String,
    /// The path on the node (`/opt/…`, `/etc/systemd/system/<unit>`, …).
    path: String,
    contents: String,
}

/// A node's files and units (drop-ins as `<unit>.d/<name>`), under their paths on the node.
struct NodeArtifacts {
    files: Vec<Artifact>,
    units: Vec<Artifact>,
}

const UNIT_DIR: &str = "/etc/systemd/system";

fn node_artifacts(example: &str, node: &str, ignition: &Value) -> NodeArtifacts {
    let mut files = Vec::new();
    for file in ignition["storage"]["files"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let path = file["path"].as_str().unwrap_or_default().to_owned();
        let contents = data_url(file["contents"]["source"].as_str().unwrap_or_default())
            .unwrap_or_else(|| panic!("{example} {node} {path}: not a data URL"));
        files.push(Artifact {
            origin: format!("{example} {node} {path}"),
            path,
            contents: String::from_utf8_lossy(&contents).into_owned(),
        });
    }
    let mut units = Vec::new();
    for unit in ignition["systemd"]["units"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = unit["name"].as_str().unwrap_or_default();
        if let Some(text) = unit["contents"].as_str() {
            units.push(Artifact {
                origin: format!("{example} {node} {name}"),
                path: format!("{UNIT_DIR}/{name}"),
                contents: text.to_owned(),
            });
        }
        for dropin in unit["dropins"].as_array().into_iter().flatten() {
            let file = dropin["name"].as_str().unwrap_or_default();
            units.push(Artifact {
                origin: format!("{example} {node} {name}.d/{file}"),
                path: format!("{UNIT_DIR}/{name}.d/{file}"),
                contents: dropin["contents"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    NodeArtifacts { files, units }
}

/// Every node of every example: the installed system's Ignition, and an iPXE installer's own.
fn every_node() -> Vec<(Rendered, Vec<NodeArtifacts>)> {
    EXAMPLES
        .iter()
        .map(|example| {
            let rendered = render_example(example);
            let mut nodes = Vec::new();
            for (host, installed) in &rendered.ignitions {
                nodes.push(node_artifacts(example, host, installed));
                let sent = &rendered.userdata[host];
                if sent != installed {
                    nodes.push(node_artifacts(example, &format!("{host} installer"), sent));
                }
            }
            (rendered, nodes)
        })
        .collect()
}

/// Runs a checking tool; one that is not installed fails the test naming its Debian package
/// (testkit's convention: CI installs every peer, nothing is skipped).
fn check_with(cmd: &mut Command, package: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "{cmd:?}: {e}; scripts/test installs it (Debian package {package})",
            cmd = cmd.get_program()
        )
    })
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The shell programs of a unit's command lines (`/bin/sh -c '…'`, `/bin/bash -c …`), after
/// systemd's unquoting and expansion, with the shell that runs them.
fn exec_shell_programs(unit: &Artifact) -> Vec<(&'static str, String)> {
    let name = unit.path.rsplit('/').next().unwrap_or_default();
    let parsed = Unit::parse(name, &unit.contents);
    let keys = [
        "ExecStartPre",
        "ExecStart",
        "ExecStartPost",
        "ExecReload",
        "ExecStop",
        "ExecStopPost",
        "ExecCondition",
    ];
    let mut programs = Vec::new();
    for key in keys {
        for line in parsed.exec(key) {
            let (argv, _) = expand(&line.words, &BTreeMap::new());
            let shell = match argv.first().map(String::as_str) {
                Some("/bin/sh" | "/usr/bin/sh") => "sh",
                Some("/bin/bash" | "/usr/bin/bash") => "bash",
                _ => continue,
            };
            if argv.get(1).map(String::as_str) == Some("-c")
                && let Some(program) = argv.get(2)
            {
                programs.push((shell, program.clone()));
            }
        }
    }
    programs
}

/// shellcheck, every warning included, on one program (given on stdin).
fn shellcheck(shell: Option<&str>, program: &str, work: &Path) -> Option<String> {
    let file = work.join("script");
    std::fs::write(&file, program).expect("write the script");
    let mut cmd = Command::new("shellcheck");
    cmd.args(["--norc", "--severity=style", "--format=gcc"]);
    if let Some(shell) = shell {
        cmd.arg(format!("--shell={shell}"));
    }
    let out = check_with(cmd.arg(&file), "shellcheck");
    (!out.status.success()).then(|| text(&out))
}

#[test]
fn shellcheck_passes_every_script_of_every_node() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut checked = Vec::new();
    for (_, nodes) in every_node() {
        for node in &nodes {
            for file in node.files.iter().filter(|f| f.contents.starts_with("#!")) {
                checked.push(file.path.clone());
                if let Some(report) = shellcheck(None, &file.contents, work.path()) {
                    failures.push(format!("{}:\n{report}", file.origin));
                }
            }
            for unit in &node.units {
                for (shell, program) in exec_shell_programs(unit) {
                    checked.push(format!("{} (command line)", unit.path));
                    if let Some(report) = shellcheck(Some(shell), &program, work.path()) {
                        failures.push(format!("{}: {program}\n{report}", unit.origin));
                    }
                }
            }
        }
    }
    // What is checked is what the nodes run: a collection that found nothing proves nothing.
    for wanted in [
        "/opt/etcd-rejoin",
        "/opt/persist-data-raid",
        "/opt/installer",
        "/etc/systemd/system/kubelet.service (command line)",
        "/etc/systemd/system/wait-for-dns.service (command line)",
    ] {
        assert!(
            checked.iter().any(|c| c == wanted),
            "{wanted} was not checked"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The command line of one of Flatcar's own units (sim's facts), split as systemd does.
fn flatcar_exec_start(unit: &str) -> Vec<String> {
    let text = sim::judge::data::facts()
        .flatcar
        .builtin_units
        .get(unit)
        .unwrap_or_else(|| panic!("sim's Flatcar facts have no {unit}"));
    let line = Unit::parse(unit, text).exec("ExecStart").remove(0);
    expand(&line.words, &BTreeMap::new()).0
}

#[test]
fn iptables_restore_loads_every_firewall_of_every_node() {
    let work = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    let mut checked = 0;
    for (_, nodes) in every_node() {
        for node in &nodes {
            for unit in ["iptables-restore.service", "ip6tables-restore.service"] {
                // What Flatcar's unit runs (`/sbin/iptables-restore -w -- <rules>`), with
                // --test: parse and check every rule against the kernel, commit nothing.
                let argv = flatcar_exec_start(unit);
                let rules = argv.last().expect("the rules' path");
                let Some(file) = node.files.iter().find(|f| &f.path == rules) else {
                    continue;
                };
                checked += 1;
                let local = work.path().join("rules-save");
                std::fs::write(&local, &file.contents).expect("write the rules");
                let program = argv[0].rsplit('/').next().unwrap_or_default();
                // A network namespace of its own: the host's tables are never read or touched.
                let out = check_with(
                    Command::new("unshare")
                        .args(["--net", "--", program, "--test"])
                        .args(&argv[1..argv.len() - 1])
                        .arg(&local),
                    "iptables",
                );
                if !out.status.success() || !text(&out).trim().is_empty() {
                    failures.push(format!("{}: {}", file.origin, text(&out)));
                }
            }
        }
    }
    assert!(checked > 0, "no rules-save found on any node");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
