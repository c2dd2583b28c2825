//! Everything loko's Ignition puts on a node, read by the program that reads it there: every
//! script through `shellcheck`, every unit and drop-in through `systemd-analyze verify`, every
//! firewall through `iptables-restore --test` / `ip6tables-restore --test` (in a network
//! namespace of its own: the host's tables are never touched). Every node of every example is
//! read: controllers and workers, Calico and flannel, Flatcar and iPXE (the installer too).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use loko_tests::rendered::{Rendered, data_url, render_example};
use serde_json::Value;
use sim::judge::systemd::{Unit, expand};

use crate::pki_support::text;

/// The examples whose nodes are read: calico (tutorial, hybrid), flannel with RAIDs (flannel),
/// three controllers, arm64 and iPXE (hybrid), a rack's machines whose addresses the spec gives
/// (rack), and a rack without a zone: etcd by address, no wait-for-dns (rack-no-dns).
const EXAMPLES: [&str; 5] = [
    "tutorial.yaml",
    "hybrid.yaml",
    "flannel.yaml",
    "rack.yaml",
    "rack-no-dns.yaml",
];

/// One file or unit text of a node, named for failure messages.
pub(crate) struct Artifact {
    /// `<example> <hostname> [installer] <path or unit>`.
    pub(crate) origin: String,
    /// The path on the node (`/opt/…`, `/etc/systemd/system/<unit>`, …).
    pub(crate) path: String,
    /// Its mode (a file's, from the Ignition; 0644 for a unit).
    pub(crate) mode: u32,
    pub(crate) contents: String,
}

/// A node's files and units (drop-ins as `<unit>.d/<name>`), under their paths on the node.
pub(crate) struct NodeArtifacts {
    /// `<example> <hostname>` (and ` installer` for an iPXE installer's Ignition).
    pub(crate) name: String,
    pub(crate) files: Vec<Artifact>,
    pub(crate) units: Vec<Artifact>,
}

pub(crate) const UNIT_DIR: &str = "/etc/systemd/system";

pub(crate) fn node_artifacts(example: &str, node: &str, ignition: &Value) -> NodeArtifacts {
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
            mode: file["mode"]
                .as_u64()
                .and_then(|m| u32::try_from(m).ok())
                .unwrap_or(0o644),
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
                mode: 0o644,
                contents: text.to_owned(),
            });
        }
        for dropin in unit["dropins"].as_array().into_iter().flatten() {
            let file = dropin["name"].as_str().unwrap_or_default();
            units.push(Artifact {
                origin: format!("{example} {node} {name}.d/{file}"),
                path: format!("{UNIT_DIR}/{name}.d/{file}"),
                mode: 0o644,
                contents: dropin["contents"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    NodeArtifacts {
        name: format!("{example} {node}"),
        files,
        units,
    }
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
pub(crate) fn check_with(cmd: &mut Command, package: &str) -> Output {
    cmd.output().unwrap_or_else(|e| {
        panic!(
            "{cmd:?}: {e}; scripts/test installs it (Debian package {package})",
            cmd = cmd.get_program()
        )
    })
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
pub(crate) fn shellcheck(shell: Option<&str>, program: &str, work: &Path) -> Option<String> {
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

/// Flatcar's `sshd.socket` (Flatcar's "Customizing the SSH daemon" gives it whole), which the
/// iPXE installer's drop-in changes, and the per-connection service it starts.
const FLATCAR_SSHD_SOCKET: &str = "[Unit]\nDescription=OpenSSH Server Socket\n\
Conflicts=sshd.service\n\n[Socket]\nListenStream=22\nFreeBind=true\nAccept=yes\n\n\
[Install]\nWantedBy=sockets.target\n";
const FLATCAR_SSHD_SERVICE: &str = "[Unit]\nDescription=OpenSSH per-connection server daemon\n\
[Service]\nExecStart=-/usr/sbin/sshd -i\nStandardInput=socket\n";

/// docker's own socket unit (moby's `contrib/init/systemd/docker.socket`, which Flatcar's docker
/// installs): Flatcar's `docker.service` requires it.
const DOCKER_SOCKET: &str = "[Unit]\nDescription=Docker Socket for the API\n\n[Socket]\n\
ListenStream=/run/docker.sock\nSocketMode=0660\nSocketUser=root\nSocketGroup=docker\n\n\
[Install]\nWantedBy=sockets.target\n";

/// Programs a Flatcar node has (merged `/usr`: `/bin` and `/sbin` are links into it), which
/// loko's and Flatcar's units run. A unit naming anything else fails the test.
const FLATCAR_PROGRAMS: [&str; 11] = [
    "/usr/bin/bash",
    "/usr/bin/coreos-metadata",
    "/usr/bin/docker",
    "/usr/bin/getent",
    "/usr/bin/mkdir",
    "/usr/bin/sh",
    "/usr/bin/true",
    "/usr/bin/kill",
    "/usr/sbin/iptables-restore",
    "/usr/sbin/ip6tables-restore",
    "/usr/sbin/sshd",
];

/// A node's root as systemd reads it: the host's systemd units (its targets), Flatcar's own
/// units, the node's units and drop-ins under `/etc/systemd/system`, the node's Ignition files
/// with their modes, and an executable stand-in for each of Flatcar's programs.
fn node_tree(node: &NodeArtifacts, root: &Path) {
    let lib = root.join("usr/lib/systemd/system");
    std::fs::create_dir_all(root.join("usr/lib/systemd")).expect("usr/lib/systemd");
    let out = check_with(
        Command::new("cp")
            .args(["-a", "/usr/lib/systemd/system"])
            .arg(&lib),
        "coreutils",
    );
    assert!(out.status.success(), "{}", text(&out));
    let flatcar = &sim::judge::data::facts().flatcar.builtin_units;
    let mut builtin: Vec<(&str, &str)> = flatcar
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    builtin.push(("sshd.socket", FLATCAR_SSHD_SOCKET));
    builtin.push(("sshd@.service", FLATCAR_SSHD_SERVICE));
    builtin.push(("docker.socket", DOCKER_SOCKET));
    for (name, unit) in builtin {
        std::fs::write(lib.join(name), unit).expect("a Flatcar unit");
    }
    for dir in ["usr/bin", "usr/sbin"] {
        std::fs::create_dir_all(root.join(dir)).expect("usr");
    }
    std::os::unix::fs::symlink("usr/bin", root.join("bin")).expect("/bin");
    std::os::unix::fs::symlink("usr/sbin", root.join("sbin")).expect("/sbin");
    let write = |path: &str, contents: &[u8], mode: u32| {
        let at = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(at.parent().expect("a parent")).expect("the file's directory");
        std::fs::write(&at, contents).expect("a node file");
        std::fs::set_permissions(&at, std::fs::Permissions::from_mode(mode)).expect("its mode");
    };
    for program in FLATCAR_PROGRAMS {
        write(program, b"#!/bin/sh\n", 0o755);
    }
    for file in &node.files {
        write(&file.path, file.contents.as_bytes(), file.mode);
    }
    for unit in &node.units {
        write(&unit.path, unit.contents.as_bytes(), 0o644);
    }
}

/// `systemd-analyze verify` of a node's units and drop-ins in the node's tree: the units it
/// verified, and its report if it found anything.
pub(crate) fn systemd_verify(node: &NodeArtifacts) -> (Vec<String>, Option<String>) {
    let root = tempfile::tempdir().expect("tempdir");
    node_tree(node, root.path());
    // A drop-in is verified with the unit it changes (Flatcar's own, for sshd.socket).
    let mut units: Vec<String> = node
        .units
        .iter()
        .map(|u| {
            let name = u.path.trim_start_matches(&format!("{UNIT_DIR}/"));
            name.split_once(".d/")
                .map_or(name, |(unit, _)| unit)
                .to_owned()
        })
        .collect();
    units.sort();
    units.dedup();
    let paths: Vec<std::path::PathBuf> = units
        .iter()
        .map(|name| {
            let local = root.path().join(&UNIT_DIR[1..]).join(name);
            if local.exists() {
                local
            } else {
                root.path().join("usr/lib/systemd/system").join(name)
            }
        })
        .collect();
    // --root: units, drop-ins and the programs of Exec*= lines are looked up in the node's
    // tree, not the host's; --generators=no: the host's generators would read the host;
    // --man=no: Documentation= pages are not this machine's business.
    let out = check_with(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(format!("--root={}", root.path().display()))
            .args(["--man=no", "--generators=no"])
            .args(&paths),
        "systemd",
    );
    let report = text(&out);
    let failed = !out.status.success() || !report.trim().is_empty();
    (units, failed.then_some(report))
}

#[test]
fn systemd_analyze_verifies_every_unit_and_drop_in_of_every_node() {
    let mut failures = Vec::new();
    let mut verified = Vec::new();
    for (_, nodes) in every_node() {
        for node in &nodes {
            let (units, report) = systemd_verify(node);
            if let Some(report) = report {
                failures.push(format!("{} ({}):\n{report}", node.name, units.join(" ")));
            }
            verified.extend(units);
        }
    }
    for wanted in [
        "kubelet.service",
        "etcd-member.service",
        "wait-for-dns.service",
        "coreos-metadata.service",
        "delete-node.service",
        "persist-data-raid.service",
        "installer.service",
        "sshd.socket",
    ] {
        assert!(
            verified.iter().any(|u| u == wanted),
            "{wanted} was not verified"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
